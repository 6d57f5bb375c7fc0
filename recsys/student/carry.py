"""Per-item teacher carry: the fewer training events an item has, the less of its score comes from its residual.

With teacher carry ``a`` both towers output ``[sqrt(a) t, sqrt(1 - a) r]``, so a score is
``a cos_t + (1 - a) cos_s``. For an item with ``n`` training events the item tower scales its two parts so that

    score = alpha cos_t + beta cos_s,   w = n / (n + k),   beta = (1 - a) w,   alpha = a + shift (1 - a) (1 - w)

i.e. the residual keeps the share ``w`` of its weight that the item's own events earned, and ``shift`` of the rest
moves to the teacher (1: the two weights still sum to 1; 0: the residual is only shrunk). An item with no events
(``w = 0``) is scored by its teacher vector alone, ``(a + shift (1 - a)) cos_t``: nothing of a residual that its id
never trained (and that in-batch softmax + logQ made popularity-biased) reaches it. ``k = 0`` turns it off (every
item ``alpha = a``, ``beta = 1 - a``). The user side is unchanged, so only the item vectors move and a user's
vector (and the numpy user tower that serves it) is the same as without it.
"""

from __future__ import annotations

import numpy as np


def item_weights(*, counts: np.ndarray, carry: float, k: float, shift: float) -> tuple[np.ndarray, np.ndarray]:
    """Training counts (N,) -> (alpha (N,), beta (N,)) f32: the weights of cos_teacher and cos_student."""
    n = np.asarray(counts, dtype=np.float64)
    w = np.ones_like(n) if k <= 0 else n / (n + k)
    beta = (1.0 - carry) * w
    alpha = carry + shift * (1.0 - carry) * (1.0 - w)
    return alpha.astype(np.float32), beta.astype(np.float32)


def item_scales(*, counts: np.ndarray, carry: float, k: float, shift: float) -> np.ndarray:
    """(N, 2) f32 multipliers of an item vector's ``[sqrt(a) t, sqrt(1 - a) r]`` parts, ``(alpha / a, beta / (1 - a))``
    (so the user side stays ``[sqrt(a) t_u, sqrt(1 - a) r_u]``); all ones when ``k = 0``."""
    if not 0.0 < carry < 1.0:
        raise ValueError(f"per-item carry needs teacher_carry in (0, 1), got {carry}")
    alpha, beta = item_weights(counts=counts, carry=carry, k=k, shift=shift)
    return np.stack([alpha / carry, beta / (1.0 - carry)], axis=1).astype(np.float32)
