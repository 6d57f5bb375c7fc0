"""Routes and middleware of the service (FastAPI on uvicorn).

    POST /v1/recommend  {"user_ids": ["u1"], "k": 10}  or  {"history": ["i1", "i2"], "k": 10}
    POST /v1/similar    {"item_ids": ["i1"], "k": 10}
    GET  /healthz       200 while the process is up
    GET  /readyz        200 once a verified version is loaded, else 503 (with the last load error)
    GET  /metrics       Prometheus text

``/v1/*`` needs ``Authorization: Bearer <key>`` unless the app was built with ``keys=None`` (``--no-auth``).
Every error is a JSON ``{"error": "..."}`` with a 4xx status (5xx only for a bug, without a traceback).
Handlers parse the body themselves (any content type is read as JSON, strict pydantic models) and run the
numpy/faiss work in a worker thread, so it never blocks the event loop; each request reads
``holder.current`` once, so a swap mid-request does not affect it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import anyio
import polars as pl
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ValidationError

from recsys.serve.auth import KeyCheck
from recsys.serve.config import ServeConfig
from recsys.serve.metrics import ServeMetrics
from recsys.serve.reload import Holder, Served
from recsys.serve.schemas import (
    Item,
    ItemResult,
    RecommendRequest,
    RecommendResponse,
    SimilarRequest,
    SimilarResponse,
    UserResult,
    check_limits,
)

log = logging.getLogger(__name__)
Send = Callable[[dict[str, Any]], Awaitable[None]]
M = TypeVar("M", bound=BaseModel)


async def _send_json(send: Send, status: int, message: str, headers: list[tuple[bytes, bytes]] = ()) -> None:
    import json

    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *headers]})
    await send({"type": "http.response.body", "body": body})


class Guard:
    """Outermost ASGI layer: metrics of every request, body size limit, API-key check on ``/v1/``."""

    def __init__(self, app: Any, *, metrics: ServeMetrics, keys: KeyCheck | None, max_body: int) -> None:
        self.app, self.metrics, self.keys, self.max_body = app, metrics, keys, max_body

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0 = time.perf_counter()
        route = self.metrics.route(scope["path"])
        status = [500]

        async def send_wrapped(msg: dict[str, Any]) -> None:
            if msg["type"] == "http.response.start":
                status[0] = msg["status"]
            await send(msg)

        try:
            await self._guarded(scope, receive, send_wrapped)
        finally:
            self.metrics.requests.labels(route=route, status=str(status[0])).inc()
            self.metrics.latency.labels(route=route).observe(time.perf_counter() - t0)

    async def _guarded(self, scope: dict[str, Any], receive: Any, send: Send) -> None:
        headers = dict(scope["headers"])
        if self.keys is not None and scope["path"].startswith("/v1/"):
            auth = headers.get(b"authorization")
            code = self.keys.check(auth.decode("latin-1") if auth else None)
            if code == 401:
                return await _send_json(send, 401, "missing API key: send 'Authorization: Bearer <key>'",
                                        [(b"www-authenticate", b"Bearer")])
            if code == 403:
                return await _send_json(send, 403, "API key not accepted")
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            return await _send_json(send, 413, f"request body over {self.max_body} bytes")
        seen = 0

        async def limited() -> dict[str, Any]:  # a chunked body without content-length is counted as it arrives
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.max_body:
                    raise HTTPException(413, f"request body over {self.max_body} bytes")
            return msg

        await self.app(scope, limited, send)


def _validation_message(exc: ValidationError) -> tuple[int, str]:
    errs = exc.errors(include_url=False)
    if any(e.get("type") == "json_invalid" for e in errs):
        return 400, "malformed JSON body: " + "; ".join(e["msg"] for e in errs)
    parts = []
    for e in errs[:5]:
        loc = ".".join(str(x) for x in e.get("loc", ())) or "body"
        parts.append(f"{loc}: {e['msg']}")
    return 422, "invalid request: " + "; ".join(parts)


async def _parse(request: Request, model: type[M]) -> M:
    """The body as ``model`` (any content type is read as JSON); 400 malformed JSON, 422 wrong fields/types."""
    try:
        return model.model_validate_json(await request.body())
    except ValidationError as e:
        status, msg = _validation_message(e)
        raise HTTPException(status, msg) from None


def _items(df: pl.DataFrame, id_col: str) -> dict[str | None, list[Item]]:
    out: dict[str | None, list[Item]] = {}
    for key, iid, score in zip(df[id_col].to_list(), df["item_id" if id_col != "item_id" else "similar_item_id"]
                               .to_list(), df["score"].to_list()):
        out.setdefault(key, []).append(Item(item_id=iid, score=float(score)))
    return out


def one_thread_per_request() -> None:
    """Concurrent requests are the parallelism: each request's faiss / torch / OpenMP work runs on one thread
    (default: every core per request, which on 2 cores and 8 clients oversubscribes the CPU several times).
    Set OMP_NUM_THREADS yourself to override."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if "torch" in sys.modules:  # imported already: the env var is read only at its first parallel region
        sys.modules["torch"].set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


