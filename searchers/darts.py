"""DARTS (first order; Liu et al., ICLR 2019, Alg. 1 with xi = 0): the ``Searcher`` hooks' defaults as they
are, and the one searcher whose step ``harness.graphed`` may capture as it stands.

The paper preset takes the weight step first (``paper_step_order``): the published NB201 row (NB201 Table 5's
DARTS-V1, 54.30 on CIFAR-10, reprinted by SD-DARTS Table 4) came from xautodl's ``DARTS-V1.py``, whose
``search_func`` runs "update the weights" before "update the architecture-weight". DARTS's own code and
Algorithm 1 update the architecture first, the other presets' order."""
from __future__ import annotations

from searchers.searcher import Searcher


class Darts(Searcher):
    name = "darts"
    summary = "DARTS, first-order approximation (Liu et al., ICLR 2019)"
    graph_capturable = True
    paper_step_order = "weights_first"
