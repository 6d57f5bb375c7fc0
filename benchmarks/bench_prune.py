"""Pruning sweep of a trained student on the VALID split: NDCG/Recall@10 (full ranking) against model bytes.

    python benchmarks/bench_prune.py --run /tmp/demo_final [--run /tmp/toys_final]    # run dirs of `recsys evaluate`

For each run: dense sparsity (per layer and global) with every id row kept, id-row pruning by training count
with dense weights intact, and a few combinations; each pruned student is encoded by the numpy towers
(``recsys.student.prune``) and ranked against every item, history excluded, the protocol of every report row. This
is what chose ``prune.dense_sparsity`` / ``prune.scope`` / ``prune.min_item_count``; test is never looked at here.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import load_average, write_result

GRID = [(0.0, "layer", 0), (0.5, "layer", 0), (0.8, "layer", 0), (0.9, "layer", 0), (0.5, "global", 0),
        (0.8, "global", 0), (0.9, "global", 0), (0.0, "layer", 5), (0.0, "layer", 10), (0.0, "layer", 20),
        (0.0, "layer", 50), (0.5, "layer", 10), (0.8, "layer", 10), (0.5, "layer", 20), (0.8, "global", 20)]
DEFAULT = (0.5, "layer", 10)  # recsys.student.config.PruneConfig's defaults: the summary line
QUICK = [(0.0, "layer", 0), (0.5, "layer", 0), (0.0, "layer", 5), (0.0, "layer", 10), (0.5, "layer", 5),
         (0.5, "layer", 10)]


def sweep(run: Path, *, variant: str, grid: list[tuple[float, str, int]]) -> list[dict[str, Any]]:
    from recsys.contracts import student as S
    from recsys.contracts import teacher as T
    from recsys.contracts.layout import Layout
    from recsys.data.tables import load_tables
    from recsys.student import prune as P
    from recsys.student import user_tower
    from recsys.student.export import evaluate
    from recsys.student.prune_stage import dense_from_checkpoint, encode

    lay = Layout(run)
    tables = load_tables(lay)
    scfg = S.read_meta(layout=lay, variant=variant).get("config") or {}
    full = user_tower.read(layout=lay, variant=variant)
    item_layers, proj = dense_from_checkpoint(lay, variant=variant)
    text = T.read_items(layout=lay, n_items=tables.n_items)[scfg.get("text_emb", "raw")].astype(np.float32) \
        if proj is not None else None
    count = np.bincount(tables.train["item"].to_numpy(), minlength=tables.n_items)
    rows = []
    for sparsity, scope, min_count in grid:
        t0 = time.perf_counter()
        model = P.prune(user=full, item_layers=item_layers, text_proj=proj, train_count=count, sparsity=sparsity,
                        scope=scope, min_count=min_count)
        items, uv, _ = encode(model, tables=tables, text=text, carry=full.carry)
        enc = time.perf_counter() - t0
        m = evaluate(users=uv, items=items, tables=tables, split="valid")
        size = P.size_bytes(model)
        rows.append({"name": f"{run.name} s={sparsity} {scope} min_count={min_count}", "run": str(run),
                     "dense_sparsity": sparsity, "scope": scope, "min_item_count": min_count,
                     "id_rows_kept": int(model.id_rows.size), "id_rows": int(tables.n_items),
                     "model_bytes": size["total"], "valid_ndcg@10": round(m["ndcg@10"], 4),
                     "valid_recall@10": round(m["recall@10"], 4), "encode_s": round(enc, 2),
                     "value": round(m["ndcg@10"], 4), "unit": "valid NDCG@10", "load_avg": load_average(),
                     "headline": (sparsity, scope, min_count) == DEFAULT})
        print(rows[-1], flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, action="append", required=True, help="a run dir with a trained student")
    ap.add_argument("--variant", default="student_kd")
    ap.add_argument("--out-dir", type=Path, default=None)
    ap.add_argument("--quick", action="store_true", help="6 points instead of 15 (the default and its neighbours)")
    args = ap.parse_args(argv)
    rows = [r for run in args.run for r in sweep(run, variant=args.variant, grid=QUICK if args.quick else GRID)]
    write_result("prune", results=rows, notes=[
        ("valid split, full ranking over all items, history excluded; model_bytes = id/brand/category tables + "
        "dense weights as stored (kept rows + row ids, packed masks + kept values, biases)"),
        ("s = share of dense weights zeroed (tower MLPs + text projection); min_count = id rows of items with fewer "
        "training events dropped (id path off)")], out_dir=args.out_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
