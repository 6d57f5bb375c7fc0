"""One torchrun worker of the student stage: ``python -m recsys.student.worker --run-dir R --variant V
--config-json C --key K``. Every rank trains its shards; rank 0 writes exports and the manifest."""

from __future__ import annotations

import argparse
import json
import logging

from recsys.artifacts import RunDir
from recsys.config import build
from recsys.student.config import StudentConfig


def quiet_libraries() -> None:
    """fbgemm/torchrec log every kernel's arguments at INFO; keep ours at INFO and theirs at WARNING."""
    for name in ("fbgemm_gpu", "torchrec", "torch.distributed"):
        logging.getLogger(name).setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--run-dir", required=True)
    ap.add_argument("--variant", required=True)
    ap.add_argument("--config-json", required=True, help="StudentConfig as JSON")
    ap.add_argument("--key", required=True, help="stage input key computed by the launcher")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    quiet_libraries()
    from recsys.student.stage import execute

    cfg = build(StudentConfig, json.loads(args.config_json))
    execute(cfg=cfg, run_dir=RunDir(args.run_dir), variant=args.variant, key=args.key)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
