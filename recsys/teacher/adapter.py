"""Domain adapter: a light residual map A on frozen teacher item embeddings, tuned to what shoppers buy next.

Each training event t of a user is one example: the query is A(recency-weighted mean of the *raw*
embeddings of the items before t) and the positive is A(raw embedding of the item at t); the other
positives of the batch are the negatives: in-batch sampled softmax (Yi et al., "Sampling-bias-corrected
neural modeling for large corpus item recommendations", RecSys 2019), with the log-frequency (logQ)
correction because in-batch negatives are drawn by popularity. For the linear adapter A is affine, so
A(mean of raw) is exactly the recency-pooled history of adapted item embeddings; pooling raw vectors once
up front turns every step into two small dense matmuls. Early stopping on valid NDCG@10 (recsys.metrics).
"""

from __future__ import annotations

import dataclasses
import logging
import time

import numpy as np
import polars as pl
import torch
from torch import nn

from recsys.teacher.config import TeacherConfig
from recsys.teacher.users import normalize_rows, pooled_mean, weighted_mean

log = logging.getLogger(__name__)


class Adapter(nn.Module):
    """(n, D) -> (n, D2), not normalised. Identity at init when D2 == D (residual branch starts at zero)."""

    def __init__(self, *, d_in: int, d_out: int, kind: str = "linear", hidden: int = 512) -> None:
        super().__init__()
        self.residual = d_in == d_out
        if kind == "linear":
            self.net: nn.Module = nn.Linear(d_in, d_out)
            last = self.net
        else:
            self.net = nn.Sequential(nn.Linear(d_in, hidden), nn.GELU(), nn.Linear(hidden, d_out))
            last = self.net[-1]
        if self.residual:
            nn.init.zeros_(last.weight)
        else:
            nn.init.orthogonal_(last.weight)
        nn.init.zeros_(last.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x) + (x if self.residual else 0)


def in_batch_softmax_loss(query: torch.Tensor, pos: torch.Tensor, target_ids: torch.Tensor, *, temperature: float,
                          log_q: torch.Tensor | None = None) -> torch.Tensor:
    """(B, D) queries, (B, D) positives, (B,) item ids -> scalar mean cross-entropy.

    Column j is a negative for row i unless it holds the same item (such columns are masked out).
    ``log_q`` (B,): log sampling probability of each column's item, subtracted from its logits.
    """
    logits = query @ pos.T / temperature
    if log_q is not None:
        logits = logits - log_q[None, :]
    same = target_ids[:, None] == target_ids[None, :]
    same.fill_diagonal_(False)
    logits = logits.masked_fill(same, float("-inf"))
    return nn.functional.cross_entropy(logits, torch.arange(len(query), device=query.device))


def training_examples(train: pl.DataFrame, *, last_n: int, decay: float) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                                                    np.ndarray]:
    """Train events -> pooling triplets (rows, cols, weights) over examples and (E,) targets.

    Example e is a train event with at least one earlier event of its user; its context is the
    ``last_n`` items before it, weight decay**k for the k-th most recent. Only events strictly before t
    enter t's context.
    """
    t = train.select("user", "item", "pos").sort("user", "pos")
    user, item = t["user"].to_numpy(), t["item"].to_numpy().astype(np.int64)
    first = np.r_[True, user[1:] != user[:-1]]
    start = np.maximum.accumulate(np.where(first, np.arange(len(user)), 0))
    r = np.arange(len(user)) - start  # 0-based rank of the event within its user
    ex = np.flatnonzero(r >= 1)
    rows, cols, ws = [], [], []
    for lag in range(1, last_n + 1):
        ok = np.flatnonzero(r[ex] >= lag)
        rows.append(ok)
        cols.append(item[ex[ok] - lag])
        ws.append(np.full(len(ok), decay ** (lag - 1), dtype=np.float32))
    return np.concatenate(rows), np.concatenate(cols), np.concatenate(ws), item[ex]


class Adam:
    """Plain Adam (Kingma & Ba 2015). torch.optim's first use imports torch._dynamo: 5-15 s on a small CPU,
    longer than the whole adapter fit, so the 10 lines are written out here."""

    def __init__(self, params: list[torch.Tensor], *, lr: float, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8) -> None:
        self.params, self.lr, self.betas, self.eps, self.t = params, lr, betas, eps, 0
        self.m = [torch.zeros_like(p) for p in params]
        self.v = [torch.zeros_like(p) for p in params]

    @torch.no_grad()
    def step(self) -> None:
        self.t += 1
        b1, b2 = self.betas
        for p, m, v in zip(self.params, self.m, self.v):
            if p.grad is None:
                continue
            m.mul_(b1).add_(p.grad, alpha=1 - b1)
            v.mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
            denom = (v / (1 - b2**self.t)).sqrt_().add_(self.eps)
            p.addcdiv_(m, denom, value=-self.lr / (1 - b1**self.t))
            p.grad = None


