"""One stage of the scale run per process (``bench_scale.py`` runs each and measures its wall time and the
peak RSS of its process tree, torchrun workers included).

    python benchmarks/scale_stages.py gen     WORK '{"items": 220000, "users": 60000, "events": 5300000}'
    python benchmarks/scale_stages.py data    WORK '{}'
    python benchmarks/scale_stages.py teacher WORK '{"nproc": 2, ...TeacherConfig overrides}'
    ... student | index | rank | eval

The log: items ~ Zipf(``zipf``) over a shuffled catalogue, user activity ~ lognormal(``sigma``), timestamps
uniform over a year; titles are ``title_words`` words drawn (Zipf over the word list, so some words are common
and some rare) from the whole-word entries of the teacher's own WordPiece vocabulary, so every title is real
text the model has to read (~1 token per word), and each item a brand and a two-level category.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
T0 = 1_600_000_000
YEAR = 365 * 86400


def _words() -> list[str]:
    from recsys.teacher.encoder import default_model_path

    vocab = (Path(default_model_path()) / "vocab.txt").read_text(encoding="utf-8").split("\n")
    return [w for w in vocab if w.isascii() and w.isalpha() and len(w) >= 3]


def _sample(rng: np.random.Generator, weights: np.ndarray, n: int) -> np.ndarray:
    cdf = np.cumsum(weights)
    cdf /= cdf[-1]
    return np.minimum(np.searchsorted(cdf, rng.random(n)), len(weights) - 1)


def gen(work: Path, p: dict[str, Any]) -> dict[str, Any]:
    rng = np.random.default_rng(p.get("seed", 0))
    n_items, n_users, n_events = int(p["items"]), int(p["users"]), int(p["events"])
    words = np.array(_words())
    w_word = 1.0 / np.arange(1, len(words) + 1) ** 0.7
    k = int(p.get("title_words", 8))
    title_idx = _sample(rng, w_word, n_items * k).reshape(n_items, k)
    titles = [" ".join(r) for r in words[title_idx]]
    n_brands, n_cats = max(10, n_items // 200), max(10, n_items // 2000)
    brand = rng.integers(0, n_brands, n_items)
    cat = rng.integers(0, n_cats, n_items)
    items = pl.DataFrame({"item_id": [f"i{i}" for i in range(n_items)], "title": titles,
                          "brand": [f"{words[b % len(words)]}co" for b in brand],
                          "categories": [f"{words[(c * 7) % len(words)]}|{words[(c * 13 + 1) % len(words)]}"
                                         for c in cat],
                          "price": np.round(rng.lognormal(3.0, 0.8, n_items), 2)})
    w_user = rng.lognormal(0.0, float(p.get("sigma", 1.2)), n_users)
    user = _sample(rng, w_user, n_events)
    w_item = 1.0 / np.arange(1, n_items + 1, dtype=np.float64) ** float(p.get("zipf", 0.75))
    item = rng.permutation(n_items)[_sample(rng, w_item, n_events)]
    ts = T0 + rng.integers(0, YEAR, n_events, dtype=np.int64)
    logs = pl.DataFrame({"u": user, "i": item, "timestamp": ts}).select(
        (pl.lit("u") + pl.col("u").cast(pl.String)).alias("user_id"),
        (pl.lit("i") + pl.col("i").cast(pl.String)).alias("item_id"), "timestamp")
    (work / "logs").mkdir(parents=True, exist_ok=True)
    logs.write_parquet(work / "logs" / "events.parquet")
    items.write_parquet(work / "logs" / "catalogue.parquet")
    tokens = np.array([len(t.split()) for t in titles[:2000]])
    return {"raw_events": n_events, "raw_users": n_users, "catalogue_items": n_items, "words": len(words),
            "title_words": k, "title_words_mean": float(tokens.mean()), "zipf": p.get("zipf", 0.75),
            "sigma": p.get("sigma", 1.2)}


def _run_dir(work: Path) -> Any:
    from recsys.artifacts import RunDir

    return RunDir(work / "run")


def data(work: Path, p: dict[str, Any]) -> dict[str, Any]:
    from recsys.config import build
    from recsys.data.config import DataConfig
    from recsys.data.stage import run

    cfg = build(DataConfig, {"source": "table", "path": str(work / "logs" / "events.parquet"),
                             "items_path": str(work / "logs" / "catalogue.parquet"), **p}, prefix="data.")
    rd = _run_dir(work)
    run(cfg, rd, require_text=True)
    return dict((rd.stage_record("data") or {}).get("counts", {}))


def teacher(work: Path, p: dict[str, Any]) -> dict[str, Any]:
    from recsys.config import build
    from recsys.teacher.config import TeacherConfig
    from recsys.teacher.stage import run

    cfg = build(TeacherConfig, {"cache_dir": str(work / "teacher_cache"), **p}, prefix="teacher.")
    stats = run(cfg, _run_dir(work))
    return {k: stats.get(k) for k in ("items", "users", "encoded_new", "from_cache", "encode_seconds", "seconds",
                                      "metrics", "distributed", "adapter")}


def student(work: Path, p: dict[str, Any]) -> dict[str, Any]:
    from recsys.config import build
    from recsys.data.tables import load_tables
    from recsys.student.config import StudentConfig
    from recsys.student.stage import run

    rd = _run_dir(work)
    p = dict(p)
    window = p.pop("window_share", None)  # train_since from the share of train events in the window
    if window is not None:
        ts = load_tables(rd.layout).train["timestamp"].to_numpy()
        p["train_since"] = int(np.quantile(ts, 1.0 - float(window)))
    cfg = build(StudentConfig, p, prefix="student.")
    rec = run(cfg, rd, variant="student_kd")
    return {k: rec.get(k) for k in ("valid", "test", "seconds", "train_seconds", "examples_per_s", "world_size",
                                    "examples", "params")}


def index(work: Path, p: dict[str, Any]) -> dict[str, Any]:
    from recsys.config import build
    from recsys.index.config import IndexConfig
    from recsys.index.stage import run

    rep = run(build(IndexConfig, p, prefix="index."), _run_dir(work))
    return dict(rep) if isinstance(rep, dict) else {}


def rank(work: Path, p: dict[str, Any]) -> dict[str, Any]:
    from recsys.config import build
    from recsys.rank.config import RankConfig
    from recsys.rank.stage import run

    rep = run(build(RankConfig, p, prefix="rank."), _run_dir(work))
    return {k: rep.get(k) for k in ("test_retriever", "test_reranked", "train")}


def evaluate(work: Path, p: dict[str, Any]) -> dict[str, Any]:
    from recsys.config import build
    from recsys.eval.config import EvalConfig
    from recsys.eval.stage import run

    m = run(build(EvalConfig, p, prefix="eval."), _run_dir(work), dataset="synthetic scale log")
    keep = ("model", "recall@10", "ndcg@10", "recall@20", "ndcg@20", "ci", "sampled_users", "population",
            "eval_seconds")
    return {"rows": [{k: r.get(k) for k in keep if k in r} for r in m["rows"]]}


STAGES = {"gen": gen, "data": data, "teacher": teacher, "student": student, "index": index, "rank": rank,
          "eval": evaluate}


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    for name in ("fbgemm_gpu", "torchrec", "torch.distributed"):
        logging.getLogger(name).setLevel(logging.WARNING)
    stage, work, params = argv[0], Path(argv[1]), json.loads(argv[2])
    out = STAGES[stage](work, params)
    print("RESULT " + json.dumps(out, default=str), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
