"""HTTP service over a published version: API keys, bounded strict requests, /healthz /readyz /metrics, and hot
reload when `current` moves (FastAPI on uvicorn; see README "Serving").

    recsys serve -o runs/published --api-keys-file keys.txt [--host 127.0.0.1] [--port 8000] [--no-ranker]

RUN_ROOT (-o) is a retrain root (versions/ + current: the service follows `current`, verifying each new version
before swapping it in) or one run directory (served as is). /v1/* needs an API key unless --no-auth.
"""

from __future__ import annotations

import argparse

from pipelines.common import UsageError, command_main


def add_arguments(ap: argparse.ArgumentParser) -> None:
    from recsys.serve.cli import add_arguments as add

    add(ap)


def run(args: argparse.Namespace) -> int:
    from recsys.serve.cli import ServeError
    from recsys.serve.cli import run as serve

    try:
        return serve(args)
    except ServeError as e:
        raise UsageError(str(e)) from None


def main(argv: list[str] | None = None) -> int:
    return command_main(argv, prog="recsys serve", doc=__doc__, add=add_arguments, run=run)
