"""The student stage: a TorchRec two-tower (sharded with DistributedModelParallel) distilled from the
LLM teacher's files. Entry point: ``recsys.student.stage.run(cfg, run_dir, variant=...)``; configs in
``recsys.student.config`` (``StudentConfig`` is the distilled student; the ablation zeroes its lambdas).
torch/torchrec load on first use of a submodule, not on ``import recsys.student``."""
