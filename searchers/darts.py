"""DARTS (first order; Liu et al., ICLR 2019, Alg. 1 with xi = 0): the ``Searcher`` hooks' defaults as they
are, and the one searcher whose step ``harness.graphed`` may capture as it stands."""
from __future__ import annotations

from searchers.searcher import Searcher


class Darts(Searcher):
    name = "darts"
    summary = "DARTS, first-order approximation (Liu et al., ICLR 2019)"
    graph_capturable = True