def create_app(*, holder: Holder, keys: list[str] | None, cfg: ServeConfig | None = None) -> Any:
    """The ASGI app over ``holder`` (started on startup, stopped on shutdown). ``keys=None``: no auth.
    A serving process calls ``one_thread_per_request()`` first (the command and ``factory`` do)."""
    cfg = cfg or holder.cfg
    metrics = holder.metrics

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await anyio.to_thread.run_sync(holder.start)
        yield
        await anyio.to_thread.run_sync(holder.stop)

    api = FastAPI(title="recsys", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)

    @api.exception_handler(HTTPException)
    async def _http(_: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    @api.exception_handler(Exception)
    async def _bug(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return JSONResponse({"error": f"internal error ({type(exc).__name__}); see the service log"},
                            status_code=500)

    def served() -> Served:
        cur = holder.current
        if cur is None:
            raise HTTPException(503, f"no verified version loaded yet ({holder.last_error or 'loading'})")
        return cur

    @api.post("/v1/recommend")
    async def recommend(request: Request) -> RecommendResponse:
        req = await _parse(request, RecommendRequest)
        if (msg := check_limits(req, cfg)) is not None:
            raise HTTPException(422, msg)
        return await anyio.to_thread.run_sync(_recommend, req, served())

    def _recommend(req: RecommendRequest, srv: Served) -> RecommendResponse:
        rec = srv.rec
        if req.user_ids is not None:
            users = list(dict.fromkeys(req.user_ids))  # a repeated id is answered once
            df = rec.recommend(users, k=req.k, exclude_seen=req.exclude_seen, on_unknown="popular")
            fb = dict(zip(df["user_id"].to_list(), df["fallback"].to_list())) if "fallback" in df.columns else {}
            items = _items(df, "user_id")
            results = [UserResult(user_id=u, fallback=bool(fb.get(u, False)), items=items.get(u, [])) for u in users]
            n_fb = sum(r.fallback for r in results)
            ignored = None
        else:
            if rec.user_tower is None:
                raise HTTPException(409, f"version {srv.version} was exported without its user tower; anonymous "
                                    "histories need a student trained by this version of recsys")
            df = rec.recommend_history([req.history], k=req.k, exclude_seen=req.exclude_seen)
            results = [UserResult(user_id=None, fallback=bool(df["fallback"].any()) if df.height else True,
                                  items=[Item(item_id=i, score=float(s)) for i, s in
                                         zip(df["item_id"].to_list(), df["score"].to_list())])]
            n_fb = int(results[0].fallback)
            ignored = rec.unknown_items(req.history or [])
        if n_fb:
            metrics.fallbacks.labels(route="/v1/recommend").inc(n_fb)
        return RecommendResponse(version=srv.version, results=results, ignored_history_items=ignored,
                                 reranked=rec.ranker is not None and req.user_ids is not None)

    @api.post("/v1/similar")
    async def similar(request: Request) -> SimilarResponse:
        req = await _parse(request, SimilarRequest)
        if (msg := check_limits(req, cfg)) is not None:
            raise HTTPException(422, msg)
        return await anyio.to_thread.run_sync(_similar, req, served())

    def _similar(req: SimilarRequest, srv: Served) -> SimilarResponse:
        wanted = list(dict.fromkeys(req.item_ids))  # a repeated id is answered once
        df = srv.rec.similar_items(wanted, k=req.k, on_unknown="popular")
        fb = dict(zip(df["item_id"].to_list(), df["fallback"].to_list()))
        items = _items(df, "item_id")
        results = [ItemResult(item_id=i, fallback=bool(fb.get(i, False)), items=items.get(i, [])) for i in wanted]
        n_fb = sum(r.fallback for r in results)
        if n_fb:
            metrics.fallbacks.labels(route="/v1/similar").inc(n_fb)
        return SimilarResponse(version=srv.version, results=results)

    @api.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @api.get("/readyz")
    def readyz() -> JSONResponse:
        cur = holder.current
        if cur is None:
            return JSONResponse({"ready": False, "error": holder.last_error or "loading"}, status_code=503)
        return JSONResponse({"ready": True, "version": cur.version, "load_seconds": round(cur.load_seconds, 3),
                             "reranker": cur.rec.ranker is not None, "user_tower": cur.rec.user_tower is not None,
                             "last_reload_error": holder.last_error})

    @api.get("/metrics")
    def prometheus() -> Response:
        return Response(metrics.render(), media_type=metrics.content_type)

    return Guard(api, metrics=metrics, keys=None if keys is None else KeyCheck(keys), max_body=cfg.max_body_bytes)


# ------------------------------------------------------------------ uvicorn --workers
ROOT_ENV, KEYS_FILE_ENV, NO_AUTH_ENV = "RECSYS_SERVE_ROOT", "RECSYS_SERVE_KEYS_FILE", "RECSYS_SERVE_NO_AUTH"


def factory() -> Any:
    """App for ``uvicorn --factory recsys.serve.app:factory --workers N`` (each worker verifies and loads the
    version itself). Reads RECSYS_SERVE_ROOT, RECSYS_SERVE_KEYS_FILE / RECSYS_API_KEYS, RECSYS_SERVE_NO_AUTH=1."""
    from recsys.serve.auth import ENV, load_keys

    one_thread_per_request()
    root = os.environ.get(ROOT_ENV)
    if not root:
        raise SystemExit(f"error: set {ROOT_ENV} to a run directory or retrain root")
    keys = None if os.environ.get(NO_AUTH_ENV) == "1" else \
        load_keys(keys_file=os.environ.get(KEYS_FILE_ENV), env=os.environ.get(ENV))
    if keys is None:
        log.warning("%s=1: serving without access control", NO_AUTH_ENV)
    cfg = ServeConfig()
    return create_app(holder=Holder(Path(root), cfg=cfg, metrics=ServeMetrics()), keys=keys, cfg=cfg)
