"""One torchrun worker of the student stage: ``python -m recsys.student.worker --run-dir R --jobs-json J``
(J: a list of {variant, config (StudentConfig as JSON), key}, trained in order in one process group). Every
rank trains its shards; rank 0 writes exports and the manifest.

Before anything heavy is imported, the worker ties its life to its parent (``lifeline.guard_worker``) and
sets third-party loggers to WARNING: fbgemm logs every shared object it loads ("Successfully loaded ...")
and torchrec every TBE's arguments at INFO, on import.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from recsys.lifeline import guard_worker, leave

THIRD_PARTY = ("fbgemm_gpu", "torchrec", "torch.distributed", "torch._dynamo", "torch.fx")


class _OursOrWarning(logging.Filter):
    """Root-logger filter: records of our loggers pass; the rest only at WARNING and above (fbgemm logs on
    the root logger itself, so naming its logger is not enough)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.name.startswith(("recsys", "__main__")) or record.levelno >= logging.WARNING


def quiet_libraries() -> None:
    """Our loggers at INFO, every third-party one at WARNING; call before importing torchrec or fbgemm."""
    for name in THIRD_PARTY:
        logging.getLogger(name).setLevel(logging.WARNING)
    for h in logging.getLogger().handlers:
        h.addFilter(_OursOrWarning())


def main(argv: list[str] | None = None) -> int:
    guard_worker()
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--run-dir", required=True)
    ap.add_argument("--jobs-json", required=True,
                    help="[{variant, config: StudentConfig as JSON, key: stage input key computed by the launcher}]")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    quiet_libraries()
    from recsys.artifacts import RunDir
    from recsys.config import build
    from recsys.contracts import StageError
    from recsys.student.config import StudentConfig
    from recsys.student.stage import execute

    jobs = json.loads(args.jobs_json)
    try:
        for i, job in enumerate(jobs):
            execute(cfg=build(StudentConfig, job["config"]), run_dir=RunDir(args.run_dir), variant=job["variant"],
                    key=job["key"], keep_group=i + 1 < len(jobs))
    except StageError as e:  # a refused checkpoint or file, a diverged loss: one paragraph, not a traceback
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    leave(main())
