"""``gdas``: one op per edge sampled by hard Gumbel-softmax at every forward pass (Dong & Yang, CVPR 2019).

GDAS (Section 3.2, Eq. 5-7): the sample is ``h = one_hot(argmax((log_softmax(alpha) + g) / tau))``, g Gumbel noise,
used as is in the forward pass; in the backward pass h's gradient goes to the softmax ``(log_softmax(alpha) + g) /
tau`` (straight-through: ``h = one_hot - probs.detach() + probs``). As in the NB201 reference (``forward_gdas`` of
``xautodl/models/cell_searchs/search_model_gdas.py``), only the sampled op is computed and the other ops of an edge
add their weight itself (zero in value): each of them passes the sum of the edge output's gradient to its weight,
the sampled one the gradient dotted with its output (our supernets compute the same sum through the ``active`` masks
of ``SampledWeights``). One sample per forward pass, shared by all cells. The reference draws again while a Gumbel
value is infinite (an exponential draw that rounds to exactly 0); here such a draw is clamped to the smallest
positive float instead (noise about 87 in fp32, 708 in float64: that op wins the sample), so that the step stays on
the device (``graph_capturable``): every other draw is the same number. The temperature falls linearly per epoch
from ``tau_max`` to ``tau_min``: ``tau_max - (tau_max - tau_min) * (epoch - 1) / (epochs - 1)`` (the reference's
``set_tau`` with 0-based epochs). The genotype is the argmax of alpha. Architecture parameters that mix a node's
inputs rather than choose its op (``op_choice_parameters`` of the supernet; NAS-Bench-1shot1's parent and output
mixtures) get the relaxed sample ``softmax((alpha + g) / tau)``, as the nasbench-1shot1 reference's GDAS does (its
comment: hard samples there "very quickly gave exploding gradients"); its ``MixedOpGDAS`` leaves the unsampled ops
out altogether, which its supernet's ``active`` masks reproduce. Its schedule ends at tau 1 (``--tau_min 1``; set
``tau_min=1`` to follow it).

NB201 settings (``configs/nas-benchmark/algos/GDAS.config`` and the ``GDAS.py`` search script of AutoDL-Projects):
250 epochs, tau 10 -> 0.1; otherwise DARTS's (SGD 0.025 -> 0.001 cosine, Nesterov momentum 0.9, weight decay
5e-4, batch 64, clip 5; Adam 3e-4, betas (0.5, 0.999), weight decay 1e-3). The reference script takes the
weight step before the architecture step: so does the paper preset (``paper_step_order``); the reduced presets
keep the architecture step first (DARTS, Alg. 1), with which they were calibrated.

TSE Tables 1 and 3 reprint NATS-Bench's GDAS runs instead (``weight-sharing.config``: 100 epochs, no gradient
clipping; ``sweeps/tse_table3_nats.yaml`` runs them at 100 epochs).
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from pydantic import Field, model_validator
from torch.nn import functional as F

from foundation.options import OptionSet
from searchers.darts import Darts
from searchers.seeds import SampledWeights


def gumbel_noise(like: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Standard Gumbel noise ``-log(E)``, E ~ Exp(1), an E of exactly 0 clamped to the smallest positive float
    (the reference draws again; module docstring)."""
    exponential = torch.empty_like(like).exponential_(generator=generator)
    return -exponential.clamp_min(torch.finfo(exponential.dtype).tiny).log()


def relaxed_gumbel_softmax(logits: torch.Tensor, tau: float, generator: torch.Generator) -> torch.Tensor:
    """``softmax((logits + g) / tau)`` over each row, g Gumbel noise (the relaxed sample of SNAS and GDAS)."""
    return F.softmax((logits + gumbel_noise(logits, generator)) / tau, dim=-1)


def hard_gumbel_softmax(alpha: torch.Tensor, tau: float,
                        generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Straight-through one-hot sample of each row of ``alpha`` and the one-hot itself (the active ops)."""
    probs = relaxed_gumbel_softmax(F.log_softmax(alpha, dim=-1), tau, generator)
    one_hot = torch.zeros_like(probs).scatter_(-1, probs.argmax(dim=-1, keepdim=True), 1.0)
    return one_hot - probs.detach() + probs, one_hot


class Gdas(Darts):
    name = "gdas"
    summary = "GDAS: one op per edge by hard Gumbel-softmax, tau 10 -> 0.1 (Dong & Yang, CVPR 2019)"
    paper_overrides = {"epochs": 250}  # GDAS.config of the NB201 reference; the rest equals DARTS.config
    paper_step_order = "weights_first"  # the published row's code: xautodl's GDAS.py updates the weights first

    class Options(OptionSet):
        tau_max: float = Field(10.0, gt=0, description="temperature of the first epoch (GDAS.py --tau_max)")
        tau_min: float = Field(0.1, gt=0, description="temperature of the last epoch (GDAS.py --tau_min)")

        @model_validator(mode="after")
        def _falls(self) -> "Gdas.Options":
            if self.tau_min > self.tau_max:
                raise ValueError(f"tau_min={self.tau_min} must be <= tau_max={self.tau_max}")
            return self

    graph_capturable = True
    diagnosed_network = "untrained"  # it trains one-hot sampled cells, never the softmax-mixed supernet
    # the hard sample of an op choice and its active mask, (alpha, tau, generator) -> (weights, active); ReinMax
    # replaces it
    hard_sample = staticmethod(hard_gumbel_softmax)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tau = self.options.tau_max

    def begin_epoch(self, epoch: int) -> None:
        super().begin_epoch(epoch)
        fraction = (epoch - 1) / max(self.optim.epochs - 1, 1)
        self.tau = self.options.tau_max - (self.options.tau_max - self.options.tau_min) * fraction

    def arch_weights(self) -> SampledWeights:
        """One sample per forward pass, seed k's from seed k's stream: hard for op choices, relaxed otherwise."""
        def draw(alpha: torch.Tensor, hard: bool) -> Callable[[int, torch.Generator], tuple[torch.Tensor, ...]]:
            def one_seed(seed: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
                if hard:
                    return self.hard_sample(alpha[seed], self.tau, generator)
                sample = relaxed_gumbel_softmax(alpha[seed], self.tau, generator)
                return sample, torch.ones_like(sample)
            return one_seed

        weights, active = zip(*(self.per_seed(draw(alpha, index in self.supernet.op_choice_parameters))
                                for index, alpha in enumerate(self.alphas)))
        return SampledWeights(list(weights), list(active))
