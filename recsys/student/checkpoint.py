"""Per-rank checkpoints of a sharded model: plain tensors only, saved with ``torch.save`` and loaded
with ``torch.load(weights_only=True)``, through ``recsys.contracts.checkpoints`` (atomic, digest in the file:
a damaged checkpoint is refused, naming it, before torch reads a byte).

A ShardedTensor is stored as its local shards (``<key>#0``, ``<key>#1``, ...), so each rank writes
exactly what it holds and a resume needs the same world size and plan (checked by the caller through
``meta``). Loading copies into the live tensors in place, which also reaches the fused (in-backward)
optimizer states, whose state-dict tensors are views of the kernel's buffers.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import torch
from torch.distributed._shard.sharded_tensor import ShardedTensor

from recsys.contracts import checkpoints as contract


def _flatten(obj: Any, prefix: str, out: dict[str, torch.Tensor]) -> None:
    if isinstance(obj, ShardedTensor):
        for i, sh in enumerate(obj.local_shards()):
            out[f"{prefix}#{i}"] = sh.tensor
    elif isinstance(obj, torch.Tensor):
        out[prefix] = obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            _flatten(v, f"{prefix}/{k}" if prefix else str(k), out)


def flat_tensors(state: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Nested state dict (ShardedTensors included) -> {path: local tensor}."""
    out: dict[str, torch.Tensor] = {}
    _flatten(state, "", out)
    return out


def save(path: Path, *, model: dict[str, Any], fused_opt: dict[str, Any], dense_opt: dict[str, Any],
         meta: dict[str, Any]) -> None:
    """Atomically write one rank's checkpoint: model + fused optimizer + dense optimizer + JSON meta."""
    blob = {
        "model": {k: v.detach().clone() for k, v in flat_tensors(model).items()},
        "fused_opt": {k: v.detach().clone() for k, v in flat_tensors(fused_opt).items()},
        "dense_opt": dense_opt,
        "meta": json.dumps(meta),
    }
    buf = io.BytesIO()
    torch.save(blob, buf)
    contract.write(path=path, payload=buf.getvalue())


def load(path: Path) -> dict[str, Any]:
    """One rank's checkpoint; ArtifactError naming ``path`` if it is missing, truncated or altered."""
    payload = contract.read(path=path)
    try:
        blob = torch.load(io.BytesIO(payload), weights_only=True, map_location="cpu")
        blob["meta"] = json.loads(blob["meta"])
    except Exception as e:  # a payload that hashes right but does not parse: written by something else
        raise contract.problem(path, f"checkpoint payload does not parse ({type(e).__name__}: {e})",
                               f"delete {Path(path).parent} to train from scratch") from None
    return blob


def copy_into(live: dict[str, Any], saved: dict[str, torch.Tensor], *, what: str) -> None:
    """Copy ``saved`` tensors into the live (possibly sharded) state in place."""
    flat = flat_tensors(live)
    missing = set(flat) ^ set(saved)
    if missing:
        raise RuntimeError(f"checkpoint {what} does not match this model/plan (differs in {sorted(missing)[:5]}); "
                           "resume needs the same config, world size and plan — delete the checkpoint to restart")
    with torch.no_grad():
        for k, t in flat.items():
            t.copy_(saved[k])


def copy_grown(live: dict[str, Any], saved: dict[str, torch.Tensor]) -> dict[str, int]:
    """Warm start: copy ``saved`` into ``live`` where shapes agree; where only the first dimension grew
    (tables after new users/items were appended), copy the saved rows into the first rows. Anything else
    (new parameters, a different plan) keeps its fresh initialisation. Returns counts per outcome."""
    counts = {"copied": 0, "grown": 0, "kept_fresh": 0}
    with torch.no_grad():
        for k, t in flat_tensors(live).items():
            s = saved.get(k)
            if s is not None and s.shape == t.shape:
                t.copy_(s)
                counts["copied"] += 1
            elif s is not None and s.dim() == t.dim() and s.shape[1:] == t.shape[1:] and s.shape[0] <= t.shape[0]:
                t[: s.shape[0]].copy_(s)
                counts["grown"] += 1
            else:
                counts["kept_fresh"] += 1
    return counts
