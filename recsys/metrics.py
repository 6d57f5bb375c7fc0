"""Full-ranking metrics: Recall, NDCG, HitRate, MRR and coverage @K (pure numpy/polars).

Shared by every stage that needs to measure itself (teacher adapter, student validation, index
tuning, evaluation), so it lives at the top of the package, beside ``artifacts`` and ``config``.

Protocol. For each (user, target item) the *rank* is the target's 0-based position in the ranking of
all catalogue items, with the user's history excluded (the target itself always stays a candidate).
Conservative by construction:
  * ties with the target count against it: rank = #(score > t) + #(score == t) - 1;
  * another item's NaN/+inf score ranks above every target;
  * a target whose own score is NaN or ±inf is a miss (counted in ``nonfinite_targets``).
Per-user metrics are averaged over users with at least one target.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np
import polars as pl

from recsys.topk import sorted_unique, top_k_rows

MISS = np.int64(2**62)  # rank of a target that is not retrieved at all
ScoreFn = Callable[[np.ndarray], np.ndarray]  # users (B,) -> scores (B, n_items)


@dataclasses.dataclass(frozen=True)
class EvalResult:
    """Per-target ranks plus what ``summary`` needs. ``per_target``: user, item, rank (i64, MISS = not found)."""

    per_target: pl.DataFrame
    n_items: int
    coverage: dict[int, float]  # K -> share of the catalogue in anyone's top-K
    nonfinite_targets: int = 0
    top_items: dict[int, np.ndarray] | None = dataclasses.field(default=None, compare=False, repr=False)  # K -> (N,)
    # bool: in someone's top-K (``evaluate_scores``; what ``merge`` needs to join the coverage of user shares)

    @staticmethod
    def merge(parts: Sequence[EvalResult]) -> EvalResult:
        """One result from ``evaluate_scores`` over disjoint user shares, in user order: the same result as one call
        over all their users (per-target rows concatenated, top-K item sets joined for the coverage)."""
        if not parts or any(p.top_items is None for p in parts):
            raise ValueError("EvalResult.merge needs the results of evaluate_scores (with their top_items)")
        seen = {k: np.logical_or.reduce([p.top_items[k] for p in parts]) for k in parts[0].top_items}  # type: ignore[index]
        return EvalResult(per_target=pl.concat([p.per_target for p in parts]), n_items=parts[0].n_items,
                          coverage={k: float(v.mean()) for k, v in seen.items()},
                          nonfinite_targets=sum(p.nonfinite_targets for p in parts), top_items=seen)

    def summary(self, ks: Sequence[int] = (10, 20)) -> dict[str, float]:
        out = summarize(self.per_target, ks=ks)
        for k in ks:
            if k in self.coverage:
                out[f"coverage@{k}"] = self.coverage[k]
        out["users"] = float(self.per_target["user"].n_unique())
        out["nonfinite_targets"] = float(self.nonfinite_targets)
        return out

    def by_slice(self, labels: pl.DataFrame, *, on: str, ks: Sequence[int] = (10, 20)) -> pl.DataFrame:
        """Metrics per slice. ``labels`` has column ``on`` ("user" or "item") and ``slice``."""
        joined = self.per_target.join(labels.select(on, "slice"), on=on, how="left").with_columns(
            pl.col("slice").fill_null("unlabelled"))
        rows = []
        for (name,), part in joined.group_by(["slice"], maintain_order=True):
            rows.append({"slice": name, "targets": part.height, **summarize(part, ks=ks)})
        return pl.DataFrame(rows).sort("slice")


def _idcg(n: np.ndarray, k: int) -> np.ndarray:
    disc = np.cumsum(1.0 / np.log2(np.arange(2, k + 2)))
    return disc[np.minimum(n, k) - 1]


def _user_values(per_target: pl.DataFrame, *, ks: Sequence[int]) -> tuple[pl.Series, dict[str, np.ndarray]]:
    """(users, {"recall@K" | "ndcg@K" | "hr@K" | "mrr@K": (U,) per-user values}) from per-target ranks."""
    r = pl.col("rank")
    aggs = [pl.len().alias("n"), r.min().alias("best")]
    for k in ks:
        aggs.append((r < k).sum().alias(f"hits{k}"))
        aggs.append(pl.when(r < k).then(1.0 / (r.cast(pl.Float64) + 2.0).log(2)).otherwise(0.0).sum().alias(f"dcg{k}"))
    per_user = per_target.group_by("user").agg(aggs)
    n = per_user["n"].to_numpy()
    best = per_user["best"].to_numpy()
    out: dict[str, np.ndarray] = {}
    for k in ks:
        hits = per_user[f"hits{k}"].to_numpy()
        out[f"recall@{k}"] = hits / n
        out[f"ndcg@{k}"] = per_user[f"dcg{k}"].to_numpy() / _idcg(n, k)
        out[f"hr@{k}"] = (hits > 0).astype(np.float64)
        out[f"mrr@{k}"] = np.where(best < k, 1.0 / (best + 1.0), 0.0)
    return per_user["user"], out


def summarize(per_target: pl.DataFrame, *, ks: Sequence[int] = (10, 20)) -> dict[str, float]:
    """Average per-user Recall/NDCG/HR/MRR@K from per-target 0-based ranks."""
    if per_target.height == 0:
        return {f"{m}@{k}": 0.0 for k in ks for m in ("recall", "ndcg", "hr", "mrr")}
    _, values = _user_values(per_target, ks=ks)
    return {name: float(np.mean(v)) for name, v in values.items()}


def _csr(df: pl.DataFrame, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Group ``df``'s items by user in the order of ``users`` -> (indptr, items)."""
    pos = pl.DataFrame({"user": users.astype(np.int32), "_u": np.arange(len(users))})
    g = df.select(pl.col("user").cast(pl.Int32), pl.col("item").cast(pl.Int64)).join(pos, on="user").sort("_u")
    counts = np.bincount(g["_u"].to_numpy(), minlength=len(users))
    indptr = np.concatenate([[0], np.cumsum(counts)])
    return indptr, g["item"].to_numpy()


