"""The ranker's candidate sources, read from a run directory through ``recsys.contracts`` (verified).

Each source is a dot-product retriever at a prediction point: the distilled student (with its ANN list from the
index stage), the adapted teacher and ALS. Shared by the rank stage and ``recsys.api.Recommender``, which must
build the same candidates at serving time without importing the stage.
"""

from __future__ import annotations

import logging
from pathlib import Path

from recsys.contracts import baselines as BL
from recsys.contracts import lists as L
from recsys.contracts import problem
from recsys.contracts import student as S
from recsys.contracts import teacher as TC
from recsys.contracts.layout import Layout
from recsys.data.tables import Split
from recsys.rank.candidates import Source
from recsys.rank.config import RankConfig
from recsys.rank.teacher import load_teacher

log = logging.getLogger(__name__)
RANKER_ROW = "union_rerank"  # the metrics.json row of the re-ranked union
# source -> (feature prefix, the metrics.json row whose list it is)
SOURCE_ROWS = {"student": ("s", "student_kd_ann"), "teacher": ("t", "teacher_adapted"), "als": ("a", "als")}


def source_files(lay: Layout, cfg: RankConfig) -> dict[str, list[Path]]:
    v = cfg.student_variant
    files = {"student": [*S.paths(lay, variant=v), *(lay.candidates(s, folder=cfg.candidates) for s in ("valid", "test"))],
             "teacher": [lay.teacher_items, lay.teacher_users],
             "als": [p for s in ("valid", "test") for p in (lay.als_users(s), lay.als_items(s))]}
    return {k: files[k] for k in cfg.sources}


def load_sources(root: Path, cfg: RankConfig, *, split: Split, n_users: int, n_items: int) -> list[Source]:
    """The retrievers of ``cfg.sources`` that the run holds, at ``split``'s prediction point (verified reads)."""
    lay = Layout(Path(root))
    out = []
    for name in cfg.sources:
        prefix = SOURCE_ROWS[name][0]
        if name == "student":
            if not L.has_candidates(lay, split=split, folder=cfg.candidates):
                raise problem(lay.candidates(split, folder=cfg.candidates), "missing",
                              "run the index stage first (`recsys build-index`)")
            v = cfg.student_variant
            out.append(Source(prefix, S.read_user_vectors(layout=lay, variant=v, split=split, n_users=n_users),
                              S.read_item_vectors(layout=lay, variant=v, n_items=n_items),
                              lists=L.read_candidates(layout=lay, split=split, n_users=n_users, n_items=n_items,
                                                      folder=cfg.candidates)))
        elif name == "teacher":
            t = load_teacher(root, space="adapted", n_users=n_users, n_items=n_items) if TC.present(lay) else None
            if t is None:
                log.warning("rank: no adapted teacher in %s, source left out", root)
                continue
            out.append(Source(prefix, t.users[split], t.items))
        elif BL.has_als(lay, split=split):
            u, i = BL.read_als(layout=lay, split=split, n_users=n_users, n_items=n_items)
            out.append(Source(prefix, u, i))
        else:
            log.warning("rank: no ALS factors in %s (baselines stage not run), source left out", root)
    return out
