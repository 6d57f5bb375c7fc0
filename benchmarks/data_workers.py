"""bench_data.py's measured code, one side per process: our polars stage, the pandas baseline, the streaming
path; plus ``check`` (the pandas baseline produces the same tables as our stage).

Run through ``python benchmarks/bench_data.py --worker SIDE --logs P --items P``.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import current_rss_mib, emit  # noqa: E402
from synth_logs import as_loaded  # noqa: E402

K = 5


# --------------------------------------------------------------------------- workers (one per process)
def _polars(logs: str, items: str, *, profile: bool = False) -> dict[str, Any]:
    import polars as pl

    from recsys.data import prepare as P
    from recsys.data.split import leave_one_out

    t = time.perf_counter()
    inter, cat = pl.read_parquet(logs), pl.read_parquet(items)
    steps = {"read": time.perf_counter() - t}
    rss0 = current_rss_mib()
    loaded = as_loaded(inter, cat)
    del inter, cat  # as in recsys.data.stage: the loaded frames are let go once prepared (pandas alike)
    timings: dict[str, float] = {}
    t = time.perf_counter()
    prep = P.prepare(loaded, kcore_k=K, require_catalogue=False, timings=timings if profile else None)
    steps["prepare"] = time.perf_counter() - t
    del loaded
    steps.update({f"prepare.{k}": v for k, v in timings.items()})  # names with a dot are not summed
    t = time.perf_counter()
    train, _valid, _test = leave_one_out(prep.interactions)
    steps["split"] = time.perf_counter() - t
    t = time.perf_counter()
    hist = train.group_by("user").agg(pl.col("item").sort_by("pos"))
    steps["histories"] = time.perf_counter() - t
    return {
        "steps": steps,
        "rss_after_read_mib": rss0,
        "kept": prep.interactions.height,
        "train": train.height,
        "users": hist.height,
        "quarantined": prep.quarantine.height,
    }


def _pandas(logs: str, items: str) -> dict[str, Any]:
    import pandas as pd
    import pandas_baseline as B

    t = time.perf_counter()
    inter, cat = pd.read_parquet(logs), pd.read_parquet(items)
    steps = {"read": time.perf_counter() - t}
    rss0 = current_rss_mib()
    t = time.perf_counter()
    prep = B.prepare(inter, cat, k=K)
    steps["prepare"] = time.perf_counter() - t
    del inter, cat  # as on the polars side: the input frames are let go once prepared
    t = time.perf_counter()
    train, _valid, _test = B.leave_one_out(prep["interactions"])
    steps["split"] = time.perf_counter() - t
    t = time.perf_counter()
    hist = B.histories(train)
    steps["histories"] = time.perf_counter() - t
    return {
        "steps": steps,
        "rss_after_read_mib": rss0,
        "kept": len(prep["interactions"]),
        "train": len(train),
        "users": len(hist),
        "quarantined": len(prep["quarantine"]),
    }


def _streaming(logs: str, items: str) -> dict[str, Any]:
    from recsys.data.streaming import histories_streaming, prepare_streaming

    rss0 = current_rss_mib()
    with tempfile.TemporaryDirectory(prefix="recsys-stream-") as d:
        t = time.perf_counter()
        counts = prepare_streaming(interactions=logs, items=items, out_dir=d, kcore_k=K)
        steps = {"prepare+split": time.perf_counter() - t}
        t = time.perf_counter()
        histories_streaming(train=Path(d) / "split" / "train.parquet", out=Path(d) / "histories.parquet")
        steps["histories"] = time.perf_counter() - t
    return {
        "steps": steps,
        "rss_after_read_mib": rss0,
        "kept": counts["kept"],
        "train": counts["train"],
        "users": counts["users"],
        "quarantined": counts["quarantined"],
    }


def _histories(train: str, *, lib: str) -> dict[str, Any]:
    """Only the per-user history lists, from a train split on disk (the step pandas is slowest at)."""
    if lib == "polars":
        import polars as pl

        df = pl.read_parquet(train)
        rss0, t = current_rss_mib(), time.perf_counter()
        n = df.group_by("user").agg(pl.col("item").sort_by("pos")).height
    else:
        import pandas as pd
        import pandas_baseline as B

        df = pd.read_parquet(train)
        rss0, t = current_rss_mib(), time.perf_counter()
        n = len(B.histories(df))
    return {
        "steps": {"histories": time.perf_counter() - t},
        "rss_after_read_mib": rss0,
        "users": n,
        "kept": None,
        "train": len(df),
    }


def write_train(logs: str, items: str, out: str) -> None:
    """The train split of ``logs`` as parquet (input of the histories-only sides)."""
    import polars as pl

    from recsys.data.prepare import prepare
    from recsys.data.split import leave_one_out

    loaded = as_loaded(pl.read_parquet(logs), pl.read_parquet(items))
    leave_one_out(prepare(loaded, kcore_k=K, require_catalogue=False).interactions)[0].write_parquet(out)
    emit({"written": out})


def worker(side: str, logs: str, items: str, profile: bool) -> None:
    out = {
        "polars": lambda: _polars(logs, items, profile=profile),
        "pandas": lambda: _pandas(logs, items),
        "streaming": lambda: _streaming(logs, items),
        "hist_polars": lambda: _histories(logs, lib="polars"),
        "hist_pandas": lambda: _histories(logs, lib="pandas"),
    }[side]()
    out["total_s"] = sum(v for k, v in out["steps"].items() if k != "read" and "." not in k)
    emit(out)


def check(data_dir: Path) -> None:
    """The pandas baseline produces the same tables as polars (so the race is fair)."""
    import pandas as pd
    import pandas_baseline as B
    import polars as pl
    from synth_logs import write_logs

    from recsys.data.prepare import prepare
    from recsys.data.split import leave_one_out

    logs, items = write_logs(n_rows=50_000, out_dir=data_dir)
    prep = prepare(as_loaded(pl.read_parquet(logs), pl.read_parquet(items), source="x"), kcore_k=K,
                   require_catalogue=False)
    pd_prep = B.prepare(pd.read_parquet(logs), pd.read_parquet(items), k=K)
    for a, b in zip(leave_one_out(prep.interactions), B.leave_one_out(pd_prep["interactions"])):
        a2 = a.select(b.columns).to_pandas().reset_index(drop=True)
        pd.testing.assert_frame_equal(a2, b.reset_index(drop=True), check_dtype=False)
    for name in ("users", "items"):
        cols = ["user", "user_id"] if name == "users" else ["item", "item_id"]
        mine = getattr(prep, name).select(cols).to_pandas()
        pd.testing.assert_frame_equal(mine, pd_prep[name][cols].reset_index(drop=True), check_dtype=False)
    theirs = pd_prep["quarantine"].sort_values("row").reset_index(drop=True)
    mine = prep.quarantine.sort("row").to_pandas()
    pd.testing.assert_frame_equal(mine, theirs[mine.columns], check_dtype=False)
    print("check OK: pandas baseline == polars prepare + leave_one_out on 50k rows "
          "(tables, id maps, quarantine)")
