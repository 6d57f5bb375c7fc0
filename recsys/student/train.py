"""The training loop: sharded two-tower, validation NDCG@10 each epoch, early stopping, per-epoch
checkpoints and resume after a kill.

Determinism: every random draw of epoch ``e`` comes from ``default_rng([seed, e])`` (same on every
rank), and a checkpoint holds model, fused and dense optimizer states, so a run killed after epoch
``e``'s checkpoint and resumed gives the same vectors as an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from recsys import metrics
from recsys.contracts import StageError
from recsys.contracts.layout import checkpoint_path
from recsys.student import checkpoint, scoring
from recsys.student.batches import epoch_examples, replay_size
from recsys.student.config import StudentConfig
from recsys.student.dataset import StudentData, step_batch
from recsys.student.encode import encode_items, encode_users
from recsys.student.objective import StudentObjective, to_numpy_losses
from recsys.student.sharding import dense_parameters, init_process_group, shard_model
from recsys.student.towers import TwoTower

log = logging.getLogger(__name__)


class TrainingDiverged(StageError):
    """A loss became NaN or infinite: training stops, nothing is exported, the last good checkpoint stays."""


@dataclasses.dataclass
class Trained:
    dmp: Any  # DistributedModelParallel; ``dmp.module.towers`` is the loss-free two-tower
    plan: dict[str, Any]
    history: list[dict[str, Any]]
    best_epoch: int
    best_valid: dict[str, float]
    train_seconds: float
    rank: int
    world: int
    best_ranking: metrics.EvalResult | None = None  # rank 0: the best epoch's validation ranking when this call
    # validated it (not when it came from a resumed checkpoint)
    has_best_ranking: bool = False  # the same on every rank: rank 0 holds ``best_ranking``

    @property
    def towers(self) -> TwoTower:
        return self.dmp.module.towers


def validate(*, towers: TwoTower, data: StudentData, cfg: StudentConfig) -> dict[str, float]:
    return validate_ranking(towers=towers, data=data, cfg=cfg)[0]


def validate_ranking(*, towers: TwoTower, data: StudentData,
                     cfg: StudentConfig) -> tuple[dict[str, float], metrics.EvalResult | None]:
    """``validate``'s figures and, on rank 0, the ranking they come from (None on the other ranks)."""
    """Full-ranking NDCG/Recall on the valid split (history = train). All ranks encode and rank a share of the
    users; rank 0 merges and broadcasts the figures."""
    towers.eval()
    items = encode_items(towers=towers, feats=data.feats, cfg=cfg)
    users = encode_users(towers=towers, feats=data.feats, hist=data.train, cfg=cfg)
    towers.train()
    out = {"ndcg@10": 0.0, "recall@10": 0.0}
    targets = data.tables.valid
    if cfg.eval_users:
        targets = metrics.of_users(targets, metrics.sample_users(targets, n=cfg.eval_users, seed=cfg.seed))
    # every rank ranks its share of the users; rank 0 merges them (``recsys.student.scoring``)
    # no coverage: it is not what the epochs are chosen by, and the export reuses this ranking for valid figures only
    res = scoring.evaluate(users=users, items=items, targets=targets, history=data.tables.train,
                           n_items=data.feats.n_items, coverage_ks=())
    if res is not None:
        out = {k: v for k, v in res.summary(ks=(10, 20)).items() if "@" in k}
    box = [out]
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.broadcast_object_list(box, src=0)
    return box[0], res


def _state(dmp: Any) -> dict[str, Any]:
    return {k: v for k, v in dmp.state_dict().items()}


def _warm_optimizers(path: Path, *, dmp: Any, dense_opt: torch.optim.Optimizer) -> str:
    """Continue the previous run's optimizers (its last checkpoint): rowwise Adagrad's accumulators keep the
    steps on well-trained rows small while new rows (fresh, zero state) move fast, and Adam keeps its moments.
    Restarting them instead makes the first steps full-size everywhere, which undoes a warm start on a small
    window. A state that does not fit (other config) is left fresh."""
    if not path.exists():
        return "fresh (no last checkpoint)"
    blob = checkpoint.load(path)
    fused = checkpoint.copy_grown(dmp.fused_optimizer.state_dict(), blob["fused_opt"])
    params = [p for g in dense_opt.param_groups for p in g["params"]]
    state = blob["dense_opt"].get("state", {})
    fits = len(state) == len(params) and all(
        t.shape == params[int(i)].shape for i, st in state.items() for k, t in st.items()
        if isinstance(t, torch.Tensor) and t.dim() > 0)
    if fits:
        hyper = [{k: v for k, v in g.items() if k != "params"} for g in dense_opt.param_groups]
        dense_opt.load_state_dict(blob["dense_opt"])
        for g, h in zip(dense_opt.param_groups, hyper):  # this run's lr and decay, the old run's moments
            g.update(h)
    return f"fused {fused}, dense {'continued' if fits else 'fresh (shapes differ)'}"


