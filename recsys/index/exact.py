"""Exact maximum-inner-product top-k on CPU: blocked matmul + top-k, numpy in, numpy out.

Why not faiss ``IndexFlatIP``: on a 2-core CPU it reaches ~12% of the matmul bound at d=64, torch
``mm`` + ``topk`` ~33%. What is done here (torch, imported lazily; numpy fallback without torch):

* items x queries, not queries x items: ``scores[n, q] = X[n] . Q[q]`` with the query block as the
  contiguous inner dimension runs the GEMM near peak even at d=64;
* group-max pruning instead of a full top-k over every score: each block of item scores is cut into
  groups of ``g`` consecutive items, the per-group maximum is a vectorised elementwise max of ``g`` rows,
  and only the ``k`` groups with the largest maxima can hold the block's top-k (each top-k item's group
  has max >= the k-th value, and at most k groups can). The exact top-k is then taken over those k*g
  scores. The selection work drops by ~g while staying exact;
* seen items are set to -inf inside the score block, so no over-fetch is needed;
* all buffers are allocated once per call.

A few queries at a time (``B <= SMALL_BATCH``, the service's one-user requests) are bandwidth-bound: one
matrix-vector pass over all items plus ``argpartition`` (numpy, no OpenMP region per block) is used there.
benchmarks/bench_index.py ``exact_single`` measures it beside faiss ``knn`` (IndexFlatIP's kernel), torch
``mv`` + ``topk`` and the blocked path, one query per call at 1M items: on the shared 2-core machine the
blocked path swung from 0.4 to 20 queries/s at 64-d with the OpenMP wait policy and the load (each block is a
parallel region; spinning threads that lose their core stall it), the numpy pass stayed at 4-10, within noise
of the best engine of each run.
"""

from __future__ import annotations

import numpy as np

from recsys.index.seen import Seen

GROUP = 16  # items per group for the max-pruning; 16 balanced the max pass and the gather on this CPU
SMALL_BATCH = 4  # queries taking the numpy pass (B = 1 is what the bench measures; to 4 it stays memory-bound)


def exact_topk(
    items: np.ndarray,
    queries: np.ndarray,
    *,
    k: int,
    exclude: Seen | None = None,
    item_block: int = 16384,
    query_block: int = 256,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k of ``queries @ items.T``.

    Args:
        items: (N, d) float32; row index = returned id.
        queries: (B, d) float32.
        k: results per query.
        exclude: row ``b`` may not return the item rows in ``exclude`` row ``b``.
    Returns:
        scores (B, k) float32 best first, ids (B, k) int64; -inf / -1 where fewer than k items remain.
    """
    items = np.ascontiguousarray(items, dtype=np.float32)
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    if items.ndim != 2 or queries.ndim != 2 or items.shape[1] != queries.shape[1]:
        raise ValueError(f"exact_topk: items {items.shape} and queries {queries.shape} must be (N, d) and (B, d)")
    if len(queries) <= SMALL_BATCH:
        return _numpy_topk(items, queries, k=k, exclude=exclude, item_block=item_block)
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is optional for the index
        return _numpy_topk(items, queries, k=k, exclude=exclude, item_block=item_block)
    return _torch_topk(torch, items, queries, k=k, exclude=exclude, item_block=item_block, query_block=query_block)


def _blank(b: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    return np.full((b, k), -np.inf, dtype=np.float32), np.full((b, k), -1, dtype=np.int64)


def _torch_topk(torch, items, queries, *, k, exclude, item_block, query_block):  # type: ignore[no-untyped-def]
    n_items, b_total = len(items), len(queries)
    out_s, out_i = _blank(b_total, k)
    kk = min(k, n_items)
    if kk == 0 or b_total == 0:
        return out_s, out_i
    x = torch.from_numpy(items)
    q_all = torch.from_numpy(queries)
    bs = min(item_block, n_items)
    buf = torch.empty(bs * min(query_block, b_total))
    arange_g = torch.arange(GROUP)
    neg_inf = float("-inf")
    with torch.inference_mode():
        for q0 in range(0, b_total, query_block):
            q1 = min(b_total, q0 + query_block)
            nq = q1 - q0
            q_t = q_all[q0:q1].T.contiguous()  # (d, nq)
            cols_q = torch.arange(nq).unsqueeze(1)
            ex_row = ex_item = None
            if exclude is not None:
                r, it = exclude.rows(q0, q1).pairs()
                order = np.argsort(it, kind="stable")
                ex_row, ex_item = r[order], it[order]
            best_v = best_i = None
            for s in range(0, n_items, bs):
                e = min(n_items, s + bs)
                n = e - s
                blk = buf[: n * nq].view(n, nq)
                torch.mm(x[s:e], q_t, out=blk)
                if ex_item is not None:
                    lo, hi = np.searchsorted(ex_item, [s, e])
                    if hi > lo:
                        blk[torch.from_numpy(ex_item[lo:hi] - s), torch.from_numpy(ex_row[lo:hi])] = neg_inf
                kb = min(kk, n)
                if n % GROUP == 0 and kb * GROUP * 4 <= n:
                    gmax = blk.view(n // GROUP, GROUP, nq).amax(1)  # (n/g, nq)
                    gi = gmax.T.topk(kb, dim=1).indices  # (nq, kb) groups
                    rows = (gi.unsqueeze(2) * GROUP + arange_g).reshape(nq, kb * GROUP)
                    v, j = blk[rows, cols_q].topk(kb, dim=1)
                    i = rows.gather(1, j)
                else:
                    v, i = blk.T.topk(kb, dim=1)
                i = i + s
                if best_v is None:
                    best_v, best_i = v, i
                else:
                    best_v, j = torch.cat([best_v, v], 1).topk(kk, dim=1)
                    best_i = torch.cat([best_i, i], 1).gather(1, j)
            out_s[q0:q1, :kk] = best_v.numpy()
            out_i[q0:q1, :kk] = best_i.numpy()
    out_i[~np.isfinite(out_s)] = -1
    out_s[out_i < 0] = -np.inf
    return out_s, out_i


def _numpy_topk(items, queries, *, k, exclude, item_block):  # type: ignore[no-untyped-def]
    n_items, b_total = len(items), len(queries)
    out_s, out_i = _blank(b_total, k)
    kk = min(k, n_items)
    if kk == 0:
        return out_s, out_i
    qb = max(1, (1 << 22) // max(1, n_items))  # ~16 MB of scores per block
    for q0 in range(0, b_total, qb):
        q1 = min(b_total, q0 + qb)
        sc = queries[q0:q1] @ items.T
        if exclude is not None:
            r, it = exclude.rows(q0, q1).pairs()
            sc[r, it] = -np.inf
        part = np.argpartition(-sc, kk - 1, axis=1)[:, :kk]
        ps = np.take_along_axis(sc, part, 1)
        o = np.argsort(-ps, axis=1, kind="stable")
        out_s[q0:q1, :kk] = np.take_along_axis(ps, o, 1)
        out_i[q0:q1, :kk] = np.take_along_axis(part, o, 1)
    out_i[~np.isfinite(out_s)] = -1
    return out_s, out_i
