"""One measurement of bench_growth.py, run in its own process: ``python growth_workers.py KIND SIZE``.

Prints one JSON line: seconds (median), all timings, RSS before the work and (from the parent's
getrusage) the process peak, so memory growth is the peak minus the starting RSS.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import current_rss_mib, emit, measure  # noqa: E402

DIM = 64
QUERIES = 1024
K = 100


def _adaptive(fn: Any, *, repeats: int = 3) -> dict[str, Any]:
    """Median of ``repeats`` after one warm-up, or a single cold run when one run already takes > 20 s."""
    t0 = time.perf_counter()
    fn()
    first = time.perf_counter() - t0
    if first > 20:
        return {"median": first, "times": [round(first, 4)], "warmup": 0}
    r = measure(fn, repeats=repeats if first < 5 else 1, warmup=0)
    return {"median": r["median"], "times": r["times"], "warmup": 1}


def _vectors(n: int, *, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, DIM), dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def data(n: int) -> dict[str, Any]:
    """The data stage (polars prepare + leave-one-out + histories) on ``n`` synthetic interactions."""
    import polars as pl
    from synth_logs import as_loaded, make_logs

    from recsys.data.prepare import prepare
    from recsys.data.split import leave_one_out

    inter, items = make_logs(n_rows=n)
    loaded = as_loaded(inter, items)

    def run() -> None:
        p = prepare(loaded, kcore_k=5, require_catalogue=False)
        train, _, _ = leave_one_out(p.interactions)
        train.group_by("user").agg(pl.col("item").sort_by("pos"))

    return _adaptive(run)


def exact(n: int) -> dict[str, Any]:
    """Exact top-100 for 1024 queries by blocked torch matmul + top-k (recsys.index.exact_topk)."""
    items, q = _vectors(n), _vectors(QUERIES, seed=1)
    try:
        from recsys.index.exact import exact_topk

        fn = lambda: exact_topk(items, q, k=K)  # noqa: E731
    except ImportError:
        import torch

        ti, tq = torch.from_numpy(items), torch.from_numpy(q)
        fn = lambda: torch.topk(tq @ ti.T, K, dim=1)  # noqa: E731
    r = _adaptive(fn)
    r["queries_per_s"] = QUERIES / r["median"]
    return r


def faiss_build(n: int) -> dict[str, Any]:
    """IVF-Flat build (k-means on <= 64 points per list, then add) with nlist ~ 4 sqrt(N)."""
    import faiss

    x = _vectors(n)
    nlist = max(1, min(round(4 * n**0.5), n // 39))
    sample = x[np.random.default_rng(0).choice(n, min(n, 64 * nlist), replace=False)]

    def run() -> None:
        idx = faiss.index_factory(DIM, f"IVF{nlist},Flat", faiss.METRIC_INNER_PRODUCT)
        idx.cp.niter = 10
        idx.train(sample)
        idx.add(x)

    r = _adaptive(run)
    r["nlist"] = nlist
    return r


def student(n: int) -> dict[str, Any]:
    """Train steps/s of a TorchRec two-tower (EBC under DMP, fused row-wise Adagrad) with an n-row item table.

    Uses recsys.student.sharding (the student's own planner + DMP wrapper) on a 1-process gloo group.
    """
    import torch
    import torch.nn.functional as F
    from torch import nn
    from torchrec.modules.embedding_configs import EmbeddingBagConfig, PoolingType
    from torchrec.modules.embedding_modules import EmbeddingBagCollection
    from torchrec.sparse.jagged_tensor import KeyedJaggedTensor

    from recsys.student.config import StudentConfig
    from recsys.student.sharding import dense_parameters, init_process_group, shard_model

    torch.set_num_threads(max(1, torch.get_num_threads()))
    cfg = StudentConfig(sharding="table_wise", device="cpu")
    _, _, device = init_process_group(device="cpu")

    class Towers(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.ebc = EmbeddingBagCollection(
                tables=[
                    EmbeddingBagConfig(
                        name="t_item",
                        embedding_dim=DIM,
                        num_embeddings=n,
                        feature_names=["hist", "item"],
                        pooling=PoolingType.MEAN,
                    )
                ],
                device=torch.device("meta"),
            )
            self.user_mlp = nn.Sequential(nn.Linear(DIM, 256), nn.ReLU(), nn.Linear(256, DIM))
            self.item_mlp = nn.Sequential(nn.Linear(DIM, 256), nn.ReLU(), nn.Linear(256, DIM))

        def forward(self, kjt: KeyedJaggedTensor, b: int) -> torch.Tensor:
            pooled = self.ebc(kjt).to_dict()
            u = F.normalize(self.user_mlp(pooled["hist"][:b]), dim=1)
            i = F.normalize(self.item_mlp(pooled["item"][b:]), dim=1)
            return F.cross_entropy(u @ i.T / 0.07, torch.arange(b))

    batch, hist_len = 1024, 20
    dmp, _ = shard_model(model=Towers(), cfg=cfg, device=device, batch_size=batch)
    opt = torch.optim.AdamW(list(dense_parameters(dmp).values()), lr=1e-3)
    rng = np.random.default_rng(0)

    def make() -> KeyedJaggedTensor:  # rows 0..b-1: user history bags; rows b..2b-1: candidate items
        hist = rng.integers(0, n, batch * hist_len)
        items = rng.integers(0, n, batch)
        lengths = np.concatenate([np.full(batch, hist_len), np.zeros(batch), np.zeros(batch), np.ones(batch)])
        return KeyedJaggedTensor(
            keys=["hist", "item"],
            values=torch.from_numpy(np.concatenate([hist, items])),
            lengths=torch.from_numpy(lengths.astype(np.int64)),
        )

    batches = [make() for _ in range(8)]
    state = {"i": 0}

    def step() -> None:
        for _ in range(5):
            kjt = batches[state["i"] % len(batches)]
            state["i"] += 1
            loss = dmp(kjt, batch)
            opt.zero_grad()
            loss.backward()
            opt.step()

    r = _adaptive(step)
    r["median"] /= 5  # per step
    r["examples_per_s"] = batch / r["median"]
    return r


KINDS = {"data": data, "exact": exact, "faiss_build": faiss_build, "student_step": student}
IMPORTS = {
    "data": ["polars", "recsys.data.prepare"],
    "exact": ["torch", "recsys.index.exact"],
    "faiss_build": ["faiss"],
    "student_step": ["torch", "torchrec", "recsys.student.sharding"],
}

if __name__ == "__main__":
    import importlib

    kind, size = sys.argv[1], int(sys.argv[2])
    for mod in IMPORTS[kind]:  # libraries loaded before the baseline RSS: growth counts data, not code
        try:
            importlib.import_module(mod)
        except ImportError:
            pass
    rss0 = current_rss_mib()
    out = KINDS[kind](size)
    out.pop("last", None)
    out["rss_start_mib"] = round(rss0, 1)
    emit(out)
