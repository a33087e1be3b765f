"""``drnas`` and ``tse_drnas``: Dirichlet architecture distributions, with the validation or the TSE gradient.

DrNAS (Chen et al., ICLR 2021, Section 2): each edge's op-mixing weights are a sample from Dirichlet(beta) with
concentration beta = elu(alpha) + 1, drawn with the reparameterised (pathwise) sampler at every forward pass, so
the architecture gradient flows into alpha. The genotype is the argmax of the concentration (the Dirichlet mean;
elu + 1 is monotone, so it is also the argmax of alpha).

NB201 settings of the DrNAS reference (``201-space/train_search.py``), where they differ from DARTS's: 100 epochs,
weight decay 3e-4, momentum without Nesterov. Its "l2" regulariser (reg_type l2, reg_scale 1e-3) is implemented
there as the Adam weight decay of alpha, which is DARTS's 1e-3 already: kept as ``a_weight_decay`` and not added a
second time. Partial channels (k) are 1 on NB201, i.e. none. Interpretations, documented: the learning rate is
annealed per step as for DARTS (the reference steps its cosine per epoch); the data split is NB201's.

TSE-DrNAS (Fil et al., Section 3, "TSE versions of DrNAS"): the DrNAS sampling with the TSE architecture gradient
of ``tse_darts``, and DrNAS's defaults ("we reuse the default parameters of the public implementations").
"""
from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable
from torch.distributions import Dirichlet
from torch.distributions.dirichlet import _Dirichlet_backward
from torch.nn import functional as F

from searchers.darts import Darts
from searchers.tse_darts import TseDarts

DRNAS_PAPER = {"epochs": 100, "w_weight_decay": 3e-4, "w_nesterov": False}


def concentration(alpha: torch.Tensor) -> torch.Tensor:
    return F.elu(alpha) + 1


class DirichletSample(torch.autograd.Function):
    """``Dirichlet(concentration).rsample()`` (pathwise gradient, torch's own) drawn from a given generator: each
    seed of a batch draws from its own stream, the numbers it would draw run alone."""

    @staticmethod
    def forward(ctx, concentration: torch.Tensor, generator: torch.Generator) -> torch.Tensor:  # noqa: ANN001
        sample = torch._sample_dirichlet(concentration, generator=generator)
        ctx.save_for_backward(sample, concentration)
        return sample

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output: torch.Tensor) -> tuple[torch.Tensor, None]:  # noqa: ANN001
        sample, concentration = ctx.saved_tensors
        return _Dirichlet_backward(sample, concentration, grad_output), None


class Drnas(Darts):
    name = "drnas"
    summary = "DrNAS: Dirichlet op-mixing distributions, pathwise gradients (Chen et al., ICLR 2021)"
    paper_overrides = DRNAS_PAPER
    graph_capturable = True  # its draws come from per-seed generators, registered with the graph

    def arch_weights(self) -> list[torch.Tensor]:
        """A fresh sample per forward pass, seed k's from seed k's stream."""
        return [self.per_seed(lambda seed, generator: DirichletSample.apply(concentration(alpha[seed]), generator))
                for alpha in self.alphas]

    def expected_arch_weights(self) -> list[torch.Tensor]:
        """The Dirichlet mean, beta / sum(beta)."""
        return [Dirichlet(concentration(alpha)).mean for alpha in self.alphas]


class TseDrnas(TseDarts, Drnas):
    name = "tse_drnas"
    summary = "TSE-DrNAS: DrNAS with the TSE architecture gradient, no validation set (Fil et al.)"
    graph_capturable = False  # TSE's window: weight steps gathered per batch on the host, an outer step every T
    paper_overrides = DRNAS_PAPER
