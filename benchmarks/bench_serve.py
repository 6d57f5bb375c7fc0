"""Load test of `recsys serve` over HTTP on loopback: QPS and latency at 1, 8 and 64 concurrent clients,
with and without the ranker, and during a hot reload (publish of a new version mid-load).

    recsys demo -o runs/demo                            # Beauty, the main job (~10-25 min); then:
    python benchmarks/bench_serve.py --run runs/demo    # ~5-9 min on 2 busy cores
    python benchmarks/bench_serve.py --root runs/shop --next-root runs/shop_next   # retrain roots of your own
    python benchmarks/bench_serve.py                    # a small synthetic published root (~2-4 min to build)

``--run RUN_DIR`` serves Beauty as a user publishes an evaluated run: the run directory (tables, teacher, student,
index, the gated union re-ranker) is copied into ``<tmp>/root/work/0001`` and published with
``recsys.publish.store.publish`` (every recorded artifact's sha256 verified, renamed into ``versions/``, ``current``
switched by one rename: what `recsys retrain` does after its gate). For the reload phase a second copy is published
as 0002 while 8 clients are sending requests; the service verifies and loads it in its reload thread and swaps.
The copies are hard links (artifacts are written by atomic rename and never modified in place, so the source run is
not touched; the publish rewrites only the copy's manifest.json, also by rename).

The service runs as its own process (`recsys serve`, one uvicorn worker); the load generator is an asyncio
loop with one httpx.AsyncClient, ``c`` tasks each sending one request after the other (closed loop: c requests
in flight). Every request is POST /v1/recommend {"user_ids": [one known user], "k": 10}. Client and server share
the machine's cores, so the figures are a floor for a server with its own cores.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, load_average, write_result

KEY = "bench-key-" + "x" * 22
DAY = 86_400


def build_root(dest: Path, *, users: int, items: int) -> tuple[Path, Path]:
    """Two real versions from synthetic shop logs: ``root`` with 0001 published, and ``next_`` (a copy of it
    retrained on one more week -> 0002) whose version is published into ``root`` during the reload phase."""
    import polars as pl

    from pipelines.retrain import main
    from recsys.data.synthetic import make_shop

    shop = make_shop(n_users=users, n_items=items, n_categories=12, seed=0)
    ev = shop.interactions.select("user_id", "item_id", "timestamp")
    cut = int(ev["timestamp"].min()) + 34 * DAY
    logs = dest / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    ev.filter(pl.col("timestamp") < cut).write_parquet(logs / "base.parquet")
    ev.filter(pl.col("timestamp") >= cut).write_parquet(logs / "week.parquet")
    assert shop.items is not None
    shop.items.write_parquet(logs / "items.parquet")
    ov = ["data.source=table", "data.split=temporal", f"data.items_path={logs / 'items.parquet'}", "data.kcore=0",
          "data.valid_days=3", "data.test_days=3", f"teacher.cache_dir={dest / 'cache'}", "teacher.adapter_epochs=1",
          "student.epochs=3", "student.quantize_int8=false", "index.kind=flat", "index.k=100", "rank.n_estimators=100"]
    root, next_ = dest / "root", dest / "next"
    for out, log in ((root, "base"), (next_, "week")):
        if out == next_:
            shutil.copytree(root, next_, symlinks=True)
        t0 = time.time()
        rc = main(["-q", "--accept", "-o", str(out), f"logs={logs / f'{log}.parquet'}", *ov])
        assert rc == 0, f"retrain of {out} failed (rc {rc})"
        print(f"built {out} in {time.time() - t0:.0f}s", flush=True)
    return root, next_


def publish_copy(run: Path, root: Path) -> str:
    """Publish a hard-linked copy of the evaluated run directory ``run`` as the next version of ``root``."""
    from recsys.artifacts import RunDir
    from recsys.publish import store

    root.mkdir(parents=True, exist_ok=True)
    with store.locked(root):
        work = store.new_work(root)
        shutil.rmtree(work.root)
        shutil.copytree(run, work.root, copy_function=os.link, ignore=shutil.ignore_patterns(".lock"))
        store.publish(root, RunDir(work.root), keep=3, info={"source": str(run)})
    name = store.current_name(root)
    print(f"published {run} as {name} of {root}", flush=True)
    return str(name)


def served_of(run: Path) -> str:
    from recsys.publish import store

    gate = ((store.read_manifest(run).get("stages") or {}).get("rank") or {}).get("report", {}).get("gate", {})
    return f"{gate.get('served')} (rank gate, valid NDCG@10 {gate.get('valid')})"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(root: Path, *, ranker: bool, log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    cmd = [sys.executable, "-m", "pipelines.cli", "serve", "-o", str(root), "--port", str(port),
           "--reload-interval", "0.5", "--log-level", "warning", *([] if ranker else ["--no-ranker"])]
    proc = subprocess.Popen(cmd, env={**os.environ, "RECSYS_API_KEYS": KEY}, stdout=log.open("w"),
                            stderr=subprocess.STDOUT, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    import httpx

    t0 = time.time()
    while True:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                print(f"service ready in {time.time() - t0:.0f}s ({'with' if ranker else 'without'} ranker)",
                      flush=True)
                return proc, url
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.time() - t0 > 600:
            proc.kill()
            raise RuntimeError(f"service did not become ready:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)


async def load(url: str, *, users: list[str], clients: int, seconds: float, warmup: float = 1.0,
               during: Any = None, until_new: float = 0.0) -> dict[str, Any]:
    """``clients`` closed-loop tasks for ``warmup + seconds`` (no request starts later; those in flight finish):
    every request that completes after the warm-up counts, QPS = those / the time from the warm-up's end to the
    last completion (a slow level is then measured on the requests it finished, not reported as 0).

    ``during``: called (in a thread) a quarter of the way in; with ``until_new`` > 0 the load then goes on until a
    version other than the first one served has answered for ``until_new`` seconds (at most 240 s more)."""
    import httpx

    lat: list[float] = []
    versions: dict[str, int] = {}
    failed: list[str] = []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    first: list[str] = []
    new_at: list[float] = []
    async with httpx.AsyncClient(base_url=url, timeout=180, limits=limits,
                                 headers={"Authorization": f"Bearer {KEY}"}) as client:
        t_start = time.perf_counter()
        t_end = t_start + warmup + seconds

        def done(now: float) -> bool:
            if now < t_end:
                return False
            if not until_new:
                return True
            return (bool(new_at) and now >= new_at[0] + until_new) or now >= t_end + 240

        async def worker(j: int) -> None:
            i = j
            while not done(now := time.perf_counter()):
                i += clients
                try:
                    r = await client.post("/v1/recommend", json={"user_ids": [users[i % len(users)]], "k": 10})
                    ok = r.status_code == 200
                    v = r.json().get("version") if ok else None
                except httpx.HTTPError as e:
                    ok, v = False, repr(e)
                if not ok:
                    failed.append(v or f"status {r.status_code}")
                elif not first:
                    first.append(v)
                elif v != first[0] and not new_at:
                    new_at.append(time.perf_counter())
                if (end := time.perf_counter()) >= t_start + warmup:  # completed in the measured window
                    lat.append(end - now)
                    versions[str(v)] = versions.get(str(v), 0) + 1

        tasks = [asyncio.create_task(worker(j)) for j in range(clients)]
        if during is not None:
            await asyncio.sleep(warmup + seconds / 4)
            await asyncio.to_thread(during)
        await asyncio.gather(*tasks)
    measured = max(time.perf_counter() - t_start - warmup, 1e-9)
    ms = np.array(lat) * 1e3 if lat else np.array([np.nan])
    return {"requests": len(lat), "seconds": round(measured, 1), "qps": round(len(lat) / measured, 1),
            "failed": len(failed),
            "p50_ms": round(float(np.percentile(ms, 50)), 2), "p95_ms": round(float(np.percentile(ms, 95)), 2),
            "p99_ms": round(float(np.percentile(ms, 99)), 2),
            "versions": ", ".join(f"{v}: {n}" for v, n in versions.items()), "failures": failed[:5],
            "version_changed": len([v for v in versions if v != "None"]) > 1, "load_avg": load_average()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, default=None,
                    help="an evaluated run directory (e.g. `recsys demo -o runs/demo`, Beauty) published as 0001 of a "
                         "fresh root, and again as 0002 during the reload phase")
    ap.add_argument("--root", type=Path, default=None, help="an existing retrain root (default: build a small one)")
    ap.add_argument("--next-root", type=Path, default=None,
                    help="a root whose current version is published into --root for the reload phase")
    ap.add_argument("--users", type=int, default=2000)
    ap.add_argument("--items", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=8.0, help="measured seconds per level")
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 8, 64])
    ap.add_argument("--out-dir", type=Path, default=None)
    ap.add_argument("--keep", type=Path, default=None, help="build the roots here and keep them (default: a temp dir)")
    args = ap.parse_args(argv)
    import polars as pl

    from recsys.artifacts import RunDir
    from recsys.publish import store

    tmp = args.keep or Path(tempfile.mkdtemp(prefix="bench_serve_"))
    tmp.mkdir(parents=True, exist_ok=True)
    built = args.root is None and args.run is None
    publish_run = None
    if args.run is not None:
        root, next_ = tmp / "root", None
        publish_run = args.run.resolve()
        publish_copy(publish_run, root)
    elif built:
        root, next_ = build_root(tmp, users=args.users, items=args.items)
    else:
        root, next_ = args.root, args.next_root
    cur = root / store.CURRENT
    users = pl.read_parquet(cur / "tables" / "users.parquet")["user_id"].to_list()
    rng = np.random.default_rng(0)
    users = [users[i] for i in rng.permutation(len(users))]
    n_items = pl.read_parquet(cur / "tables" / "items.parquet").height
    rows: list[dict[str, Any]] = []
    try:
        for ranker in (False, True):
            proc, url = start_server(root, ranker=ranker, log=tmp / f"serve_{ranker}.log")
            try:
                for c in args.clients:
                    r = asyncio.run(load(url, users=users, clients=c, seconds=args.seconds))
                    what = "with ranker" if ranker else "retrieval only"
                    rows.append({"name": f"QPS, {what}, {c} concurrent clients", "value": r["qps"], "unit": "req/s",
                                 "clients": c, "ranker": "LightGBM" if ranker else "none", "headline": c in (1, 8),
                                 **r})
                    print(rows[-1], flush=True)
                if ranker and (next_ is not None or publish_run is not None):
                    def publish() -> None:
                        if publish_run is not None:
                            publish_copy(publish_run, root)
                            return
                        assert next_ is not None
                        name = store.current_name(next_)
                        work = root / store.WORK / name
                        shutil.copytree(next_ / store.VERSIONS / name, work)
                        with store.locked(root):
                            store.publish(root, RunDir(work), keep=3)

                    r = asyncio.run(load(url, users=users, clients=8, seconds=max(12.0, args.seconds),
                                         during=publish, until_new=3.0))
                    rows.append({"name": "failed requests during a hot reload (with ranker, 8 clients)",
                                 "value": r["failed"], "unit": "requests", "target": "0 failed, version changes",
                                 "met": r["failed"] == 0 and r["version_changed"], "clients": 8,
                                 "ranker": "LightGBM", **r})
                    print(rows[-1], flush=True)
            finally:
                proc.terminate()
                proc.wait(timeout=30)
    finally:
        if args.keep is None:
            shutil.rmtree(tmp, ignore_errors=True)
    what = (f"synthetic shop logs, {len(users)} users x {n_items} items, two versions built by `recsys retrain` "
            "(flat index, k=100 candidates for the ranker, LightGBM 100 trees)") if built else \
        f"{root}, {len(users)} users x {n_items} items"
    if publish_run is not None:
        what = (f"{publish_run} ({len(users)} users x {n_items} items) published as 0001 of a fresh root (and as 0002 "
                f"in the reload phase); served row: {served_of(publish_run)}")
    notes = [
        f"root: {what}",
        ("one `recsys serve` process (1 uvicorn worker) + the asyncio/httpx load generator on the same machine; "
         "closed loop, c requests in flight, each POST /v1/recommend with 1 known user and k=10, API key checked"),
        (f"each level: 1 s warm-up, then requests start for {args.seconds:g} s and those in flight finish; every "
         "request completing after the warm-up counts (QPS over the time to the last completion); latency = "
         "client-side wall time per request; load_avg = os.getloadavg() after each level"),
        ("hot reload: 8 clients; a quarter of the way in the next version is published into the served root (copy "
         "into work/ + store.publish, as `recsys retrain` does); the service verifies and loads it in its reload "
         "thread while serving, then swaps"),
    ]
    write_result("serve", results=rows, notes=notes, out_dir=args.out_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
