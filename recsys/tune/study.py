"""The budgeted, resumable search loop: an Optuna study (TPE, seeded) in a journal file of the run directory.

Resuming: finished trials stay in the journal; a trial still marked running when the study is opened was
interrupted (the run-directory lock says no other tune is live), so it is marked failed and its params are
queued again with ``rerun_of`` = its number: the re-run trains in the same student folder, where the student
stage resumes from its last checkpoint. Trial numbers never repeat. The trial cap counts completed trials over
every invocation; the wall-clock budget is per invocation and is checked before each trial starts.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from recsys.config import ConfigError
from recsys.tune.config import TuneConfig
from recsys.tune.space import Value, contains, knobs, sample

log = logging.getLogger(__name__)
STUDY = "recsys-tune"
MISSING = "optuna is not installed: `pip install -e '.[tune]'` (or `bash scripts/setup.sh --test`) adds it"


@dataclasses.dataclass(frozen=True)
class TrialResult:
    """What one trial's objective measured (valid split only)."""

    ndcg: float  # valid NDCG@10: the objective
    recall: float  # valid Recall@10
    seconds: float


@dataclasses.dataclass(frozen=True)
class TrialRow:
    number: int
    state: str  # COMPLETE, FAIL, INTERRUPTED (re-run as a later trial), RUNNING, WAITING
    params: dict[str, Value]
    ndcg: float | None
    recall: float | None
    seconds: float | None
    folder: int  # the trial whose student folder this one trained in (itself, or the one it re-runs)
    baseline: bool


Objective = Callable[[int, dict[str, Value]], TrialResult]  # (folder number, params) -> result


def _optuna() -> Any:
    try:
        import optuna
    except ImportError as e:  # pragma: no cover - the tune extra is in the test install
        raise ConfigError(MISSING) from e
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def open_study(*, path: Path, cfg: TuneConfig, fingerprint: str) -> Any:
    """Create or load the study in the journal file ``path``; refuse one made for another space or base."""
    optuna = _optuna()
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    path.parent.mkdir(parents=True, exist_ok=True)
    storage = JournalStorage(JournalFileBackend(str(path)))
    study = optuna.create_study(study_name=STUDY, storage=storage, direction="maximize", load_if_exists=True)
    # A resumed sampler seeded as the first one would replay the first random draws (the startup trials do not
    # read the history): offset the seed by the trials already in the study. A new study uses the seed itself.
    offset = len(study.get_trials(deepcopy=False))
    study.sampler = optuna.samplers.TPESampler(seed=cfg.seed + offset, n_startup_trials=cfg.startup_trials)
    was = study.user_attrs.get("fingerprint")
    if was is None:
        study.set_user_attr("fingerprint", fingerprint)
    elif was != fingerprint:
        raise ConfigError(f"{path}: this study was started with another search space or base config (data, "
                          "teacher or student); resume it with the same -c and key=value options, or give a new "
                          "-o for a new study")
    return study


def requeue_interrupted(study: Any) -> list[int]:
    """Mark every running trial failed and queue its params again; returns the interrupted numbers."""
    from optuna.trial import TrialState

    out = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study.tell(t.number, state=TrialState.FAIL)
        study.enqueue_trial(dict(t.params), user_attrs={"rerun_of": t.user_attrs.get("rerun_of", t.number),
                                                        "baseline": t.user_attrs.get("baseline", False)})
        out.append(t.number)
    return out


def rows(study: Any) -> list[TrialRow]:
    """Every trial of the study, in number order."""
    trials = study.get_trials(deepcopy=False)
    out = []
    for t in trials:
        state = t.state.name
        folder = int(t.user_attrs.get("rerun_of", t.number))
        if state == "FAIL" and any(u.number > t.number and u.user_attrs.get("rerun_of") == folder for u in trials):
            state = "INTERRUPTED"  # a later trial re-runs it (a failed objective is not re-run: it stays FAIL)
        out.append(TrialRow(number=t.number, state=state, params=dict(t.params),
                            ndcg=None if t.value is None else float(t.value), recall=t.user_attrs.get("recall@10"),
                            seconds=t.user_attrs.get("seconds"), folder=folder,
                            baseline=bool(t.user_attrs.get("baseline", False))))
    return out


def best(table: list[TrialRow]) -> TrialRow | None:
    """The completed trial with the highest valid NDCG@10 (the earliest on a tie)."""
    done = [r for r in table if r.state == "COMPLETE" and r.ndcg is not None]
    return max(done, key=lambda r: (r.ndcg, -r.number)) if done else None


def optimize(*, cfg: TuneConfig, path: Path, base: dict[str, Value], fingerprint: str, objective: Objective,
             after_trial: Callable[[list[TrialRow]], None] = lambda _: None,
             clock: Callable[[], float] = time.monotonic) -> list[TrialRow]:
    """Run trials until ``cfg.trials`` have completed or ``cfg.budget_minutes`` have passed.

    Args:
        path: the study's journal file (created, or resumed).
        base: the base config's value of every knob (trial 0 when ``cfg.baseline_first``).
        fingerprint: hash of what the trials train on besides the knobs; a resume must match it.
        objective: trains and scores one point; an exception marks the trial failed and stops the search.
        after_trial: called with every trial's row after each finished trial (write tables, plots).
    """
    from optuna.trial import TrialState

    study = open_study(path=path, cfg=cfg, fingerprint=fingerprint)
    interrupted = requeue_interrupted(study)
    if interrupted:
        log.info("tune: trial(s) %s were interrupted; re-running them", interrupted)
    point = {k: base[k] for k in knobs(cfg.space)}
    if cfg.baseline_first and not study.get_trials(deepcopy=False):
        if contains(cfg.space, point):
            study.enqueue_trial(point, user_attrs={"baseline": True})
        else:
            log.warning("tune: the base config's point %s is outside the search space; no baseline trial", point)
    t0 = clock()
    budget = cfg.budget_minutes * 60
    while True:
        done = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
        if done >= cfg.trials:
            log.info("tune: %d completed trials (the cap, tune.trials)", done)
            break
        spent = clock() - t0
        if spent >= budget:
            log.info("tune: budget of %.1f min spent after %d completed trials", cfg.budget_minutes, done)
            break
        trial = study.ask()
        params = sample(cfg.space, trial)
        folder = int(trial.user_attrs.get("rerun_of", trial.number))
        tag = " (baseline: the base config)" if trial.user_attrs.get("baseline") else ""
        log.info("tune: trial %d [%d/%d completed, %.1f of %.1f min]%s: %s", trial.number, done, cfg.trials,
                 spent / 60, cfg.budget_minutes, tag, _fmt(params))
        try:
            res = objective(folder, params)
        except Exception:
            study.tell(trial, state=TrialState.FAIL)
            log.error("tune: trial %d failed; stopping (the study keeps it as FAIL)", trial.number)
            raise
        trial.set_user_attr("recall@10", res.recall)
        trial.set_user_attr("seconds", res.seconds)
        study.tell(trial, res.ndcg)
        table = rows(study)
        top = best(table)
        log.info("tune: trial %d: valid ndcg@10 %.4f recall@10 %.4f in %.0fs; best so far %.4f (trial %d)",
                 trial.number, res.ndcg, res.recall, res.seconds, top.ndcg if top else float("nan"),
                 top.number if top else -1)
        after_trial(table)
    return rows(study)


def _fmt(params: dict[str, Value]) -> str:
    return " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())
