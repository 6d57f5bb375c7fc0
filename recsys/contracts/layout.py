"""Every artifact file name, relative to a run directory: the only place that spells one.

Stages meet only through these files. Ids in all tables are contiguous int32 indices (``user``, ``item``);
the raw ids live in ``users.parquet`` / ``items.parquet``. See docs/CONTRACTS.md for each file's columns.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Literal

MANIFEST = "manifest.json"
Split = Literal["valid", "test"]
CheckpointKind = Literal["last", "best"]

STUDENT = "student"  # folder of the student variants: student/<variant>/
INDEX_FILE = "index.faiss"
INDEX_MANIFEST = "manifest.json"  # inside the index folder (not the run manifest)

# Every literal file name below, for the test that no other module spells one.
FILE_NAMES: tuple[str, ...] = (
    "interactions.parquet", "items.parquet", "users.parquet", "quarantine.parquet", "train.parquet",
    "valid.parquet", "test.parquet", "item_emb.safetensors", "user_emb.safetensors", "topk_valid.parquet",
    "topk_test.parquet", "item_vectors.npy", "user_vectors_valid.npy", "user_vectors_test.npy",
    "item_vectors_int8.npy", "item_vectors_scales.npy", "meta.json", "train_log.json", INDEX_FILE,
    "candidates_valid.parquet", "candidates_test.parquet", "tradeoff.json", "model.txt",
    "reranked_test.parquet", "feature_importance.json", "popularity_valid.npy", "popularity_test.npy",
    "als_user_valid.npy", "als_item_valid.npy", "metrics.json", "report.md", "gate.json", "cold_start.json",
    "cold_start.md", "last.rank0.pt", "best.rank0.pt", "user_tower.safetensors", "pruned_model.safetensors",
    "study.journal", "trials.parquet", "trials.md", "trials.png", "best.toml",
)


@dataclasses.dataclass(frozen=True)
class Layout:
    """Paths of every artifact under ``root``."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    def rel(self, path: Path) -> str:
        """``path`` relative to the run root, as the manifest records it."""
        return str(Path(path).resolve().relative_to(self.root.resolve()))

    def stage_dir(self, stage: str) -> Path:
        return self.root / stage

    @property
    def manifest(self) -> Path:
        return self.root / MANIFEST

    # ---------------------------------------------------------------- data stage -> tables/
    @property
    def tables(self) -> Path:
        return self.root / "tables"

    @property
    def interactions(self) -> Path:  # user i32, item i32, timestamp i64 (unix s), event str, pos i32
        return table_paths(self.tables)["interactions"]

    @property
    def items(self) -> Path:  # item i32, item_id str, title, brand, categories list[str], description, price f64
        return table_paths(self.tables)["items"]

    @property
    def users(self) -> Path:  # user i32, user_id str
        return table_paths(self.tables)["users"]

    @property
    def quarantine(self) -> Path:  # source_file, row, column, reason, raw
        return table_paths(self.tables)["quarantine"]

    def split(self, name: str) -> Path:
        """``train`` (fit events), ``valid`` / ``test`` (targets). History for valid = train;
        history for test = train + valid."""
        return self.tables / "split" / f"{name}.parquet"

    # ---------------------------------------------------------------- teacher/
    @property
    def teacher(self) -> Path:
        return self.root / "teacher"

    @property
    def teacher_items(self) -> Path:  # {"raw": (N, D), "adapted": (N, D2)} f32 + pooling metadata
        return self.teacher / "item_emb.safetensors"

    @property
    def teacher_users(self) -> Path:  # {"raw_valid", "raw_test", "adapted_valid", "adapted_test": (U, D)} f32
        return self.teacher / "user_emb.safetensors"

    def teacher_topk(self, split: str) -> Path:  # user, item, score, rank
        return self.teacher / f"topk_{split}.parquet"

    @property
    def teacher_adapter(self) -> Path:  # the fitted adapter's weights (f32) + its kind; absent without an adapter
        return self.teacher / "adapter.safetensors"

    # ---------------------------------------------------------------- baselines/
    @property
    def baselines(self) -> Path:
        return self.root / "baselines"

    def popularity(self, split: str) -> Path:  # (N,) counts at the split's prediction point
        return self.baselines / f"popularity_{split}.npy"

    def als_users(self, split: str) -> Path:  # (U, f) f32
        return self.baselines / f"als_user_{split}.npy"

    def als_items(self, split: str) -> Path:  # (N, f) f32
        return self.baselines / f"als_item_{split}.npy"

    # ---------------------------------------------------------------- student/<variant>/
    @property
    def students(self) -> Path:
        return self.root / STUDENT

    def student(self, variant: str) -> Path:
        return self.students / variant

    def item_vectors(self, variant: str) -> Path:  # (N, d) f32
        return self.student(variant) / "item_vectors.npy"

    def user_vectors(self, variant: str, split: str) -> Path:  # (U, d) f32
        return self.student(variant) / f"user_vectors_{split}.npy"

    def item_vectors_int8(self, variant: str) -> Path:  # (N, d) i8
        return self.student(variant) / "item_vectors_int8.npy"

    def item_vectors_scales(self, variant: str) -> Path:  # (N,) f32
        return self.student(variant) / "item_vectors_scales.npy"

    def student_meta(self, variant: str) -> Path:
        return self.student(variant) / "meta.json"

    def user_tower(self, variant: str) -> Path:  # user-tower tables + MLP for the numpy forward (safetensors)
        return self.student(variant) / "user_tower.safetensors"

    def pruned(self, variant: str) -> Path:  # the pruned student of ``variant`` (recsys.student.prune)
        return self.student(variant) / "pruned"

    def pruned_model(self, variant: str) -> Path:  # kept id rows + map, masked dense weights (safetensors)
        return self.pruned(variant) / "pruned_model.safetensors"

    def pruned_item_vectors(self, variant: str) -> Path:  # (N, d) f32
        return self.pruned(variant) / "item_vectors.npy"

    def pruned_user_vectors(self, variant: str, split: str) -> Path:  # (U, d) f32
        return self.pruned(variant) / f"user_vectors_{split}.npy"

    def pruned_meta(self, variant: str) -> Path:  # config, kept counts, sizes (bytes), valid metrics
        return self.pruned(variant) / "meta.json"

    def train_log(self, variant: str) -> Path:
        return self.student(variant) / "train_log.json"

    def checkpoint(self, variant: str, *, kind: CheckpointKind, rank: int) -> Path:
        return checkpoint_path(self.student(variant), kind=kind, rank=rank)

    # ---------------------------------------------------------------- index/
    @property
    def index(self) -> Path:
        return self.root / "index"

    def candidates(self, split: str, *, folder: str = "index") -> Path:  # user, item, score, rank
        return self.root / folder / f"candidates_{split}.parquet"

    @property
    def tradeoff(self) -> Path:
        return self.index / "tradeoff.json"

    # ---------------------------------------------------------------- rank/
    @property
    def rank(self) -> Path:
        return self.root / "rank"

    @property
    def ranker_model(self) -> Path:  # LightGBM text format
        return self.rank / "model.txt"

    def reranked(self, split: str) -> Path:  # user, item, score, rank
        return self.rank / f"reranked_{split}.parquet"

    @property
    def feature_importance(self) -> Path:
        return self.rank / "feature_importance.json"

    # ---------------------------------------------------------------- report, gate, tools
    @property
    def report(self) -> Path:
        return self.root / "report"

    def plot(self, name: str) -> Path:
        return self.report / f"{name}.png"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.json"

    @property
    def report_md(self) -> Path:
        return self.root / "report.md"

    @property
    def gate(self) -> Path:
        return self.root / "gate.json"

    @property
    def cold_start(self) -> Path:
        return self.root / "cold_start.json"

    @property
    def cold_start_md(self) -> Path:
        return self.root / "cold_start.md"

    # ---------------------------------------------------------------- tune/ (recsys tune), best.toml
    @property
    def tune(self) -> Path:
        return self.root / "tune"

    @property
    def tune_study(self) -> Path:  # Optuna JournalStorage file (append-only JSON lines): the resumable study
        return self.tune / "study.journal"

    @property
    def tune_trials(self) -> Path:  # trial i32, state str, <knob> columns, valid_ndcg@10, valid_recall@10, seconds
        return self.tune / "trials.parquet"

    @property
    def tune_trials_md(self) -> Path:
        return self.tune / "trials.md"

    @property
    def tune_plot(self) -> Path:  # valid NDCG@10 per trial + best so far
        return self.tune / "trials.png"

    @property
    def best_config(self) -> Path:  # the complete pipeline config of the best trial (TOML, `recsys evaluate -c`)
        return self.root / "best.toml"