def _writable(block: np.ndarray, *, fresh: bool) -> np.ndarray:
    """A score block as a float32 C-contiguous array this caller may overwrite: the block itself when the scorer
    says it is ``fresh`` (``DotScorer``: a matmul output), else a copy (a broadcast view, a cache)."""
    if fresh and isinstance(block, np.ndarray) and block.dtype == np.float32 and block.flags.c_contiguous \
            and block.flags.writeable and block.flags.owndata:
        return block
    return np.array(block, dtype=np.float32, copy=True)


def evaluate_scores(
    *,
    score_fn: ScoreFn,
    targets: pl.DataFrame,
    history: pl.DataFrame,
    n_items: int,
    ks: Sequence[int] = (10, 20),
    batch_size: int = 1024,
    progress: bool = False,
    coverage_ks: Sequence[int] | None = None,
) -> EvalResult:
    """Full ranking: ``score_fn(users)`` gives (B, n_items) scores; ``history`` (user, item) is excluded.

    Args:
        score_fn: maps a batch of user indices (B,) to scores (B, n_items); higher is better.
        targets: (user, item) rows to find; several per user allowed.
        history: (user, item) rows excluded from each user's ranking (the target itself never is).
        batch_size: users scored at a time: memory is O(batch_size x n_items) whatever the number of users
            (about 30 bytes per score at the peak), and the result does not depend on it.
        coverage_ks: the cut-offs whose catalogue coverage is measured (None = ``ks``). Coverage needs each
            user's top-K, the costliest part after the scores; the ranks behind every other metric do not.
    """
    return evaluate_many(scores_fn=lambda u: [score_fn(u)], n_systems=1, targets=targets, history=history,
                         n_items=n_items, ks=ks, batch_size=batch_size, progress=progress,
                         fresh=bool(getattr(score_fn, "fresh", False)), coverage_ks=coverage_ks)[0]


