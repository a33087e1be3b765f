"""Space-independent metrics of a cell given as a DAG of labelled edges.

A cell is ``num_nodes`` nodes, node 0 the input and node ``num_nodes - 1`` the output, with edges
``(src, dst, op)`` and ``src < dst``. Depth follows the TSE paper (Section 3.3, after Shu et al. 2020): the
length, in edges, of the longest input->output path; edges labelled ``none`` do not exist.
"""
from __future__ import annotations

import bisect
from typing import Iterable, Sequence

Edge = tuple[int, int, str]
ABSENT_OPS = frozenset({"none"})
SKIP_OPS = frozenset({"skip_connect"})


def cell_depth(num_nodes: int, edges: Iterable[Edge]) -> int:
    """Edges on the longest input->output path ignoring ``none``; 0 if the output is cut off from the input."""
    longest_to: dict[int, int] = {0: 0}
    for src, dst, op in sorted(edges, key=lambda edge: (edge[1], edge[0])):
        if op in ABSENT_OPS or src not in longest_to:
            continue
        longest_to[dst] = max(longest_to.get(dst, 0), longest_to[src] + 1)
    return longest_to.get(num_nodes - 1, 0)


def skip_count(edges: Iterable[Edge]) -> int:
    """Number of skip connections, the quantity that grows when DARTS collapses."""
    return sum(op in SKIP_OPS for _, _, op in edges)


def rank_percentile(ordered: Sequence[float], value: float) -> float:
    """Of the values in ``ordered`` (ascending) not tied with ``value``, the percentage below it: 100 = best,
    0 = worst. Ties are left out because tabular benchmarks hold isomorphic duplicates with identical values."""
    worse, better = bisect.bisect_left(ordered, value), len(ordered) - bisect.bisect_right(ordered, value)
    return 100.0 * worse / max(worse + better, 1)
