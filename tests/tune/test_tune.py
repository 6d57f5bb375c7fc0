"""recsys tune: the search loop (seeded, capped, resumable), its config errors, and one real tune on tiny data
whose best.toml loads through the normal loader and holds the best trial's student config."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import polars as pl
import pytest

pytest.importorskip("optuna")  # the `tune` extra; setup.sh --test installs it

from stand_ins import write_teacher

from pipelines import tune as P
from pipelines.config import PipelineConfig
from recsys import config as C
from recsys.artifacts import RunDir
from recsys.contracts import tune as T
from recsys.data.config import Columns, DataConfig
from recsys.data.stage import run as run_data
from recsys.data.tables import load_tables
from recsys.student.config import StudentConfig
from recsys.tune import space as S
from recsys.tune.config import FloatRange, IntChoice, SearchSpace, TuneConfig
from recsys.tune.study import Objective, TrialResult, best, optimize



def only(**on: object) -> SearchSpace:
    """A space with just these knobs on."""
    off = {f.name: dataclasses.replace(getattr(SearchSpace(), f.name), on=False) for f in dataclasses.fields(SearchSpace)}
    return SearchSpace(**{**off, **on})  # type: ignore[arg-type]


SMALL = only(lr=FloatRange(1e-3, 1e-2, log=True), dim=IntChoice((8, 16)))
BASE = {k: getattr(StudentConfig(), k) for k in S.knobs(SearchSpace())}


def fake(calls: list[tuple[int, dict]]) -> Objective:
    """An objective that scores a point by hand (peak at lr = 0.003, dim = 16) and logs its calls."""

    def objective(folder: int, params: dict) -> TrialResult:
        calls.append((folder, dict(params)))
        score = 0.1 - abs(np.log10(params["lr"] / 3e-3)) * 0.01 + (0.01 if params["dim"] == 16 else 0.0)
        return TrialResult(ndcg=score, recall=2 * score, seconds=0.0)

    return objective


def _run(path: Path, *, trials: int, seed: int = 0, objective=None, space: SearchSpace = SMALL,
         fingerprint: str = "f", startup: int = 2) -> list:
    cfg = TuneConfig(trials=trials, seed=seed, startup_trials=startup, space=space)
    base = {**BASE, "dim": 16}
    return optimize(cfg=cfg, path=path, base=base, fingerprint=fingerprint, objective=objective or fake([]))


def test_two_trials_then_resume_adds_trials_without_repeating_numbers(tmp_path: Path) -> None:
    journal = tmp_path / "study.journal"
    calls: list = []
    first = _run(journal, trials=2, objective=fake(calls))
    assert [r.number for r in first] == [0, 1] and all(r.state == "COMPLETE" for r in first)
    assert first[0].baseline and first[0].params == {"lr": 2e-3, "dim": 16}  # trial 0 = the base config
    again = _run(journal, trials=2, objective=fake(calls))  # the cap is reached: nothing new
    assert len(again) == 2 and len(calls) == 2
    more = _run(journal, trials=4, objective=fake(calls))
    assert [r.number for r in more] == [0, 1, 2, 3] and len(calls) == 4
    assert [r.params for r in more[:2]] == [r.params for r in first]  # the finished trials are kept as they were
    assert len({tuple(sorted(r.params.items())) for r in more}) == 4


def test_an_interrupted_trial_is_marked_and_re_run_in_its_own_folder(tmp_path: Path) -> None:
    journal = tmp_path / "study.journal"
    calls: list = []
    ok = fake(calls)

    def dies_on_the_second(folder: int, params: dict) -> TrialResult:
        if len(calls) == 1:
            calls.append((folder, dict(params)))
            raise KeyboardInterrupt  # a killed tune: the trial stays "running" in the journal
        return ok(folder, params)

    with pytest.raises(KeyboardInterrupt):
        _run(journal, trials=3, objective=dies_on_the_second, startup=4)
    killed = calls[1]
    table = _run(journal, trials=3, objective=ok, startup=4)  # still random draws after the resume
    states = {r.number: r.state for r in table}
    assert states == {0: "COMPLETE", 1: "INTERRUPTED", 2: "COMPLETE", 3: "COMPLETE"}
    assert calls[2] == killed  # re-run first, same params, same folder (1)
    assert table[2].folder == 1 and table[2].params == killed[1]
    assert table[3].params != killed[1]  # the resumed seeded sampler does not replay the first run's draws


def test_same_seed_samples_the_same_params(tmp_path: Path) -> None:
    space = SMALL
    a = _run(tmp_path / "a.journal", trials=5, seed=7, space=space)
    b = _run(tmp_path / "b.journal", trials=5, seed=7, space=space)
    c = _run(tmp_path / "c.journal", trials=5, seed=8, space=space)
    assert [r.params for r in a] == [r.params for r in b]
    assert [r.params for r in a[1:]] != [r.params for r in c[1:]]
    assert best(a) is not None and best(a).ndcg == max(r.ndcg for r in a)


def test_resuming_with_another_space_is_refused(tmp_path: Path) -> None:
    journal = tmp_path / "study.journal"
    _run(journal, trials=1)
    with pytest.raises(C.ConfigError, match="another search space"):
        _run(journal, trials=2, fingerprint="g")


@pytest.mark.parametrize(("overrides", "key"), [
    (["tune.trials=0"], "tune.trials"),
    (["tune.budget_minutes=0"], "tune.budget_minutes"),
    (["tune.space.lr.lo=0.1", "tune.space.lr.hi=0.01"], "tune.space.lr"),
    (["tune.space.temperature.lo=0"], "tune.space.temperature"),  # a log range from 0
    (["tune.space.id_dropout.hi=1.5"], "tune.space.id_dropout"),  # outside StudentConfig's own range
    (["tune.space.negatives.values=in_batch,bogus"], "tune.space.negatives"),
    (["tune.space.nope.lo=1"], "tune.space.nope"),
])
def test_a_bad_budget_or_range_names_the_key(overrides: list[str], key: str) -> None:
    with pytest.raises(C.ConfigError, match=key.replace(".", r"\.")):
        P.load(path=None, overrides=overrides, flags={})


def test_flags_and_overrides_reach_the_two_configs(tmp_path: Path) -> None:
    base = tmp_path / "base.toml"
    base.write_text('[student]\nepochs = 3\n\n[tune]\nstartup_trials = 2\n[tune.space.dim]\non = false\n')
    cfg, tcfg = P.load(path=base, overrides=["student.nproc=1", "tune.space.lr.hi=0.005"],
                       flags={"trials": 3, "budget_minutes": None, "seed": 5})
    assert (cfg.student.epochs, cfg.student.nproc) == (3, 1)
    assert (tcfg.trials, tcfg.seed, tcfg.startup_trials, tcfg.space.lr.hi, tcfg.space.lr.lo) == (3, 5, 2, 0.005, 5e-4)
    assert "dim" not in S.knobs(tcfg.space) and tcfg.budget_minutes == TuneConfig().budget_minutes


def test_the_default_space_names_student_fields_and_holds_the_defaults() -> None:
    S.check(SearchSpace(), target=StudentConfig)
    assert S.contains(SearchSpace(), {k: getattr(StudentConfig(), k) for k in S.knobs(SearchSpace())})
    assert not S.contains(SMALL, {"lr": 0.5, "dim": 16})


def test_dumps_round_trips_a_pipeline_config(tmp_path: Path) -> None:
    cfg = PipelineConfig(student=StudentConfig(mlp=(32, 16), lr=3.5e-4, negatives="mixed", init_from=None),
                         data=DataConfig(source="toys", columns=Columns(item_brand=None, category_sep=";")), rerank=False)
    p = tmp_path / "c.toml"
    p.write_text(C.dumps(cfg))
    assert C.load(PipelineConfig, path=p) == cfg


def _tiny_run(root: Path) -> RunDir:
    rd = RunDir(root)
    run_data(DataConfig(source="synthetic", synthetic_users=80, synthetic_items=40, seed=0), rd)
    t = load_tables(rd.layout)
    emb = np.random.default_rng(0).normal(size=(t.n_items, 16)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    topk = pl.DataFrame({"user": pl.Series([], dtype=pl.Int32), "item": pl.Series([], dtype=pl.Int32),
                         "score": pl.Series([], dtype=pl.Float32), "rank": pl.Series([], dtype=pl.Int32)})
    write_teacher(rd, raw=emb, adapted=emb[:, :8].copy(), topk={"valid": topk})
    return rd


def test_a_real_tune_writes_the_table_the_plot_and_a_best_toml_that_loads(tmp_path: Path) -> None:
    rd = _tiny_run(tmp_path / "run")
    small = ["student.nproc=1", "student.item_id_dim=8", "student.brand_dim=4", "student.category_dim=4",
             "student.mlp=16", "student.batch_size=32", "student.eval_batch_size=256", "student.quantize_int8=false",
             "tune.space.epochs.lo=1", "tune.space.epochs.hi=2", "tune.space.dim.values=8,16",
             "tune.space.negatives.values=in_batch,mixed", "student.n_uniform_negatives=16", "student.epochs=1",
             "student.dim=8"]
    cfg, tcfg = P.load(path=None, overrides=small, flags={"trials": 2, "seed": 0})
    table = P.tune(cfg, tcfg, rd)
    assert [r.state for r in table] == ["COMPLETE", "COMPLETE"]
    df = T.read_trials(layout=rd.layout)
    assert df["trial"].to_list() == [0, 1] and df["valid_ndcg@10"].is_not_null().all()
    assert rd.layout.tune_plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| trial |" in rd.layout.tune_trials_md.read_text()
    top = best(table)
    loaded = C.load(PipelineConfig, path=rd.layout.best_config)  # the loader `recsys evaluate -c` uses
    assert loaded == P.best_config(cfg, top)
    assert {k: getattr(loaded.student, k) for k in top.params} == top.params
    trained = rd.stage_record(f"student/{P.variant(top.folder)}")["config"]  # what the best trial trained with
    assert C.build(StudentConfig, trained) == loaded.student
    assert trained["lr"] == top.params["lr"]