def table_paths(directory: Path) -> dict[str, Path]:
    """The data stage's files inside a tables folder (``Layout.tables``, or any folder a streaming prep writes):
    interactions, items, users, quarantine, train, valid, test."""
    d = Path(directory)
    return {"interactions": d / "interactions.parquet", "items": d / "items.parquet", "users": d / "users.parquet",
            "quarantine": d / "quarantine.parquet", **{s: d / "split" / f"{s}.parquet" for s in ("train", "valid", "test")}}


def checkpoint_path(variant_dir: Path, *, kind: CheckpointKind, rank: int) -> Path:
    """``<student/<variant>>/ckpt/{last,best}.rank<r>.pt``."""
    return Path(variant_dir) / "ckpt" / f"{kind}.rank{rank}.pt"


def index_files(directory: Path) -> tuple[Path, Path]:
    """(faiss index file, its manifest) inside an index folder."""
    return Path(directory) / INDEX_FILE, Path(directory) / INDEX_MANIFEST


def variant_of(vectors: str) -> str:
    """``"student/<variant>"`` (a run-relative vectors folder) -> ``<variant>``."""
    parts = Path(vectors).parts
    if len(parts) != 2 or parts[0] != STUDENT:
        raise ValueError(f"vectors={vectors!r}: expected '{STUDENT}/<variant>'")
    return parts[1]
