"""``beta_darts``: DARTS with the Beta-Decay regulariser on the architecture loss (Ye et al., CVPR 2022).

beta-DARTS (Ye, Li, Li, Chen, Fan & Ouyang, "beta-DARTS: Beta-Decay Regularization for Differentiable
Architecture Search", CVPR 2022, Section 3): the architecture step minimises ``L_val + lambda * L_Beta``, where
``L_Beta`` is the smoothmax of each edge's architecture parameters, ``log sum_k exp(alpha_k)``, averaged over
the edges; it constrains the value and variance of the softmax-activated parameters beta = softmax(alpha).
The weight step is DARTS's. As in the reference (``Sunshine-Ye/Beta-DARTS``, ``optimizers/darts/architect.py``:
``mlc_loss`` = ``torch.mean(torch.logsumexp(arch_param, dim=-1))``, added in ``_backward_step``), the term is
a function of alpha alone, and Adam's weight decay of alpha (1e-3) stays as it is.

Weight schedule (the reference's ``_backward_step``: ``weights = 0 + 50*epoch/100``, 0-based epochs, in the
NB201 search of ``nasbench201/train_search.py`` whose default is 100 epochs): lambda rises linearly per epoch
from 0, ``lambda = lambda_start + (lambda_end - lambda_start) * (epoch - 1) / epochs``, 0 in the first epoch and
49.5 in the last of 100. Interpretation, documented: the reference divides by a hard-coded 100, its number of
epochs; here by the run's epochs, so that a shorter run keeps the same range (identical at 100 epochs).
Options ``lambda_start`` (0) and ``lambda_end`` (50); equal values give a constant weight.

NB201 settings of the reference search (``nasbench201/train_search.py``, the README's command with its
defaults), where they differ from DARTS's here: 100 epochs, weight decay 3e-4, momentum without Nesterov; batch
64, SGD 0.025 -> 0.001 cosine, clip 5, Adam 3e-4 / (0.5, 0.999) / 1e-3 are DARTS's already. Interpretations,
documented: first order (the script's default, no ``--unrolled``); the learning rate annealed per step as for
DARTS (the reference steps its cosine per epoch); the data split is NB201's; with several architecture tensors
(a space other than NB201's single one) the per-tensor means are summed (the NB201 reference has one tensor; its
ports to the DARTS space add one term per cell type, e.g. ``AI-Tech-Research-Lab/AsquaredM``: ``weights*ssr_reduce
+ weights*ssr_normal``).
"""
from __future__ import annotations

import torch
from pydantic import Field

from benchmarks.data_stream import Batch
from foundation.options import OptionSet
from searchers.darts import Darts

BETA_DARTS_PAPER = {"epochs": 100, "w_weight_decay": 3e-4, "w_nesterov": False}  # nasbench201/train_search.py


def beta_decay(alphas: list[torch.Tensor]) -> torch.Tensor:
    """Per-seed Beta-Decay term, (K,): the mean over each tensor's rows of ``logsumexp(alpha)``, summed over
    the tensors."""
    return sum(torch.logsumexp(alpha, dim=-1).flatten(1).mean(dim=1) for alpha in alphas)


class BetaDarts(Darts):
    name = "beta_darts"
    summary = "beta-DARTS: Beta-Decay (logsumexp of alpha) on the arch loss, lambda 0 -> 50 (Ye et al., CVPR 2022)"
    graph_capturable = True
    paper_overrides = BETA_DARTS_PAPER

    class Options(OptionSet):
        lambda_start: float = Field(0.0, ge=0, le=1e6, description="lambda of the first epoch (0 + 50*epoch/100)")
        lambda_end: float = Field(50.0, ge=0, le=1e6, description="lambda approached in the last epoch (50)")

    def beta_weight(self) -> float:
        """This epoch's lambda."""
        return self.per_epoch_linear(self.options.lambda_start, self.options.lambda_end)

    def arch_loss(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        loss, logits = super().arch_loss(batch)
        return loss + self.beta_weight() * beta_decay(self.alphas), logits