@dataclasses.dataclass(frozen=True)
class AdapterResult:
    state: dict[str, np.ndarray]  # the fitted adapter's weights (best epoch)
    kind: str
    epochs: list[dict[str, float]]  # per epoch: loss, valid ndcg@10 (sampled users), seconds
    best_epoch: int  # 0 = the identity (no epoch helped)
    seconds: float

    def apply(self, x: np.ndarray) -> np.ndarray:
        """(n, D) raw item embeddings or raw pooled means -> (n, D2) float32 unit rows; zero rows stay zero."""
        return adapt(self.state, x, kind=self.kind)


def adapt(state: dict[str, np.ndarray], x: np.ndarray, *, kind: str) -> np.ndarray:
    """Apply adapter weights ``state`` to (n, D) vectors -> (n, D2) unit rows (zero input rows -> zero)."""
    d_in = x.shape[1]
    w_last = state["net.weight"] if kind == "linear" else state["net.2.weight"]
    model = Adapter(d_in=d_in, d_out=w_last.shape[0], kind=kind,
                    hidden=state["net.0.weight"].shape[0] if kind == "mlp" else 1)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
    with torch.inference_mode():
        y = model(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))).numpy()
    y[~np.any(x != 0, axis=1)] = 0.0
    return normalize_rows(y)


def train_adapter(*, item_emb: np.ndarray, train: pl.DataFrame, valid: pl.DataFrame, valid_history: pl.DataFrame,
                  n_users: int, cfg: TeacherConfig) -> AdapterResult:
    """Fit the adapter on ``train`` events; keep the epoch with the best sampled valid NDCG@10.

    Args:
        item_emb: (N, D) frozen teacher embeddings (unit rows).
        valid / valid_history: targets and history of the valid split (``Tables``) for early stopping.
    """
    from recsys.metrics import dot_scorer, evaluate_scores

    t0 = time.perf_counter()
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    n, d = item_emb.shape
    rows, cols, ws, tgt = training_examples(train, last_n=cfg.history_n, decay=cfg.recency_decay)
    ctx = torch.from_numpy(weighted_mean(rows, cols, ws, emb=item_emb, n_rows=len(tgt)))  # (E, D), once
    base = torch.from_numpy(np.ascontiguousarray(item_emb, dtype=np.float32))
    counts = np.bincount(train["item"].to_numpy(), minlength=n).astype(np.float64) + 1.0
    log_q_all = torch.from_numpy(np.log(counts / counts.sum()).astype(np.float32))
    eval_users = np.unique(valid["user"].to_numpy())
    if len(eval_users) > cfg.adapter_eval_users:
        eval_users = rng.choice(eval_users, cfg.adapter_eval_users, replace=False)
    eval_targets = valid.filter(pl.col("user").is_in(eval_users))
    valid_mean = pooled_mean(item_emb=item_emb, history=valid_history, n_users=n_users, last_n=cfg.history_n,
                             decay=cfg.recency_decay)
    model = Adapter(d_in=d, d_out=cfg.adapter_dim or d, kind=cfg.adapter, hidden=cfg.adapter_hidden)

    def state() -> dict[str, np.ndarray]:
        return {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}

    def score(st: dict[str, np.ndarray]) -> float:
        items, users = adapt(st, item_emb, kind=cfg.adapter), adapt(st, valid_mean, kind=cfg.adapter)
        res = evaluate_scores(score_fn=dot_scorer(users, items), targets=eval_targets, history=valid_history, n_items=n)
        return res.summary(ks=(10,))["ndcg@10"]

    opt = Adam(list(model.parameters()), lr=cfg.adapter_lr)
    best_state = state()
    best = (score(best_state) if (cfg.adapter_dim or d) == d else -1.0, 0)
    epochs: list[dict[str, float]] = [{"epoch": 0, "loss": float("nan"), "ndcg@10": best[0], "seconds": 0.0}]
    log.info("teacher adapter: %d examples; epoch 0 (identity) valid ndcg@10 %.4f", len(tgt), best[0])
    bad = 0
    for ep in range(1, cfg.adapter_epochs + 1):
        te = time.perf_counter()
        model.train()
        losses = []
        for b in np.array_split(rng.permutation(len(tgt)), max(1, len(tgt) // cfg.adapter_batch)):
            bt = torch.from_numpy(b)
            tb = torch.from_numpy(tgt[b])
            query = nn.functional.normalize(model(ctx[bt]), dim=-1)
            pos = nn.functional.normalize(model(base[tb]), dim=-1)
            loss = in_batch_softmax_loss(query, pos, tb, temperature=cfg.adapter_temperature,
                                         log_q=log_q_all[tb] if cfg.adapter_logq else None)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        model.eval()
        st = state()
        ndcg = score(st)
        epochs.append({"epoch": ep, "loss": float(np.mean(losses)), "ndcg@10": ndcg,
                       "seconds": time.perf_counter() - te})
        log.info("teacher adapter: epoch %d loss %.4f valid ndcg@10 %.4f (%.1fs)", ep, epochs[-1]["loss"], ndcg,
                 epochs[-1]["seconds"])
        if ndcg > best[0]:
            best, best_state, bad = (ndcg, ep), st, 0
        else:
            bad += 1
            if bad >= cfg.adapter_patience:
                break
    return AdapterResult(state=best_state, kind=cfg.adapter, epochs=epochs, best_epoch=best[1],
                         seconds=time.perf_counter() - t0)
