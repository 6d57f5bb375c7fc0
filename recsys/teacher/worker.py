"""One torchrun worker of the teacher stage: ``python -m recsys.teacher.worker --run-dir R --config-json C
--key K --eval-splits valid``. Every rank encodes its share of the texts into the cache; rank 0 then writes
the teacher files and the manifest (``recsys.teacher.distributed``)."""

from __future__ import annotations

import argparse
import json
import logging

from recsys.lifeline import guard_worker, leave


def main(argv: list[str] | None = None) -> int:
    guard_worker()
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--run-dir", required=True)
    ap.add_argument("--config-json", required=True, help="TeacherConfig as JSON")
    ap.add_argument("--key", required=True, help="stage input key computed by the launcher")
    ap.add_argument("--eval-splits", default="valid", help="comma-separated splits the teacher is measured on")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    for name in ("torch.distributed", "transformers"):
        logging.getLogger(name).setLevel(logging.WARNING)
    from recsys.artifacts import RunDir
    from recsys.config import build
    from recsys.teacher.config import TeacherConfig
    from recsys.teacher.distributed import execute

    cfg = build(TeacherConfig, json.loads(args.config_json))
    splits = tuple(s for s in args.eval_splits.split(",") if s)
    execute(cfg=cfg, run_dir=RunDir(args.run_dir), key=args.key, eval_splits=splits)  # type: ignore[arg-type]
    return 0


if __name__ == "__main__":
    leave(main())
