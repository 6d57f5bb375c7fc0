"""Helpers of the service tests: run an app with uvicorn on a free loopback port, build an app over a root."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

KEY = "test-key-0123456789abcdef"


@contextlib.contextmanager
def running(app: object) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free loopback port in a thread; yields the base URL."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    t = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    t.start()
    t0 = time.time()
    while not server.started:
        if not t.is_alive() or time.time() - t0 > 60:
            raise AssertionError("the service did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        t.join(timeout=30)
        sock.close()


def make_app(root: Path, *, keys: list[str] | None = (KEY,), **cfg: object) -> tuple[object, object]:
    from recsys.serve.app import create_app
    from recsys.serve.config import ServeConfig
    from recsys.serve.metrics import ServeMetrics
    from recsys.serve.reload import Holder

    c = ServeConfig(**cfg)
    holder = Holder(root, cfg=c, metrics=ServeMetrics())
    return create_app(holder=holder, keys=None if keys is None else list(keys), cfg=c), holder


def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {KEY}"}
