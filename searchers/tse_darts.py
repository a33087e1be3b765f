"""``tse_darts``: the architecture descends the training speed estimate (TSE) instead of the validation loss.

TSE-DARTS (Fil et al., "DARTS without a validation set", Section 2.2-2.3, Algorithm 1, Appendix D): there is no
validation set — the weight-half and architecture-half batches are both training batches, i.e. the whole
training set is used. An outer step takes T = 100 batches: (1) save the network state; run T ordinary weight
steps on them, accumulating the direct gradient dL_train/dalpha of every step (the alpha gradients are not
zeroed in between: Eq. 6, the first-order TSE gradient); (2) one architecture step with that sum; (3) restore the
saved state and (4) retrain the same T batches with the new alphas. Optimisers and schedules are DARTS's
("we reuse the default parameters of the public implementations", Section 3).

As in Appendix D, the saved and restored state is the network's (weights and BN statistics); the weight
optimiser's momentum is carried on from the unrolled steps (option ``restore_optimizer`` restores it too).
An epoch's last, shorter window (``ceil(len(train_queue) / T)`` in Appendix D) is one outer step as well.

Reduced protocol (``reduced`` preset, a choice of ours, not the paper's): T = 16. The paper's 782 training batches
an epoch in windows of T = 100 make 8 architecture steps an epoch; the reduced preset's 126 batches in windows of
16 make the same 8, where T = 100 would leave 2 an epoch, too few for the architecture to decide
(docs/calibration.md). The paper preset keeps T = 100.
"""
from __future__ import annotations

import copy
from typing import Any

import torch
from pydantic import Field

from benchmarks.data_stream import Batch
from foundation.options import OptionSet
from searchers.context import EpochStats
from searchers.darts import Darts
from searchers.seeds import clip_grad_norm_per_seed


class TseDarts(Darts):
    name = "tse_darts"
    summary = "TSE-DARTS: architecture trained on the sum of training losses, no validation set (Fil et al.)"

    class Options(OptionSet):
        unroll_steps: int = Field(100, ge=1, le=1_000_000, description="T, batches per outer step (Appendix D)")
        restore_optimizer: bool = Field(False, description="also restore the weight optimiser's momentum")

    preset_options = {"reduced": {"unroll_steps": 16}, "smoke": {"unroll_steps": 4}}
    uses_validation_set = False
    alternates = False  # weight steps on each batch, an architecture step per window of T
    graph_capturable = False  # an architecture step every T batches over a host-side window

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.window: list[Batch] = []
        self.stats: tuple[EpochStats, EpochStats] | None = None

    @classmethod
    def steps_per_update(cls, options: OptionSet) -> int:
        """A window of T batches, two to a step."""
        return -(-options.unroll_steps // 2)

    def step(self, weight_batch: Batch, arch_batch: Batch, weight_stats: EpochStats, arch_stats: EpochStats) -> None:
        """Collect training batches (both halves are training data here); run an outer step per T batches."""
        self.stats = (weight_stats, arch_stats)
        self.window += [weight_batch, arch_batch]
        if len(self.window) >= self.options.unroll_steps:
            self.outer_step(self.window[: self.options.unroll_steps])
            self.window = self.window[self.options.unroll_steps:]

    def end_epoch(self, epoch: int) -> None:
        if self.window:
            self.outer_step(self.window)
            self.window = []

    def outer_step(self, batches: list[Batch]) -> None:
        weight_stats, arch_stats = self.stats
        saved_network = copy.deepcopy(self.supernet.state_dict())
        saved_optimizer = copy.deepcopy(self.w_opt.state_dict()) if self.options.restore_optimizer else None
        for alpha in self.alphas:
            alpha.grad = None
        for batch in batches:  # (1) unroll, summing the direct alpha gradients
            self.tse_weight_step(batch, arch_stats)
        self.a_opt.step()  # (2)
        new_alphas = [alpha.detach().clone() for alpha in self.alphas]
        self.supernet.load_state_dict(saved_network)  # (3) also reverts the alphas, which we put back
        with torch.no_grad():
            for alpha, value in zip(self.alphas, new_alphas):
                alpha.copy_(value)
        if saved_optimizer is not None:
            self.w_opt.load_state_dict(saved_optimizer)
        for batch in batches:  # (4)
            self.weight_step(batch, weight_stats)

    def tse_weight_step(self, batch: Batch, stats: EpochStats) -> None:
        """A weight step whose backward also adds this batch's dL/dalpha to the accumulating alpha gradient."""
        self.w_opt.zero_grad(set_to_none=True)
        loss, logits = self.weight_loss(batch)
        loss.sum().backward(inputs=[*self.weights, *self.alphas])
        clip_grad_norm_per_seed(self.weights, self.optim.grad_clip)
        self.w_opt.step()
        stats.add(loss, logits, batch.labels)
