"""The gate stage: candidate vs published on the candidate's test window, recorded as stage ``gate``.

``run(cfg, work, published=..., variant=..., refreshed=...)`` writes the gate decision (through
``recsys.contracts.report``) and the manifest record ``gate``; a decision whose inputs (the candidate's and
published student outputs, the refreshed baseline's, the gate config) are unchanged is read back instead of
recomputed. The decision itself is ``recsys.publish.gate.compare``; the retrain pipeline only orchestrates.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any

from recsys.artifacts import RunDir, hash_obj
from recsys.contracts import report as RP
from recsys.contracts import student as S
from recsys.publish.config import GateConfig

log = logging.getLogger(__name__)
STAGE = "gate"


def input_key(cfg: GateConfig, work: RunDir, *, published: RunDir | None, variant: str,
              refreshed: str | None) -> str:
    """What the decision depends on: both students' outputs (and the refreshed baseline's) and the config."""
    stage = S.stage_of(variant)
    return hash_obj({"cand": work.output_hash(stage), "gate": cfg, "variant": variant,
                     "pub": None if published is None else [published.root.name, published.output_hash(stage)],
                     "refreshed": None if refreshed is None else work.output_hash(S.stage_of(refreshed))})


def run(cfg: GateConfig, work: RunDir, *, published: RunDir | None, variant: str, refreshed: str | None = None,
        force: bool = False) -> dict[str, Any]:
    """Decide whether ``work``'s ``variant`` may replace ``published``'s (None: first version, passes).

    Returns the decision as a dict (``passed``, ``reason``, figures, ``published_version``).
    """
    from recsys.data.tables import load_tables
    from recsys.publish.gate import compare

    key = input_key(cfg, work, published=published, variant=variant, refreshed=refreshed)
    if not force and work.is_fresh(STAGE, key):
        log.info("gate: up to date, skipped")
        return RP.read_gate(layout=work.layout)
    t0 = time.perf_counter()
    d = compare(cfg, candidate=work.root, published=None if published is None else published.root,
                tables=load_tables(work.layout), variant=variant, refreshed=refreshed)
    out = {**dataclasses.asdict(d), "published_version": None if published is None else published.root.name}
    for w in (d.drift or {}).get("warnings", []):
        log.warning("drift vs published %s: %s", out["published_version"], w)
    path = RP.write_gate(layout=work.layout, decision=out)
    work.record(STAGE, key=key, config=cfg, outputs=[path], seconds=time.perf_counter() - t0,
                passed=d.passed, reason=d.reason)
    return out
