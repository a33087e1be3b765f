"""``snas`` and ``dsnas``: stochastic architectures trained single-level, weights and alphas on the same loss.

SNAS (Xie et al., ICLR 2019, Section 2; the reference ``SNAS/model_search.py`` of SNAS-Series): each forward pass
mixes every edge's ops with a relaxed Gumbel-softmax sample ``softmax((alpha + g) / tau)`` (no straight-through;
one sample shared by all cells), and one training loss, backpropagated once, updates both the weights and alpha
(``train_search.py``: ``loss.backward()``, weight gradients clipped at 5 and alpha's at 10, then both optimisers
step). The temperature falls linearly, per epoch, from ``tau_init`` = 1 to ``tau_min`` = 0.03 (the reference's
``--temp 1 --temp_min 0.03 --temp_annealing``): ``tau_init - (tau_init - tau_min) * epoch / anneal_epochs``. The
reference hard-codes ``anneal_epochs`` = 150, its own epoch count: the paper preset follows it (a 50-epoch search
then ends at tau 0.68, not 0.03);
the reduced presets anneal over the run's epochs (``anneal_epochs`` 0), as the NB201 port of confopt
(``profiles.py``: temperature decayed linearly over the search's epochs) does, so that their short searches
reach tau_min. Its
resource constraint is off, as the NB201 tables run it. The genotype is the argmax of alpha.

DSNAS (Hu et al., CVPR 2020, Section 3; ``DSNAS/network.py`` of SNAS-Series): each forward pass runs one op per
edge, a one-hot ``Z ~ Categorical(softmax(alpha))`` (no Gumbel relaxation, no temperature), and alpha's gradient is
the single-path estimator ``dL/dZ_sampled * grad_alpha log p(Z)`` — the reference backpropagates
``log p(Z)`` and scales each edge's row by ``dL/dZ`` (``log_alpha.grad.mul_(block_reward)``; only the sampled op's
entry is non-zero, as only it multiplies an output). Same single-level update, on the same batch.

Both use no validation set: the architecture half is training data, and each search step is two single-level
steps, one per half. Interpretations, documented: the optimisers are the harness's NB201 ones (SGD 0.025 ->
0.001, weight decay 5e-4; Adam 3e-4, betas (0.5, 0.999), weight decay 1e-3, SNAS's reference's distributed-training
choice; its single-GPU path uses plain SGD at 3e-4 for alpha; DSNAS's search config uses Adam at 1e-3 without weight
decay, ``configs/SinglePath240epoch_arch_lr_1e-3_decay_0.yaml``) and the NB201 protocol's 50 epochs (no NB201
reference exists for either); alpha starts at DARTS's 1e-3 N(0, 1), not SNAS's N(1, 0.01) (a constant shift
does not change the softmax; the spread is 10x smaller); single-level as both papers (confopt's port runs
SNAS bi-level). ``single_level`` false runs SNAS bi-level, DARTS's
alternation with the Gumbel sample, as confopt's port does.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from pydantic import Field
from torch.nn import functional as F

from benchmarks.data_stream import Batch
from foundation.options import OptionSet
from searchers.context import EpochStats
from searchers.darts import Darts
from searchers.gdas import relaxed_gumbel_softmax
from searchers.seeds import assign_gradients, clip_grad_norm_per_seed, seed_cross_entropy

ALPHA_GRAD_CLIP = 10.0  # SNAS train_search.py: clip_grad_norm_(model.arch_parameters(), 10.)


GradientsFn = Callable[[Batch], tuple[list[torch.Tensor], list[torch.Tensor], torch.Tensor, torch.Tensor]]


def single_level_steps(searcher: Darts, gradients: GradientsFn, batches: list[tuple[Batch, EpochStats]]) -> None:
    """Per training batch: weight and alpha gradients of one loss (``gradients``: weight grads, alpha grads,
    per-seed loss, logits), weight gradients clipped at the run's ``grad_clip`` and alpha's at 10 (per seed),
    then both optimisers step."""
    for batch, stats in batches:
        searcher.w_opt.zero_grad(set_to_none=True)
        weight_grads, alpha_grads, loss, logits = gradients(batch)
        assign_gradients([*searcher.weights, *searcher.alphas], [*weight_grads, *alpha_grads])
        clip_grad_norm_per_seed(searcher.weights, searcher.optim.grad_clip)
        clip_grad_norm_per_seed(searcher.alphas, ALPHA_GRAD_CLIP)
        searcher.w_opt.step()
        searcher.a_opt.step()
        stats.add(loss, logits, batch.labels)


class Snas(Darts):
    name = "snas"
    summary = "SNAS: relaxed Gumbel-softmax, weights and alphas on one training loss (Xie et al., ICLR 2019)"
    uses_validation_set = False
    alternates = False  # single-level: one backward updates weights and alphas together
    graph_capturable = True
    diagnosed_network = "untrained"  # it trains relaxed Gumbel samples, never the softmax-mixed supernet

    class Options(OptionSet):
        tau_init: float = Field(1.0, gt=0, description="temperature at the start (SNAS README: --temp 1)")
        tau_min: float = Field(0.03, gt=0, description="temperature reached after anneal_epochs (--temp_min)")
        anneal_epochs: int = Field(0, ge=0, description="epochs of the linear decay; 0 = the run's (the SNAS code "
                                                        "hard-codes 150: the paper preset's)")

    preset_options = {"paper": {"anneal_epochs": 150}}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tau = self.options.tau_init

    def begin_epoch(self, epoch: int) -> None:
        super().begin_epoch(epoch)
        fraction = min(epoch / (self.options.anneal_epochs or self.optim.epochs), 1.0)
        self.tau = self.options.tau_init - (self.options.tau_init - self.options.tau_min) * fraction

    def arch_weights(self) -> list[torch.Tensor]:
        """A relaxed sample per forward pass, seed k's from seed k's stream."""
        return [self.per_seed(lambda seed, generator: relaxed_gumbel_softmax(alpha[seed], self.tau, generator))
                for alpha in self.alphas]

    def step(self, weight_batch: Batch, arch_batch: Batch, weight_stats: EpochStats, arch_stats: EpochStats) -> None:
        single_level_steps(self, self.gradients, [(weight_batch, weight_stats), (arch_batch, arch_stats)])

    def gradients(self, batch: Batch) -> tuple[list[torch.Tensor], list[torch.Tensor], torch.Tensor, torch.Tensor]:
        loss, logits = self.weight_loss(batch)
        grads = torch.autograd.grad(loss.sum(), [*self.weights, *self.alphas])
        return list(grads[: len(self.weights)]), list(grads[len(self.weights):]), loss, logits


class Dsnas(Darts):
    name = "dsnas"
    summary = "DSNAS: one sampled op per edge, single-path gradient dL/dZ * grad log p(Z) (Hu et al., CVPR 2020)"
    uses_validation_set = False
    alternates = False  # single-level: one backward updates weights and alphas together
    graph_capturable = True
    diagnosed_network = "untrained"  # it trains one-hot sampled cells, never the softmax-mixed supernet

    def arch_weights(self) -> list[torch.Tensor]:
        """One-hot ``Z ~ Categorical(softmax(alpha))`` per row, a fresh draw per forward pass (a leaf: the
        estimator needs dL/dZ)."""
        samples = []
        for alpha in self.alphas:
            probs = F.softmax(alpha.detach(), dim=-1)
            picks = self.per_seed(lambda seed, generator: torch.multinomial(
                probs[seed].reshape(-1, probs.shape[-1]), 1, generator=generator).view(probs.shape[1:-1]))
            # one-hot by scatter: F.one_hot checks the indices' range on the host
            one_hot = torch.zeros_like(probs).scatter_(-1, picks[..., None], 1.0)
            samples.append(one_hot.requires_grad_())
        return samples

    def step(self, weight_batch: Batch, arch_batch: Batch, weight_stats: EpochStats, arch_stats: EpochStats) -> None:
        single_level_steps(self, self.gradients, [(weight_batch, weight_stats), (arch_batch, arch_stats)])

    def gradients(self, batch: Batch) -> tuple[list[torch.Tensor], list[torch.Tensor], torch.Tensor, torch.Tensor]:
        """The weights' gradient, and alpha's ``dL/dZ_sampled * (Z - softmax(alpha))`` per row."""
        samples = self.arch_weights()
        logits = self.supernet(batch.images, samples)
        loss = seed_cross_entropy(logits, batch.labels)
        grads = torch.autograd.grad(loss.sum(), [*self.weights, *samples])
        alpha_grads = [(sample_grad * sample).sum(dim=-1, keepdim=True) * (sample - F.softmax(alpha, dim=-1)).detach()
                       for alpha, sample, sample_grad in zip(self.alphas, samples, grads[len(self.weights):])]
        return list(grads[: len(self.weights)]), alpha_grads, loss, logits
