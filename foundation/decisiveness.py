"""How decided an architecture is: per decision (an NB201 edge's op, a 1shot1 node's op or parents) the weight of
what was chosen, its margin to the best weight not chosen, and the entropy of the decision's weights; per epoch,
how many decisions changed since the previous epoch.

Why: a derived cell is the argmax of the mixing weights, and a near-tie (every NB201 weight in [0.18, 0.22]
after a short search) makes that argmax a coin toss decided by fp32 rounding. The numbers here say, with every
record, whether the cell a run reports is one the architecture chose. A space declares its decisions
(``SearchSpace.decisions``: a weight vector and how many of its entries the derivation keeps); this module only
measures them, on plain arrays, so readers of old run folders compute the same numbers without torch.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from foundation.records import Decisiveness

# A configuration whose final median margin (median over seeds of each seed's median over decisions) is below
# this is marked "undecided" in the report's tables: a margin of 0.05 between the two largest of NB201's five
# weights needs a gap of about 0.23 in the architecture parameters (softmax), far above fp32 rounding.
UNDECIDED_MARGIN = 0.05

Decision = tuple[np.ndarray, int]  # the weights of one decision and how many of them the derivation keeps


def _chosen(weights: np.ndarray, keep: int) -> tuple[int, ...]:
    """Indices the derivation keeps (largest first; ties broken by position, as ``argmax`` and ``topk`` do)."""
    order = np.argsort(-weights, kind="stable")
    return tuple(sorted(order[:keep].tolist()))


def measure(decisions: Sequence[Decision], previous: Sequence[Decision] | None = None) -> Decisiveness:
    """The decisiveness of one epoch's weights; ``previous`` (the epoch before's decisions, same layout) gives
    ``changed``. Weights are normalised per decision first, so unnormalised mixtures (a sigmoid) measure alike."""
    top, margin, entropy = [], [], []
    for weights, keep in decisions:
        row = np.asarray(weights, dtype=np.float64)
        row = row / row.sum() if row.sum() > 0 else np.full_like(row, 1.0 / len(row))
        ranked = np.sort(row)[::-1]
        top.append(float(ranked[keep - 1]))
        margin.append(float(ranked[keep - 1] - ranked[keep]) if keep < len(row) else 1.0)
        positive = row[row > 0]
        entropy.append(float(-(positive * np.log(positive)).sum() / np.log(len(row))) if len(row) > 1 else 0.0)
    changed = None
    if previous is not None:
        changed = sum(_chosen(np.asarray(a, dtype=np.float64), k) != _chosen(np.asarray(b, dtype=np.float64), k)
                      for (a, k), (b, _) in zip(decisions, previous))
    return Decisiveness(top_weight=top, margin=margin, entropy=entropy,
                        median_margin=float(np.median(margin)) if margin else None,
                        min_margin=min(margin) if margin else None,
                        mean_entropy=float(np.mean(entropy)) if entropy else None, changed=changed)


def of_weights(decisions: Callable[[list[np.ndarray]], list[Decision]], arch_weights: list[Any],
               previous: list[Any] | None = None) -> Decisiveness:
    """The decisiveness of a record's ``arch_weights`` (nested lists, one per architecture tensor), given the
    space's ``decisions`` and the previous epoch's record's weights (None at the first epoch)."""
    def arrays(weights: list[Any]) -> list[np.ndarray]:
        return [np.asarray(tensor, dtype=np.float64) for tensor in weights]

    return measure(decisions(arrays(arch_weights)), decisions(arrays(previous)) if previous else None)