def evaluate_many(
    *,
    scores_fn: Callable[[np.ndarray], Sequence[np.ndarray]],
    n_systems: int,
    targets: pl.DataFrame,
    history: pl.DataFrame,
    n_items: int,
    ks: Sequence[int] = (10, 20),
    batch_size: int = 1024,
    progress: bool = False,
    fresh: bool = False,
    coverage_ks: Sequence[int] | None = None,
) -> list[EvalResult]:
    """``evaluate_scores`` of ``n_systems`` scorers in one pass: ``scores_fn(users)`` returns one (B, n_items)
    score block per system, so systems that share work (e.g. mixtures of the same two matmuls) pay it once.
    ``fresh``: every block is a new array nobody else holds (a matmul's output), masked in place, not copied.
    ``coverage_ks``: as in ``evaluate_scores``; ``()`` skips the top-K pass that only catalogue coverage needs (the
    results' coverage is empty; the per-target ranks, and every metric of them, are the same)."""
    users = sorted_unique(targets["user"].to_numpy()).astype(np.int64)
    t_ptr, t_items = _csr(targets, users)
    h_ptr, h_items = _csr(history, users)
    cov_ks = tuple(ks if coverage_ks is None else coverage_ks)
    kmax = max(cov_ks, default=0)
    ranks = [np.empty(len(t_items), dtype=np.int64) for _ in range(n_systems)]
    seen = [{k: np.zeros(n_items, dtype=bool) for k in cov_ks} for _ in range(n_systems)]
    nonfinite = [0] * n_systems
    starts = range(0, len(users), batch_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="evaluate", unit="batch", leave=False)
    for s in starts:
        e = min(s + batch_size, len(users))
        blocks = scores_fn(users[s:e])
        if len(blocks) != n_systems:
            raise ValueError(f"scores_fn returned {len(blocks)} score blocks, expected {n_systems}")
        b = e - s
        t_lo, t_hi = t_ptr[s], t_ptr[e]
        t_row = np.repeat(np.arange(b), np.diff(t_ptr[s:e + 1]))
        t_it = t_items[t_lo:t_hi]
        h_row = np.repeat(np.arange(b), np.diff(h_ptr[s:e + 1]))
        h_it = h_items[h_ptr[s]:h_ptr[e]]
        for j, block in enumerate(blocks):
            scores = _writable(block, fresh=fresh)
            if scores.shape != (b, n_items):
                raise ValueError(f"score_fn returned shape {scores.shape}, expected {(b, n_items)}")
            t_score = scores[t_row, t_it]
            if np.isnan(scores.max()):  # a NaN propagates through max: one pass, no (B, N) mask unless there is one
                scores[np.isnan(scores)] = np.inf  # another item's NaN ranks above the target
            scores[h_row, h_it] = -np.inf
            bad = ~np.isfinite(t_score)
            nonfinite[j] += int(bad.sum())
            safe_t = np.where(bad, 0.0, t_score).astype(np.float32)
            scores[t_row, t_it] = safe_t  # targets stay candidates even when also in history
            # one target per user (leave-one-out) compares the scores in place; several gather their user's row
            rows = scores if len(t_row) == b and (t_row == np.arange(b)).all() else scores[t_row]
            r = np.count_nonzero(rows >= safe_t[:, None], axis=1) - 1  # #(> t) + #(== t) - 1: ties count against
            ranks[j][t_lo:t_hi] = np.where(bad, MISS, r)
            if kmax:
                top = top_k_rows(scores, kmax)
                for k in cov_ks:
                    seen[j][k][top[:, :k].ravel()] = True
    user_col = np.repeat(users, np.diff(t_ptr)).astype(np.int32)
    return [EvalResult(per_target=pl.DataFrame({"user": user_col, "item": t_items.astype(np.int32), "rank": ranks[j]}),
                       n_items=n_items, coverage={k: float(v.mean()) for k, v in seen[j].items()},
                       nonfinite_targets=nonfinite[j], top_items=seen[j]) for j in range(n_systems)]


def evaluate_lists(*, lists: pl.DataFrame, targets: pl.DataFrame, n_items: int,
                   ks: Sequence[int] = (10, 20)) -> EvalResult:
    """Evaluate ranked lists ``lists`` (user, item, rank 0-based; history already excluded).

    A target missing from its user's list is a miss; users without a list miss every target. NaN
    scores in ``lists`` (column ``score`` if present) make that entry a miss too.
    """
    lst = lists.select(pl.col("user").cast(pl.Int32), pl.col("item").cast(pl.Int32), pl.col("rank").cast(pl.Int64),
                       *( [pl.col("score").cast(pl.Float64)] if "score" in lists.columns else []))
    nonfinite = 0
    if "score" in lst.columns:
        badmask = ~pl.col("score").is_finite() | pl.col("score").is_null()
        nonfinite = int(lst.join(targets.select(pl.col("user").cast(pl.Int32), pl.col("item").cast(pl.Int32)),
                                 on=["user", "item"]).filter(badmask).height)
        lst = lst.filter(~badmask)
    per_target = (targets.select(pl.col("user").cast(pl.Int32), pl.col("item").cast(pl.Int32))
                  .join(lst.select("user", "item", "rank"), on=["user", "item"], how="left")
                  .with_columns(pl.col("rank").fill_null(int(MISS))))
    cov = {k: lst.filter(pl.col("rank") < k)["item"].n_unique() / n_items for k in ks}
    return EvalResult(per_target=per_target, n_items=n_items, coverage=cov, nonfinite_targets=nonfinite)


