"""Query API over a finished run: raw string ids in, ranked raw string ids out.

Serves as of the last point the run was evaluated at (the test point: the student's test-point user vectors,
history = train + valid), so what it returns is what the report measured; retrain to fold in newer events.

Example::

    from recsys.api import Recommender

    rec = Recommender.load("runs/beauty", variant="student_kd")   # index + vectors (+ ranker if trained)
    rec.recommend(["A1YJEY40YUW4SE"], k=10)
    # shape: (10, 4)  user_id | item_id | score | rank (0-based)
    rec.recommend(["A1YJEY40YUW4SE", "new-user"], k=5, on_unknown="popular")   # adds a `fallback` column
    rec.similar_items(["B004756YJA"], k=5)
    # shape: (5, 4)  item_id | similar_item_id | score | rank
    rec.recommend_history([["B004756YJA", "B00021DJ32"]], k=5)   # anonymous session: the student's user tower
    # shape: (5, 5)  session | item_id | score | rank | fallback      (numpy forward, no torch; no reranking)

Unknown user ids raise ``KeyError`` naming them unless ``on_unknown="popular"`` (most popular unseen
items, flagged ``fallback=True``). Every file is verified once, at load (``recsys.contracts``: the sha256 its
stage recorded, then dtype, shape and ids): a damaged run raises ``ArtifactError`` naming the file instead of
serving different recommendations. Hashing costs about 1-2 s per GB.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
import threading
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl

from recsys.artifacts import RunDir
from recsys.contracts import ArtifactError
from recsys.contracts import problem
from recsys.contracts import ranker as R
from recsys.contracts import student as S
from recsys.contracts.layout import Layout
from recsys.data.tables import Tables, load_tables

log = logging.getLogger(__name__)


def check_variant(layout: Layout, variant: str) -> None:
    """``variant`` must be a student variant the run holds: anything else (a path, ``..``, a name the run does
    not have) is refused before any file is opened, so a variant name never reads outside the run directory."""
    d = layout.students
    have = sorted(p.name for p in d.iterdir() if p.is_dir() and not p.name.startswith(".")) if d.is_dir() else []
    if variant not in have:
        raise problem(layout.root, f"'{variant}' is not a student variant of this run (it has: "
                        f"{', '.join(have) or 'none'})", "pass one of those names")


class Recommender:
    """Retrieval (FAISS index over student vectors) plus the LightGBM reranker when the run has one."""

    def __init__(self, *, index: Any, user_vectors: np.ndarray, tables: Tables, ranker: Any = None,
                 teacher: Any = None, depth: int = 100, sources: list[Any] | None = None,
                 served: str | None = None, union_depth: int = 50,
                 user_tower: Any = None, features: Any = None, recent_days: float = 30.0) -> None:
        self.index = index
        self.user_tower = user_tower  # recsys.student.user_tower.UserTower, or None (student exported without it)
        self.user_vectors = user_vectors
        self.tables = tables
        self.ranker = ranker
        self.teacher = teacher
        self.depth = depth  # candidates retrieved per user (and per source) before reranking
        self.sources = sources or []  # rank.candidates.Source: the retrievers whose lists the ranker unions
        self.union_depth = union_depth  # top-K per source in the ranker's union (rank.depth)
        self.served = served  # what the rank gate chose (a metrics.json row); None = no gate ran
        self._user_row = dict(zip(tables.users["user_id"].to_list(), tables.users["user"].to_list()))
        self._item_row = dict(zip(tables.items["item_id"].to_list(), tables.items["item"].to_list()))
        self._item_ids = np.asarray(tables.items.sort("item")["item_id"].to_list(), dtype=object)
        self._history = tables.history("test")
        counts = np.bincount(self._history["item"].to_numpy(), minlength=tables.n_items)
        self._popular = np.argsort(-counts, kind="stable")
        self._pop_score = counts / max(1, counts.sum())
        seen = self._history.select("user", "item").unique().sort("user", "item")
        self._seen_ptr = np.zeros(tables.n_users + 1, dtype=np.int64)  # CSR of each user's seen items
        np.cumsum(np.bincount(seen["user"].to_numpy(), minlength=tables.n_users), out=self._seen_ptr[1:])
        self._seen_idx = seen["item"].to_numpy().astype(np.int64)
        # the history side of the ranker's features (recsys.rank.features.FeatureContext), built once per loaded
        # version: a request only joins its candidates against it, through the rank stage's own function
        self.features = features
        if ranker is not None and features is None:
            from recsys.rank.features import feature_context

            t0 = time.perf_counter()
            self.features = feature_context(tables=tables, split="test", recent_days=recent_days)
            log.info("ranker feature context built in %.2fs, %.1f MB", time.perf_counter() - t0,
                     self.features.nbytes() / 2**20)
        # one LightGBM predict at a time: a shared Booster's predictor set-up races across threads
        # (LightGBM issue #6142); its C API serialises the prediction itself anyway
        self._ranker_lock = threading.Lock()

    @classmethod
    def load(cls, run_dir: str | os.PathLike[str], *, variant: str = "student_kd", use_ranker: bool = True,
             use_gpu: Literal["auto", "never", "always"] | None = None) -> Recommender:
        """Load tables, the verified index, user vectors of ``variant`` and (if present) the ranker.

        Raises ArtifactError (naming the file) when anything is missing, altered or inconsistent."""
        from recsys.index.io import load_index, read_manifest

        lay = Layout(Path(run_dir))
        check_variant(lay, variant)
        meta = S.read_meta(layout=lay, variant=variant)
        tables = load_tables(lay)
        items = S.read_item_vectors(layout=lay, variant=variant, n_items=tables.n_items, dim=meta["dim"])
        users = S.read_user_vectors(layout=lay, variant=variant, split="test", n_users=tables.n_users,
                                    dim=meta["dim"])
        index = load_index(lay.index, vectors_path=lay.item_vectors(variant), vectors=items, metric=meta["metric"],
                           use_gpu=use_gpu, layout=lay)
        depth = int(read_manifest(lay.index, layout=lay)["config"].get("k", 100))
        tower = None
        from recsys.student import user_tower

        if user_tower.exists(layout=lay, variant=variant):  # absent: a student exported before the serve service
            tower = user_tower.read(layout=lay, variant=variant)
            if tower.n_items != tables.n_items:
                raise S.problem(lay.user_tower(variant), f"{tower.n_items} item rows, the catalogue has "
                                f"{tables.n_items}", "re-run the student stage with --force")
        ranker = teacher = None
        sources: list[Any] = []
        union_depth, recent_days = depth, 30.0
        rank_rec = RunDir(lay.root).stage_record("rank") or {}
        served = rank_rec.get("report", {}).get("gate", {}).get("served")
        if use_ranker and R.present(lay):
            from recsys.rank.config import RankConfig
            from recsys.rank.sources import load_sources
            from recsys.rank.teacher import load_teacher
            from recsys.rank.train import load_model

            ranker = load_model(layout=lay)
            if any(f.startswith("t_") for f in ranker.feature_name()):
                teacher = load_teacher(lay.root, space="auto", n_users=tables.n_users, n_items=tables.n_items)
                if teacher is None:
                    raise problem(lay.ranker_model, "uses teacher features but the run has no teacher embeddings",
                                    "re-run the teacher and rank stages (`recsys build-index --force`)")
            if rank_rec.get("config"):
                rcfg = RankConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in rank_rec["config"].items()})
                sources = load_sources(lay.root, rcfg, split="test", n_users=tables.n_users, n_items=tables.n_items)
                union_depth, recent_days = rcfg.depth, rcfg.recent_days
        return cls(index=index, user_vectors=users, tables=tables, ranker=ranker, teacher=teacher, depth=depth,
                   sources=sources, served=served, union_depth=union_depth, user_tower=tower,
                   recent_days=recent_days)

    # ------------------------------------------------------------------ users
    def recommend(self, user_ids: list[str], k: int = 10, *, exclude_seen: bool = True,
                  on_unknown: Literal["raise", "popular"] = "raise") -> pl.DataFrame:
        """Top-``k`` items per user: (user_id, item_id, score, rank), users in the order given.

        Args:
            user_ids: raw user ids (as in the source logs).
            exclude_seen: drop items in the user's history.
            on_unknown: "raise" -> KeyError listing unknown ids; "popular" -> popularity fallback, flagged.
        """
        from recsys.index.seen import Seen

        unknown = [u for u in user_ids if u not in self._user_row]
        if unknown and on_unknown == "raise":
            raise KeyError(f"{len(unknown)} unknown user id(s): {unknown[:10]}{' ...' if len(unknown) > 10 else ''}; "
                           "pass on_unknown='popular' for a popularity fallback")
        known = [u for u in user_ids if u in self._user_row]
        rows = np.array([self._user_row[u] for u in known], dtype=np.int64)
        seen = Seen.from_lists([self._seen_idx[self._seen_ptr[r]:self._seen_ptr[r + 1]] for r in rows]) \
            if exclude_seen else None
        depth = max(k, self.depth) if self.ranker is not None else k
        s, i = self.index.search(self.user_vectors[rows], k=depth, exclude=seen)
        keep = (i >= 0).ravel()
        cands = pl.DataFrame({"user": np.repeat(rows, depth).astype(np.int32)[keep],
                              "item": i.ravel().astype(np.int32)[keep], "score": s.ravel()[keep],
                              "rank": np.tile(np.arange(depth, dtype=np.int32), len(rows))[keep]})
        if self.ranker is not None and cands.height:
            cands = self._gated(cands, rows=rows, k=k)
        out = cands.filter(pl.col("rank") < k)
        parts = [self._named(out)]
        if unknown and on_unknown == "popular":
            parts = [p.with_columns(pl.lit(False).alias("fallback")) for p in parts]
            top = self._popular[:k]
            parts.append(pl.DataFrame({
                "user_id": np.repeat(np.array(unknown, dtype=object), len(top)).tolist(),
                "item_id": np.tile(self._item_ids[top], len(unknown)).tolist(),
                "score": np.tile(self._pop_score[top].astype(np.float32), len(unknown)),
                "rank": np.tile(np.arange(len(top), dtype=np.int32), len(unknown)), "fallback": True}))
        res = pl.concat(parts, how="vertical_relaxed")
        order = pl.DataFrame({"user_id": list(dict.fromkeys(user_ids)), "_o": range(len(dict.fromkeys(user_ids)))})
        return res.join(order, on="user_id").sort("_o", "rank").drop("_o")

    def _gated(self, cands: pl.DataFrame, *, rows: np.ndarray, k: int) -> pl.DataFrame:
        """What the rank gate serves: the re-ranked union of every source's list, or one source's own list."""
        from recsys.rank.candidates import source_lists, union
        from recsys.rank.features import candidate_features
        from recsys.rank.sources import RANKER_ROW, SOURCE_ROWS
        from recsys.rank.train import rerank

        sources = [dataclasses.replace(s, lists=cands) if s.name == "s" else s for s in self.sources]
        n_seen = self._seen_ptr[rows + 1] - self._seen_ptr[rows]  # the users' history pairs, from the CSR
        hist = pl.DataFrame({"user": np.repeat(rows, n_seen), "item": np.concatenate(
            [self._seen_idx[self._seen_ptr[r]:self._seen_ptr[r + 1]] for r in rows]) if len(rows) else rows})
        lists = source_lists(sources, query=rows, history=hist, depth=max(k, self.union_depth))
        if self.served != RANKER_ROW:
            chosen = next((p for p, row in SOURCE_ROWS.values() if row == self.served), "s")
            return lists.get(chosen, cands)
        f = candidate_features(union(lists, sources=sources, depth=max(k, self.union_depth)), ctx=self.features)
        with self._ranker_lock:
            return rerank(self.ranker, f, num_threads=1 if f.height <= 5000 else 0)  # a request's rows: 1 thread

    def _named(self, df: pl.DataFrame) -> pl.DataFrame:
        users = self.tables.users.select(pl.col("user").cast(pl.Int32), "user_id")
        items = self.tables.items.select(pl.col("item").cast(pl.Int32), "item_id")
        return (df.join(users, on="user").join(items, on="item")
                .select("user_id", "item_id", pl.col("score").cast(pl.Float32), pl.col("rank").cast(pl.Int32)))

    def unknown_items(self, item_ids: list[str]) -> list[str]:
        """The ids of ``item_ids`` that are not in the catalogue (first occurrences, in order)."""
        return [i for i in dict.fromkeys(item_ids) if i not in self._item_row]

    # ------------------------------------------------------------------ anonymous sessions
    def recommend_history(self, histories: list[list[str]], k: int = 10, *,
                          exclude_seen: bool = True) -> pl.DataFrame:
        """Top-``k`` items for sessions nobody trained on: (session, item_id, score, rank, fallback).

        Each history (raw item ids, oldest first) goes through the served student's user tower in numpy
        (``recsys.student.user_tower``); retrieval only, no reranking (the ranker's features need a known
        user). Ids not in the catalogue are ignored; a history with no known item gets the most popular
        items, flagged ``fallback``. ``session`` is the position in ``histories``.
        """
        from recsys.index.seen import Seen

        if self.user_tower is None:
            raise ArtifactError("this run's student was exported without its user tower; re-run the student stage "
                                "(--force) to answer anonymous histories")
        rows = [[self._item_row[i] for i in h if i in self._item_row] for h in histories]
        known = [j for j, r in enumerate(rows) if r]
        parts = []
        if known:
            vec = self.user_tower.encode([rows[j] for j in known])
            seen = Seen.from_lists([sorted(set(rows[j])) for j in known]) if exclude_seen else None
            s, i = self.index.search(vec, k=k, exclude=seen)
            keep = (i >= 0).ravel()
            parts.append(pl.DataFrame({
                "session": np.repeat(np.array(known, dtype=np.int64), k)[keep],
                "item_id": self._item_ids[np.clip(i.ravel(), 0, None)][keep].tolist(),
                "score": s.ravel()[keep].astype(np.float32),
                "rank": np.tile(np.arange(k, dtype=np.int32), len(known))[keep], "fallback": False}))
        empty = [j for j, r in enumerate(rows) if not r]
        if empty:
            parts.append(self._popular_frame(len(empty), k).with_columns(
                pl.Series("session", np.repeat(np.array(empty, dtype=np.int64), min(k, len(self._popular))))))
        if not parts:
            return pl.DataFrame(schema={"session": pl.Int64, "item_id": pl.String, "score": pl.Float32,
                                        "rank": pl.Int32, "fallback": pl.Boolean})
        cols = ["session", "item_id", "score", "rank", "fallback"]
        return pl.concat([p.select(cols) for p in parts], how="vertical_relaxed").sort("session", "rank")

    def _popular_frame(self, n: int, k: int) -> pl.DataFrame:
        """The ``k`` most popular items (test-point history), repeated for ``n`` queries: item_id, score, rank."""
        top = self._popular[:k]
        return pl.DataFrame({"item_id": np.tile(self._item_ids[top], n).tolist(),
                             "score": np.tile(self._pop_score[top].astype(np.float32), n),
                             "rank": np.tile(np.arange(len(top), dtype=np.int32), n), "fallback": True})

    # ------------------------------------------------------------------ items
    def similar_items(self, item_ids: list[str], k: int = 10, *,
                      on_unknown: Literal["raise", "popular"] = "raise") -> pl.DataFrame:
        """Nearest items in the student's item space (the item itself excluded):
        (item_id, similar_item_id, score, rank); with ``on_unknown="popular"`` unknown ids get the most
        popular items and a ``fallback`` column flags them."""
        from recsys.index.seen import Seen

        unknown = [i for i in item_ids if i not in self._item_row]
        if unknown and on_unknown == "raise":
            raise KeyError(f"{len(unknown)} unknown item id(s): {unknown[:10]}{' ...' if len(unknown) > 10 else ''}")
        known = [i for i in item_ids if i in self._item_row]
        rows = np.array([self._item_row[i] for i in known], dtype=np.int64)
        q = self.index.vectors[np.searchsorted(self.index.ids, rows)]
        s, i = self.index.search(q, k=k, exclude=Seen.from_lists([[r] for r in rows]))
        keep = (i >= 0).ravel()
        out = pl.DataFrame({
            "item_id": np.repeat(np.array(known, dtype=object), k)[keep].tolist(),
            "similar_item_id": self._item_ids[np.clip(i.ravel(), 0, None)][keep].tolist(),
            "score": s.ravel()[keep], "rank": np.tile(np.arange(k, dtype=np.int32), len(rows))[keep]},
            schema_overrides={"item_id": pl.String, "similar_item_id": pl.String})
        if on_unknown == "raise":
            return out
        pop = self._popular_frame(len(unknown), k).rename({"item_id": "similar_item_id"}).with_columns(
            pl.Series("item_id", np.repeat(np.array(unknown, dtype=object), min(k, len(self._popular))).tolist(),
                      dtype=pl.String))
        out = pl.concat([out.with_columns(pl.lit(False).alias("fallback")), pop.select(*out.columns, "fallback")],
                        how="vertical_relaxed")
        order = pl.DataFrame({"item_id": list(dict.fromkeys(item_ids)), "_o": range(len(dict.fromkeys(item_ids)))})
        return out.join(order, on="item_id").sort("_o", "rank").drop("_o")
