"""The ``recsys`` command: a thin dispatcher to the pipelines and a few tools."""

from __future__ import annotations

import sys
from collections.abc import Callable

HELP = """\
usage: recsys <command> [options] [key=value ...]

Two-tower retrieval and ranking for e-commerce. Data flows one way through a run directory:

  logs -> tables/ (polars: validate, quarantine, id-map, split)
       -> teacher/ (HF text model: item + user embeddings, top-K scores, domain adapter; cached)
       -> student/ (TorchRec two-tower, sharded tables under DMP, distilled on the teacher)
       -> index/   (FAISS: flat / IVF / IVF-PQ / HNSW, CPU or GPU)
       -> rank/    (LightGBM LambdaRank re-ranker)
       -> report  (metrics JSON, markdown report, plots)

commands:
  demo          the main job on the embedded Amazon Beauty data -> runs/demo (= evaluate -o runs/demo)
  evaluate      build everything, train the distillation ablation, evaluate all systems, write the report
  build-index   data -> teacher -> student -> index -> ranker (the serving path only)
  prepare       load + validate + split logs only; prints read = kept + quarantined
  retrain       retrain a published version on new logs; gated, atomically published
  rollback      point `current` back at the previous published version
  retrain-demo  weekly retrains on UCI Online Retail and Beauty: incremental vs published vs from scratch
  cold-start    hold items out of training; how well do text-only vectors find them
  recommend     top-K items for users from a run directory (recsys.api.Recommender)
  doctor        preflight: versions, torch/fbgemm/torchrec together, CUDA, faiss-GPU
  plan          dry-run the TorchRec sharding planner for N GPUs (e.g. --items 100000000 --gpus 8 64)

Run `recsys <command> --help` for its options. Config: -c file.toml plus key=value overrides,
e.g. `recsys evaluate student.epochs=5 data.split=temporal`. Examples: pipelines/configs/.
"""


def _demo(argv: list[str]) -> int:
    from pipelines.evaluate import main

    return main(argv, default_out="runs/demo", prog="recsys demo")


def _evaluate(argv: list[str]) -> int:
    from pipelines.evaluate import main

    return main(argv)


def _build_index(argv: list[str]) -> int:
    from pipelines.build_index import main

    return main(argv)


def _prepare(argv: list[str]) -> int:
    from pipelines.prepare import main

    return main(argv)


def _retrain(argv: list[str]) -> int:
    from pipelines.retrain import main

    return main(argv)


def _rollback(argv: list[str]) -> int:
    from pipelines.retrain import rollback_main

    return rollback_main(argv)


def _retrain_demo(argv: list[str]) -> int:
    from pipelines.retrain_demo import main

    return main(argv)


def _recommend(argv: list[str]) -> int:
    from pipelines.recommend import main

    return main(argv)


def _plan(argv: list[str]) -> int:
    from pipelines.plan import main

    return main(argv)


def _cold_start(argv: list[str]) -> int:
    from pipelines.cold_start import main

    return main(argv)


def _doctor(argv: list[str]) -> int:
    import argparse

    from recsys.doctor import main

    ap = argparse.ArgumentParser(prog="recsys doctor", description="Preflight checks of the installation.")
    ap.add_argument("--brief", action="store_true", help="print only failures and the verdict")
    return main(brief=ap.parse_args(argv).brief)


COMMANDS: dict[str, Callable[[list[str]], int]] = {
    "demo": _demo, "evaluate": _evaluate, "build-index": _build_index, "prepare": _prepare,
    "retrain": _retrain, "rollback": _rollback, "retrain-demo": _retrain_demo, "recommend": _recommend,
    "cold-start": _cold_start, "doctor": _doctor, "plan": _plan,
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(HELP)
        return 0
    if argv[0] in ("-V", "--version"):
        from recsys import __version__

        print(f"recsys {__version__}")
        return 0
    cmd = COMMANDS.get(argv[0])
    if cmd is None:
        print(f"recsys: unknown command '{argv[0]}'\n\n{HELP}", file=sys.stderr)
        return 2
    return cmd(argv[1:])


if __name__ == "__main__":
    raise SystemExit(main())