def sample_users(targets: pl.DataFrame, *, n: int, seed: int = 0) -> np.ndarray:
    """(min(n, U),) ascending users drawn without replacement (seeded) from the users with a target; all of
    them when ``n`` is 0 or at least their number."""
    users = sorted_unique(targets["user"].to_numpy()).astype(np.int64)
    if n <= 0 or n >= len(users):
        return users
    return np.sort(np.random.default_rng(seed).choice(users, size=n, replace=False))


def of_users(frame: pl.DataFrame, users: np.ndarray) -> pl.DataFrame:
    """The rows of ``frame`` (with a ``user`` column) whose user is in ``users``."""
    return frame.filter(pl.col("user").is_in(pl.Series(users.astype(np.int64)).cast(frame.schema["user"])))


def intervals(per_target: pl.DataFrame, *, ks: Sequence[int] = (10, 20), population: int,
              confidence: float = 0.95) -> dict[str, tuple[float, float]]:
    """Normal-approximation interval on every per-user mean ``summarize`` reports, for a simple random sample
    of users out of ``population`` users with a target (finite-population corrected: 0 width when the sample
    is everyone). -> {"ndcg@10": (low, high), ...}."""
    from statistics import NormalDist

    if per_target.height == 0:
        return {}
    _, values = _user_values(per_target, ks=ks)
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    out = {}
    for name, v in values.items():
        n = len(v)
        fpc = max(0.0, (population - n) / (population - 1)) if population > 1 else 0.0
        half = z * (float(np.std(v, ddof=1)) if n > 1 else 0.0) / np.sqrt(n) * np.sqrt(fpc)
        out[name] = (float(np.mean(v)) - half, float(np.mean(v)) + half)
    return out


@dataclasses.dataclass(frozen=True)
class DotScorer:
    """Inner-product scores ``users[u] @ items.T`` (B, N); ``fresh``: every call returns a new array, so
    ``evaluate_scores`` may mask it in place instead of copying (B, N) floats per batch."""

    users: np.ndarray  # (U, d) float32
    items_t: np.ndarray  # (d, N) float32, C-contiguous
    fresh: bool = True

    def __call__(self, users: np.ndarray) -> np.ndarray:
        return self.users[users] @ self.items_t


def dot_scorer(user_vecs: np.ndarray, item_vecs: np.ndarray) -> ScoreFn:
    """Inner-product scores: (U, d) x (N, d) -> score_fn(users) = user_vecs[users] @ item_vecs.T."""
    return DotScorer(np.asarray(user_vecs, dtype=np.float32), np.ascontiguousarray(item_vecs.T, dtype=np.float32))


def popularity_slices(train: pl.DataFrame, *, n_items: int, head: float = 0.2, tail: float = 0.5) -> pl.DataFrame:
    """Label items by training popularity: among items with training events, "head" = the most popular
    ``head`` share, "tail" = the least popular ``tail`` share, "torso" between; "cold" = no training events."""
    counts = np.bincount(train["item"].to_numpy(), minlength=n_items)
    warm = np.flatnonzero(counts > 0)
    order = warm[np.argsort(-counts[warm], kind="stable")]
    label = np.full(n_items, "cold", dtype=object)
    n_head, n_tail = int(round(head * len(warm))), int(round(tail * len(warm)))
    label[order] = "torso"
    label[order[:n_head]] = "head"
    label[order[len(order) - n_tail:]] = "tail"
    return pl.DataFrame({"item": np.arange(n_items, dtype=np.int32), "slice": label.astype(str)})


