"""Moved to ``recsys.lifeline`` (the teacher's workers use it too); kept so existing imports keep working."""

from __future__ import annotations

from recsys.lifeline import LAUNCHER_ENV, PR_SET_PDEATHSIG, alive, die_with_parent, guard_worker, watch

__all__ = ["LAUNCHER_ENV", "PR_SET_PDEATHSIG", "alive", "die_with_parent", "guard_worker", "watch"]
