"""The serving gate: the re-ranker is served only when it beats the best single retriever on valid.

Pure: figures in, a decision out. The figures are NDCG@K on validation users the ranker never trained on.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Decision:
    served: str  # the metrics.json row that is served
    best_single: str  # the best single retriever on valid
    valid: dict[str, float]  # row -> the gate metric on the gate users
    margin: float
    reason: str

    def as_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)


def decide(valid: dict[str, float], *, ranker: str, margin: float) -> Decision:
    """Serve ``ranker`` if ``valid[ranker] >= (1 + margin) * best single``, else the best single retriever.

    Args:
        valid: row name -> metric on the gate users, for the ranker and every single retriever.
        margin: relative improvement the ranker must show (0.01 = 1 %).
    """
    singles = {k: v for k, v in valid.items() if k != ranker}
    if not singles:
        raise ValueError("the gate needs at least one single retriever to compare the ranker with")
    best = max(sorted(singles), key=lambda k: singles[k])  # sorted: a tie goes to the first name
    bar = (1.0 + margin) * singles[best]
    if ranker in valid and valid[ranker] >= bar:
        why = f"{ranker} {valid[ranker]:.4f} >= (1 + {margin:g}) x {best} {singles[best]:.4f}"
        return Decision(served=ranker, best_single=best, valid=dict(valid), margin=margin, reason=why)
    got = f"{valid[ranker]:.4f}" if ranker in valid else "absent"
    why = f"{ranker} {got} < (1 + {margin:g}) x {best} {singles[best]:.4f}: serving {best}"
    return Decision(served=best, best_single=best, valid=dict(valid), margin=margin, reason=why)