def popularity_summary(result: EvalResult, *, train: pl.DataFrame, ks: Sequence[int] = (10,), head: float = 0.2,
                       tail: float = 0.5) -> dict[str, dict[str, float | None]]:
    """``result``'s NDCG/Recall@ks overall ("all") and per ``popularity_slices`` of ``train`` (head, torso, tail,
    cold, in that order), each with its number of targets; a slice without targets has None metrics. What the
    student stage records on valid, so per-slice choices need no eval stage (which reports on test)."""
    names = [f"{m}@{k}" for k in ks for m in ("ndcg", "recall")]
    summ = summarize(result.per_target, ks=ks)
    out: dict[str, dict[str, float | None]] = {
        "all": {"targets": float(result.per_target.height), **{m: summ[m] for m in names}}}
    got = {r["slice"]: r for r in result.by_slice(popularity_slices(train, n_items=result.n_items, head=head,
                                                                        tail=tail), on="item", ks=ks).to_dicts()}
    for s in ("head", "torso", "tail", "cold"):
        r = got.get(s)
        out[s] = {"targets": float(r["targets"]) if r else 0.0, **{m: (float(r[m]) if r else None) for m in names}}
    return out


def history_length_slices(history: pl.DataFrame, *, bins: Sequence[int] = (5, 10, 20)) -> pl.DataFrame:
    """Label users by history length: "<5", "5-9", "10-19", ">=20" for the default bins."""
    lens = history.group_by("user").len()
    expr = pl.lit(f">={bins[-1]}")
    for lo, hi in reversed(list(zip((0, *bins[:-1]), bins))):
        expr = pl.when(pl.col("len") < hi).then(pl.lit(f"<{hi}" if lo == 0 else f"{lo}-{hi - 1}")).otherwise(expr)
    return lens.select(pl.col("user").cast(pl.Int32), expr.alias("slice"))


def per_user(per_target: pl.DataFrame, *, metric: str = "ndcg@10") -> pl.DataFrame:
    """One row per user with a target: (user, value) of ``metric`` (e.g. "ndcg@10", "recall@20"), the
    per-user quantity whose mean ``summarize`` reports."""
    name, _, k = metric.partition("@")
    if name not in ("recall", "ndcg", "hr", "mrr") or not k.isdigit():
        raise KeyError(f"per-user metric '{metric}': use one of ['hr', 'mrr', 'ndcg', 'recall'] with @K")
    users, values = _user_values(per_target, ks=(int(k),))
    return pl.DataFrame({"user": users, "value": values[metric]}).sort("user")


@dataclasses.dataclass(frozen=True)
class Change:
    """Relative change of mean(a) over mean(b) with a paired bootstrap confidence interval."""

    relative: float  # mean(a) / mean(b) - 1
    low: float
    high: float
    confidence: float
    users: int

    def as_dict(self, *, digits: int = 6) -> dict[str, float]:
        return {"relative": round(self.relative, digits), "low": round(self.low, digits),
                "high": round(self.high, digits), "confidence": self.confidence, "users": self.users}


def paired_change(a: np.ndarray, b: np.ndarray, *, samples: int = 2000, confidence: float = 0.95,
                  seed: int = 0) -> Change:
    """Bootstrap over users of ``mean(a) / mean(b) - 1`` for per-user values of two systems on the same
    users (paired: each resample draws users, not systems). A zero denominator gives ±inf (or 0 if a is too)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired values must be two 1-d arrays of one length, got {a.shape} and {b.shape}")

    def rel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            out = x / y - 1.0
        return np.where(y > 0, out, np.where(x > 0, np.inf, 0.0))

    n = len(a)
    if n == 0:
        return Change(0.0, 0.0, 0.0, confidence, 0)
    point = float(rel(np.array([a.mean()]), np.array([b.mean()]))[0])
    rng, parts = np.random.default_rng(seed), []
    chunk = max(1, (1 << 22) // n)  # resamples per draw: ~4M indices at a time
    for s in range(0, samples, chunk):
        idx = rng.integers(0, n, size=(min(chunk, samples - s), n))
        parts.append(rel(a[idx].mean(1), b[idx].mean(1)))
    boot = np.concatenate(parts)
    lo, hi = np.quantile(boot, [(1 - confidence) / 2, (1 + confidence) / 2])
    return Change(point, float(lo), float(hi), confidence, n)
