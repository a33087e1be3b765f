"""``idarts``: the implicit-gradient hypergradient with a truncated Neumann series (Zhang et al., ICML 2021).

iDARTS (Section 3, Eq. 6-8): at weights w that (approximately) minimise the training loss, the implicit function
theorem gives the architecture gradient ``grad_a L_val - grad2_aw L_train [grad2_ww L_train]^-1 grad_w L_val``;
the inverse Hessian is approximated by ``eta * sum_{j=0..K} (I - eta H)^j`` (H = grad2_ww L_train, eta the weights'
learning rate), so ``d alpha = grad_a L_val - eta * grad2_aw L_train * s`` with ``s = sum_{j=0..K} (I - eta H)^j
v`` and ``v = grad_w L_val``. As in the reference (``iDARTS_V2.ipynb`` and ``architect_hess.py``): K = 2, the
products ``H p`` exact by double backpropagation on one training batch, the mixed product ``grad2_aw L_train * s``
by DARTS's central finite difference (``darts2``), eta the current learning rate.

How the weights move (``weight_rule``), the one point where the NB201 reference and the paper part ways:

- ``reference`` (the paper preset's; the NB201 notebook ``iDARTS_V2.ipynb`` that produced the published NB201
  row): ``search_func`` never steps the weight optimiser, and ``backward_step_unrolled``'s T = 4 inner steps step
  ``network_optimizer = deepcopy(w_optimizer)``, whose parameters are copies, so they never move the network. The
  only weight change per step is what ``_hessian_vector_product`` leaves behind: it moves w to w + R s and
  w - R s for the finite difference, then adds R v back ("We empirically found that adding noise into supernet
  could improve the performance", its comment), i.e. ``w <- w - R (s - v)`` with ``R = r / ||v||``, r = 0.01.
  Here the finite difference also uses R = r / ||v|| (per seed) and the Hessian products the step's training batch
  (the notebook draws a fresh one, ``next(iter(xloader))``); the records' training loss is that batch's.
- ``darts`` (the other presets'): DARTS's alternation, one SGD weight step on the training half per architecture
  step, w the current weights; the finite difference's radius is ``fd_radius / ||s||``. This is the paper's
  reading (w approximately optimal for the training loss) and what the 1shot1 code ``architect_hess.py`` does
  with the real optimiser; its inner steps (T = 5 there) are not reproduced.

NB201 settings, from the run log in the reference notebook (config ``DARTS_wlr0p01``): weight learning rate 0.01
(cosine to 0.001), 30 epochs; the rest is DARTS's NB201 protocol.
"""
from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import Field

from benchmarks.data_stream import Batch
from searchers.context import EpochStats
from searchers.darts2 import Darts2
from searchers.seeds import per_seed, seed_norms


class Idarts(Darts2):
    name = "idarts"
    summary = "iDARTS: implicit hypergradient, Neumann-series inverse Hessian, K=2 (Zhang et al., ICML 2021)"
    graph_capturable = True
    paper_overrides = {"w_lr": 0.01, "epochs": 30}

    class Options(Darts2.Options):
        neumann_terms: int = Field(2, ge=0, le=100, description="K, the last power of (I - eta H) in the series "
                                                                "(Section 3.2; the reference's K = 2)")
        weight_rule: Literal["darts", "reference"] = Field(
            "darts", description="darts: an SGD weight step per step; reference: iDARTS_V2.ipynb's only weight "
                                 "change, w - R (s - v) (paper preset)")

    preset_options = {"paper": {"weight_rule": "reference"}}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.train_loss: tuple[torch.Tensor, torch.Tensor] | None = None  # the Hessian batch's loss and logits

    def arch_gradient(self, weight_batch: Batch,
                      arch_batch: Batch) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
        lr = self.w_opt.param_groups[0]["lr"]
        val_loss, val_logits = self.arch_loss(arch_batch)
        grads = torch.autograd.grad(val_loss.sum(), [*self.alphas, *self.weights])
        alpha_grads, vector = grads[: len(self.alphas)], list(grads[len(self.alphas):])
        series = self.neumann_series(vector, weight_batch, lr)
        saved = [w.detach().clone() for w in self.weights]
        reference = self.options.weight_rule == "reference"
        radius = self.options.fd_radius / seed_norms(vector if reference else series)
        implicit = self._hessian_vector_product(saved, series, weight_batch, radius)
        if reference:
            with torch.no_grad():
                for w, s, v in zip(self.weights, series, vector):
                    w.sub_(per_seed(radius, s).to(s.dtype) * (s - v))
        return [g - lr * h for g, h in zip(alpha_grads, implicit)], val_loss, val_logits

    def step(self, weight_batch: Batch, arch_batch: Batch, weight_stats: EpochStats, arch_stats: EpochStats) -> None:
        if self.options.weight_rule == "darts":
            return super().step(weight_batch, arch_batch, weight_stats, arch_stats)
        self.arch_step(weight_batch, arch_batch, arch_stats)  # moves the weights by the reference's residue
        weight_stats.add(*self.train_loss, weight_batch.labels)

    def neumann_series(self, vector: list[torch.Tensor], batch: Batch, lr: float) -> list[torch.Tensor]:
        """``sum_{j=0..K} (I - lr H)^j vector``, H the training loss's Hessian in the weights (exact products)."""
        train_loss, logits = self.weight_loss(batch)
        self.train_loss = (train_loss.detach(), logits.detach())
        train_grads = torch.autograd.grad(train_loss.sum(), self.weights, create_graph=True)
        term, total = vector, list(vector)
        for _ in range(self.options.neumann_terms):
            products = torch.autograd.grad(train_grads, self.weights, grad_outputs=term, retain_graph=True,
                                           allow_unused=True)
            term = [t - lr * (torch.zeros_like(t) if h is None else h) for t, h in zip(term, products)]
            total = [s + t for s, t in zip(total, term)]
        return total