def _agree(epoch: int, *, refused: bool, device: torch.device) -> tuple[bool, bool]:
    """One all-reduce over the ranks: (every rank's last checkpoint is from ``epoch``, some rank refused its own)."""
    t = torch.tensor([epoch, -epoch, int(refused)], dtype=torch.int64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t[0]) == epoch and -int(t[1]) == epoch, bool(t[2])


def train(*, cfg: StudentConfig, data: StudentData, out_dir: Path, run_key: str) -> Trained:
    """Train (or resume) the student; afterwards the model holds the best-validation weights.

    Args:
        out_dir: ``<run>/student/<variant>``; checkpoints go to ``out_dir/ckpt/{last,best}.rank{r}.pt``.
        run_key: hash of config + inputs; a checkpoint with another key is ignored (training restarts).
    """
    rank, world, device = init_process_group(device=cfg.device)
    if cfg.batch_size % world:
        raise ValueError(f"student.batch_size={cfg.batch_size} must be divisible by nproc={world}")
    torch.manual_seed(cfg.seed)
    text_dim = 0 if data.feats.text is None else data.feats.text.shape[1]
    towers = TwoTower(cfg=cfg, feats=data.feats, n_users=data.n_users, text_dim=text_dim,
                      device=torch.device("meta"))
    objective = StudentObjective(cfg=cfg, towers=towers,
                                 teacher_dim=0 if data.teacher is None else data.teacher.shape[1],
                                 teacher_scale=data.teacher_scale, n_items=data.feats.n_items)
    dmp, plan = shard_model(model=objective, cfg=cfg, device=device, batch_size=cfg.batch_size // world)
    dense_opt = torch.optim.AdamW(list(dense_parameters(dmp).values()), lr=cfg.lr, weight_decay=cfg.weight_decay)
    last, best_path = checkpoint_path(out_dir, kind="last", rank=rank), checkpoint_path(out_dir, kind="best", rank=rank)
    meta: dict[str, Any] = {"key": run_key, "world": world, "epoch": -1, "best": -1.0, "best_epoch": -1,
                            "bad": 0, "history": [], "best_valid": {}, "seconds": 0.0}
    blob, refused = None, None
    try:
        blob = checkpoint.load(last) if last.exists() else None
    except StageError as e:  # a damaged checkpoint: every rank must stop, not only this one
        refused = e
    if blob is not None and not (blob["meta"].get("key") == run_key and blob["meta"].get("world") == world):
        log.info("student: ignoring checkpoint %s (other config or world size)", last)
        blob = None
    same, any_refused = True, refused is not None
    if world > 1:
        same, any_refused = _agree(-1 if blob is None else int(blob["meta"]["epoch"]), refused=refused is not None,
                                   device=device)
    if refused is not None:
        raise refused
    if any_refused:
        raise StageError(f"student: another rank refused its checkpoint under {out_dir} (its message is above); "
                         "nothing was trained")
    if not same:
        # a run killed between the ranks' saves: their shards are from different epochs and cannot be combined
        if rank == 0:
            log.warning("student: the ranks' last checkpoints are from different epochs (the run was killed while "
                        "saving them); training from scratch")
        blob = None
    if blob is not None:
        checkpoint.copy_into(dmp.state_dict(), blob["model"], what="model")
        checkpoint.copy_into(dmp.fused_optimizer.state_dict(), blob["fused_opt"], what="fused optimizer")
        dense_opt.load_state_dict(blob["dense_opt"])
        meta = blob["meta"]
        log.info("student: resumed from %s after epoch %d", last, meta["epoch"])
    if meta["epoch"] == -1 and cfg.init_from:
        src = checkpoint_path(Path(cfg.init_from), kind="best", rank=rank)
        if src.exists():
            counts = checkpoint.copy_grown(dmp.state_dict(), checkpoint.load(src)["model"])
            log.info("student: warm start from %s: %s; optimizers %s", src, counts,
                     _warm_optimizers(checkpoint_path(Path(cfg.init_from), kind="last", rank=rank), dmp=dmp, dense_opt=dense_opt))
        else:
            log.warning("student: init_from=%s has no %s (other world size?); training from scratch", cfg.init_from,
                        src.name)
    n_replay = replay_size(len(data.ex_older), fraction=cfg.replay_fraction)
    n_ex, b = len(data.ex_window) + n_replay, cfg.batch_size
    steps = max(1, n_ex // b)
    if rank == 0 and cfg.train_since is not None:
        log.info("student: %d examples per epoch = window (targets at/after %d) %d + replay %d of %d older",
                 n_ex, cfg.train_since, len(data.ex_window), n_replay, len(data.ex_older))
    stopped = meta["bad"] >= cfg.patience or (cfg.max_seconds > 0 and meta["seconds"] >= cfg.max_seconds)
    best_ranking, has_best = None, False
    for epoch in range(meta["epoch"] + 1, cfg.epochs):
        if stopped:
            break
        rng = np.random.default_rng([cfg.seed, epoch])
        # the replay sample has its own stream, so without one the epoch's draws are exactly as before
        pool = epoch_examples(window=data.ex_window, older=data.ex_older, replay_fraction=cfg.replay_fraction,
                              rng=np.random.default_rng([cfg.seed, epoch, 1]))
        perm = rng.permutation(pool)
        if n_ex < b:
            perm = np.resize(perm, b)
        t0, sums, curve = time.perf_counter(), {}, []
        for s in range(steps):
            step = step_batch(data=data, cfg=cfg, idx=perm[s * b:(s + 1) * b], rng=rng, rank=rank, world=world)
            losses = dmp(step)
            losses["total"].backward()
            dense_opt.step()
            dense_opt.zero_grad(set_to_none=True)
            vals = to_numpy_losses(losses)
            bad = {k: v for k, v in vals.items() if not np.isfinite(v)}
            if bad:
                raise TrainingDiverged(
                    f"{out_dir}: student training diverged at epoch {epoch}, step {s}: loss {bad} is not finite; "
                    f"nothing was exported and {last.name} still holds the last good epoch. Lower student.lr / "
                    "student.table_lr, or check the teacher files and the input vectors, then re-run.")
            for k, v in vals.items():
                sums[k] = sums.get(k, 0.0) + v
            if s % max(1, steps // 10) == 0:
                curve.append({"step": s, **vals})
        train_s = time.perf_counter() - t0
        valid, ranking = validate_ranking(towers=dmp.module.towers, data=data, cfg=cfg)
        rec = {"epoch": epoch, **{f"loss_{k}": v / steps for k, v in sums.items()}, "train_seconds": train_s,
               "examples_per_s": steps * b / train_s, "seconds": time.perf_counter() - t0,
               **{f"valid_{k}": v for k, v in valid.items()}, "curve": curve}
        meta["history"].append(rec)
        meta["seconds"] += rec["seconds"]
        if rank == 0:
            log.info("student epoch %d: loss %.4f (%s) | %.0f ex/s | valid ndcg@10 %.4f recall@10 %.4f",
                     epoch, rec["loss_total"], ", ".join(f"{k} {v / steps:.4f}" for k, v in sums.items()),
                     rec["examples_per_s"], valid["ndcg@10"], valid["recall@10"])
        if valid["ndcg@10"] > meta["best"]:
            meta.update(best=valid["ndcg@10"], best_epoch=epoch, bad=0, best_valid=valid)
            best_ranking, has_best = ranking, True
            checkpoint.save(best_path, model=_state(dmp), fused_opt={}, dense_opt={}, meta={"epoch": epoch})
        else:
            meta["bad"] += 1
        meta["epoch"] = epoch
        checkpoint.save(last, model=_state(dmp), fused_opt=dmp.fused_optimizer.state_dict(),
                        dense_opt=dense_opt.state_dict(), meta=meta)
        if dist.is_initialized():
            dist.barrier()
        stopped = meta["bad"] >= cfg.patience or (cfg.max_seconds > 0 and meta["seconds"] >= cfg.max_seconds)
    if best_path.exists():
        checkpoint.copy_into(dmp.state_dict(), checkpoint.load(best_path)["model"], what="best model")
    return Trained(dmp=dmp, plan=plan, history=meta["history"], best_epoch=meta["best_epoch"],
                   best_valid=meta["best_valid"], train_seconds=meta["seconds"], rank=rank, world=world,
                   best_ranking=best_ranking, has_best_ranking=has_best)
