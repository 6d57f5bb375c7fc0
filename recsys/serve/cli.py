"""``recsys serve -o RUN_ROOT``: the HTTP service on uvicorn (one process; see the epilog for several).

RUN_ROOT is a retrain root (versions/ + current: the service follows `current`, swapping in each newly
published or rolled-back version after verifying it) or one run directory (served as is). /v1/* needs an
API key (--api-keys-file or RECSYS_API_KEYS) unless --no-auth.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from recsys.serve.config import ServeConfig

log = logging.getLogger("recsys.serve")

EPILOG = """\
Several processes: uvicorn forks workers from an import string, each verifying and loading the version:
  RECSYS_SERVE_ROOT=runs/published RECSYS_SERVE_KEYS_FILE=keys.txt \\
    uvicorn --factory recsys.serve.app:factory --host 127.0.0.1 --port 8000 --workers 4
"""


class ServeError(ValueError):
    """The service cannot start as asked (no keys, no such directory, extra missing); the message says what to do."""


def add_arguments(ap: argparse.ArgumentParser) -> None:
    d = ServeConfig()
    ap.epilog = EPILOG
    ap.add_argument("-o", "--out", type=Path, required=True, help="run directory or retrain root to serve")
    ap.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1: loopback only)")
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--api-keys-file", type=Path, default=None, help="API keys, one per line (and/or env RECSYS_API_KEYS)")
    ap.add_argument("--no-auth", action="store_true", help="serve /v1/* without API keys (logged as a warning)")
    ap.add_argument("--variant", default=d.variant, help="student variant to serve")
    ap.add_argument("--no-ranker", action="store_true", help="retrieval only, even when the version has a ranker")
    ap.add_argument("--max-k", type=int, default=d.max_k)
    ap.add_argument("--max-ids", type=int, default=d.max_ids, help="user/item ids per request")
    ap.add_argument("--reload-interval", type=float, default=d.reload_interval_s,
                    help="seconds between checks of `current`")
    ap.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="recsys serve", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(ap)
    return ap


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    try:
        import uvicorn

        from recsys.serve.app import create_app, one_thread_per_request
        from recsys.serve.auth import ENV, AuthError, load_keys
        from recsys.serve.metrics import ServeMetrics
        from recsys.serve.reload import Holder
    except ImportError as e:
        raise ServeError(f"{e.name} is missing; install the serve extra: pip install -e '.[serve,index,rank]'") \
            from None
    if not args.out.is_dir():
        raise ServeError(f"{args.out}: no such directory; pass a run directory or a retrain root")
    if args.no_auth:
        keys = None
        log.warning("--no-auth: /v1/* is served WITHOUT access control on %s:%d", args.host, args.port)
    else:
        try:
            keys = load_keys(keys_file=args.api_keys_file, env=os.environ.get(ENV))
        except AuthError as e:
            raise ServeError(str(e)) from None
    cfg = ServeConfig(variant=args.variant, use_ranker=not args.no_ranker, max_k=args.max_k, max_ids=args.max_ids,
                      reload_interval_s=args.reload_interval)
    from recsys.config import ConfigError, check_ranges

    try:
        check_ranges(cfg)
    except ConfigError as e:
        raise ServeError(f"{e} (--max-k, --max-ids, --reload-interval)") from None
    one_thread_per_request()
    app = create_app(holder=Holder(args.out, cfg=cfg, metrics=ServeMetrics()), keys=keys, cfg=cfg)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, access_log=False)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (``python -m recsys.serve.cli``); ``recsys serve`` goes through pipelines/serve.py."""
    try:
        return run(build_parser().parse_args(argv))
    except ServeError as e:
        raise SystemExit(f"error: {e}") from None


if __name__ == "__main__":
    raise SystemExit(main())
