"""``darts_minus``: DARTS with an auxiliary skip connection whose weight decays to zero (Chu et al., ICLR 2021).

DARTS- (Section 3.2, Eq. 5; ``MixedOp.forward`` of the reference ``Meituan-AutoML/DARTS-``): every edge outputs
``sum_k softmax(alpha)_k o_k(x) + beta * x``, the auxiliary skip outside the softmax, so that the residual path
no longer has to be won by the skip op's alpha; beta decays linearly per epoch, ``beta = beta_init * (1 - (epoch
- 1) / epochs)`` (``DecayScheduler`` with ``--skip_beta 1 --decay linear``, T_max = T_stop = the epochs, stepped
at each epoch's start with 0-based epochs: 1 in the first epoch, 1/epochs in the last, never 0 inside the
run). The genotype is the argmax of alpha; the Hessian and the supernet's accuracy are taken on the network
DARTS- trains, with the auxiliary skip of the epoch (``diagnosed_network``), the derived cell's accuracy without
it (the cell the search returns). The supernet adds the skip through its ``with_identity`` (NB201: the
coefficient added to ``skip_connect``'s weight; a space without an identity op cannot run DARTS-).

Settings, an interpretation: DARTS's NB201 protocol (50 epochs, DARTS.config: SGD with Nesterov momentum, weight
decay 5e-4); the reference repository has code for the DARTS spaces only, whose search differs from it in two
optimiser settings: weight decay 3e-4 and plain momentum (no Nesterov). Both are one ``--set`` away
(``w_weight_decay=3e-4``, ``w_nesterov=false``).
"""
from __future__ import annotations

from typing import Any

import torch
from pydantic import Field

from foundation.options import OptionSet
from searchers.darts import Darts


class DartsMinus(Darts):
    name = "darts_minus"
    summary = "DARTS-: auxiliary skip connection, beta decayed 1 -> 0 linearly (Chu et al., ICLR 2021)"
    supernet_needs = ("with_identity",)
    diagnosed_network = "trained"

    class Options(OptionSet):
        beta_init: float = Field(1.0, ge=0, description="auxiliary skip weight of the first epoch (--skip_beta)")

    graph_capturable = True  # beta changes per epoch, and each epoch is captured anew

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.with_identity = self.supernet.feature("with_identity", self.name)
        self.beta = self.options.beta_init

    def begin_epoch(self, epoch: int) -> None:
        super().begin_epoch(epoch)
        self.beta = self.options.beta_init * (1 - (epoch - 1) / self.optim.epochs)

    def arch_weights(self) -> list[torch.Tensor]:
        return self.with_identity(super().arch_weights(), self.beta)
