"""Budgeted hyper-parameter search for the distilled student (Optuna TPE, seeded, resumable).

    recsys tune -o RUN_DIR [-c base.toml] [--budget-minutes M] [--trials N] [--seed S] [key=value ...]

The data and teacher stages run once into RUN_DIR (skipped when fresh, as in `recsys evaluate`: copy tables/,
teacher/ and manifest.json from a finished run to skip them). Each trial trains `student_kd` with the base
config's student plus the trial's knobs, through the student stage itself, into student/trial_<NNNN>/, and is
scored on the VALID split (NDCG@10, the objective; Recall@10 recorded). Test is never read.

Knobs (tune.space.<name>, typed ranges in recsys/tune/config.py; each also has .on): lr, temperature,
lambda_rank, id_dropout, epochs, dim, negatives. Trial 0 is the base config itself (tune.baseline_first).

Writes into RUN_DIR after every trial: tune/study.journal (the Optuna study: JournalStorage), tune/trials.parquet
and tune/trials.md (trial, state, knobs, valid_ndcg@10, valid_recall@10, seconds), tune/trials.png (valid NDCG@10
per trial and the best so far) and best.toml, a complete config for `recsys evaluate -c RUN_DIR/best.toml`.

Stopping and resuming: --trials caps the completed trials of the study (over every invocation); --budget-minutes
is this invocation's wall clock, checked before each trial (a running trial finishes). A killed tune resumes by
running the same command: finished trials are kept, an interrupted one is marked INTERRUPTED and re-run (in its
own student folder, from the student's last checkpoint). Resuming with another base config or space is refused.

key=value: pipeline config overrides (student.nproc=1, data.source=toys) and tune options (tune.space.lr.hi=0.005,
tune.space.negatives.values=in_batch,mixed, tune.space.dim.on=false, tune.startup_trials=3).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import time
from pathlib import Path
from typing import Any

from pipelines.common import command_main, open_run, quiet_third_party, setup_logging
from pipelines.config import PipelineConfig
from recsys import config as C
from recsys.artifacts import RunDir, hash_obj
from recsys.student.config import StudentConfig
from recsys.tune import space as S
from recsys.tune.config import TuneConfig
from recsys.tune.study import TrialResult, TrialRow, best, optimize

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

log = logging.getLogger("recsys")
PREFIX = "tune."


def variant(folder: int) -> str:
    """The student folder of a trial: student/trial_<NNNN>."""
    return f"trial_{folder:04d}"


def load(*, path: Path | None, overrides: list[str], flags: dict[str, Any]) -> tuple[PipelineConfig, TuneConfig]:
    """The base pipeline config (``-c`` minus its [tune] table, plus the other overrides) and the tune config
    (defaults, the [tune] table, ``tune.*`` overrides, then the flags). ``ConfigError`` names a bad key."""
    table: dict[str, Any] = {}
    if path is not None:
        if not Path(path).exists():
            raise C.ConfigError(f"config file {path} does not exist")
        try:
            table = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as e:
            raise C.ConfigError(f"config file {path}: invalid TOML ({e})") from None
    tune_table = table.pop("tune", {})
    ours = [o for o in overrides if o.strip().startswith(PREFIX)]
    rest = [o for o in overrides if not o.strip().startswith(PREFIX)]
    cfg = C.build(PipelineConfig, C.merge(table, C.parse_overrides(rest)))
    given = C.merge(tune_table, C.parse_overrides([o.strip()[len(PREFIX):] for o in ours]))
    given = C.merge(given, {k: v for k, v in flags.items() if v is not None})
    defaults = dataclasses.asdict(TuneConfig())
    tcfg = C.build(TuneConfig, C.merge(defaults, given), prefix=PREFIX)
    S.check(tcfg.space, target=StudentConfig, prefix=f"{PREFIX}space.", target_prefix="student.")
    return cfg, tcfg


def fingerprint(cfg: PipelineConfig, tcfg: TuneConfig) -> str:
    """What the trials share besides the knobs (nproc changes speed, not the model family)."""
    return hash_obj({"space": tcfg.space, "student": dataclasses.replace(cfg.student, nproc=1), "data": cfg.data,
                     "teacher": cfg.teacher})


def trial_config(base: StudentConfig, params: dict[str, S.Value]) -> StudentConfig:
    student = dataclasses.replace(base, **params)  # type: ignore[arg-type]
    C.check_ranges(student, prefix="student.")
    return student


def best_config(cfg: PipelineConfig, row: TrialRow) -> PipelineConfig:
    return dataclasses.replace(cfg, student=trial_config(cfg.student, row.params))


def prepare(cfg: PipelineConfig, run_dir: RunDir, *, force: bool = False) -> None:
    """The data and teacher stages, once (skipped when fresh)."""
    from recsys.data import stage as data
    from recsys.teacher import stage as teacher

    data.run(cfg.data, run_dir, force=force, require_text=True)
    teacher.run(cfg.teacher, run_dir, force=force)


def write_outputs(cfg: PipelineConfig, tcfg: TuneConfig, run_dir: RunDir, table: list[TrialRow]) -> None:
    """Trials table, plot and best.toml, recorded as stage ``tune``."""
    from recsys.contracts import tune as T
    from recsys.tune import report

    top = best(table)
    df = report.frame(table, space=tcfg.space)
    done = df.filter(df["state"] == "COMPLETE").height
    title = f"recsys tune: {done} completed trial(s), valid NDCG@10 ({run_dir.root.name})"
    paths = T.write_trials(layout=run_dir.layout, table=df, markdown=report.markdown(
        df, best=None if top is None else top.number, title=title))
    paths.append(report.plot(df, path=T.plot_path(run_dir.layout), title=title))
    summary: dict[str, Any] = {"completed": done, "trials": df.height}
    if top is not None:
        base = next((r for r in table if r.baseline and r.state == "COMPLETE"), None)
        head = [f"# recsys tune: best of {done} completed trial(s) = trial {top.number} "
                f"(student/{variant(top.folder)}), valid ndcg@10 {top.ndcg:.4f} recall@10 {top.recall:.4f}"]
        if base is not None:
            head.append(f"# base config (trial {base.number}): valid ndcg@10 {base.ndcg:.4f} recall@10 "
                        f"{base.recall:.4f}")
        head.append("# tuned: " + ", ".join(f"student.{k} = {v!r}" for k, v in top.params.items()))
        head.append(f"# use: recsys evaluate -c {run_dir.layout.best_config}")
        paths.append(T.write_best(layout=run_dir.layout,
                                  text="\n".join(head) + "\n\n" + C.dumps(best_config(cfg, top))))
        summary["best"] = {"trial": top.number, "params": top.params, "valid_ndcg@10": top.ndcg,
                           "valid_recall@10": top.recall}
        if base is not None:
            summary["base"] = {"trial": base.number, "valid_ndcg@10": base.ndcg, "valid_recall@10": base.recall}
    run_dir.record(T.STAGE, key=fingerprint(cfg, tcfg), config=tcfg, outputs=paths, seconds=0.0, **summary)


def tune(cfg: PipelineConfig, tcfg: TuneConfig, run_dir: RunDir) -> list[TrialRow]:
    """The search over a run directory that holds the tables and teacher files."""
    from recsys.contracts import tune as T
    from recsys.student import stage as student

    def objective(folder: int, params: dict[str, S.Value]) -> TrialResult:
        t0 = time.perf_counter()
        rec = student.run(trial_config(cfg.student, params), run_dir, variant=variant(folder))
        valid = rec["valid"]
        return TrialResult(ndcg=float(valid["ndcg@10"]), recall=float(valid["recall@10"]),
                           seconds=round(time.perf_counter() - t0, 1))

    base = {k: getattr(cfg.student, k) for k in S.knobs(tcfg.space)}
    table = optimize(cfg=tcfg, path=T.study_path(run_dir.layout), base=base, fingerprint=fingerprint(cfg, tcfg),
                     objective=objective, after_trial=lambda rows: write_outputs(cfg, tcfg, run_dir, rows))
    write_outputs(cfg, tcfg, run_dir, table)
    return table


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                    help="pipeline config overrides (student.nproc=1 data.source=toys) and tune.* options "
                         "(tune.space.lr.hi=0.005 tune.space.negatives.values=in_batch,mixed)")
    ap.add_argument("-c", "--config", type=Path, default=None,
                    help="base TOML config (a [tune] table in it sets tune options); overrides apply on top")
    ap.add_argument("-o", "--out", type=Path, required=True,
                    help="tune run directory: tables, teacher, one student per trial, the study, the best config")
    ap.add_argument("--budget-minutes", type=float, default=None,
                    help=f"wall clock of this invocation; no trial starts after it "
                         f"(default {TuneConfig().budget_minutes:g})")
    ap.add_argument("--trials", type=int, default=None,
                    help=f"stop at this many completed trials, counted over resumes (default {TuneConfig().trials})")
    ap.add_argument("--seed", type=int, default=None, help="TPE sampler seed (default 0)")
    ap.add_argument("--force", action="store_true", help="re-run the data and teacher stages even when fresh")
    ap.add_argument("-q", "--quiet", action="store_true", help="only warnings and the final summary")
    ap.add_argument("-v", "--verbose", action="store_true", help="debug logging")


def run(args: argparse.Namespace) -> int:
    setup_logging(quiet=args.quiet, verbose=args.verbose)
    quiet_third_party()
    cfg, tcfg = load(path=args.config, overrides=list(args.overrides),
                     flags={"budget_minutes": args.budget_minutes, "trials": args.trials, "seed": args.seed})
    with open_run(args.out):
        run_dir = RunDir(args.out)
        prepare(cfg, run_dir, force=args.force)
        table = tune(cfg, tcfg, run_dir)
    top = best(table)
    base = next((r for r in table if r.baseline and r.state == "COMPLETE"), None)
    lay = run_dir.layout
    if top is not None:
        print(f"best: trial {top.number}, valid ndcg@10 {top.ndcg:.4f} recall@10 {top.recall:.4f}: "
              + " ".join(f"{k}={v}" for k, v in top.params.items()))
    if base is not None:
        print(f"base: trial {base.number}, valid ndcg@10 {base.ndcg:.4f} recall@10 {base.recall:.4f}")
    print(f"-> {lay.best_config}, {lay.tune_trials_md}, {lay.tune_plot}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return command_main(argv, prog="recsys tune", doc=__doc__, add=add_arguments, run=run)


if __name__ == "__main__":
    raise SystemExit(main())
