"""``idarts``: the implicit-gradient hypergradient with a truncated Neumann series (Zhang et al., ICML 2021).

iDARTS (Section 3, Eq. 6-8): at weights w that (approximately) minimise the training loss, the implicit function
theorem gives the architecture gradient ``grad_a L_val - grad2_aw L_train [grad2_ww L_train]^-1 grad_w L_val``;
the inverse Hessian is approximated by ``eta * sum_{j=0..K} (I - eta H)^j`` (H = grad2_ww L_train, eta the weights'
learning rate), so ``d alpha = grad_a L_val - eta * grad2_aw L_train * s`` with ``s = sum_{j=0..K} (I - eta H)^j
v`` and ``v = grad_w L_val``. As in the reference (``iDARTS_V2.ipynb`` and ``architect_hess.py``): K = 2, the
products ``H p`` exact by double backpropagation on one training batch, the mixed product ``grad2_aw L_train * s``
by DARTS's central finite difference (``darts2``), eta the current learning rate.

Interpretations, documented: w is the current weights of DARTS's alternation (one weight step per architecture
step); the reference instead takes its T = 4 (NB201 notebook) or 5 (1shot1 code) inner SGD steps inside the
architecture step, and restores the weights with a net perturbation ("adding noise", its comment), neither of
which is reproduced. The finite difference's radius is ``fd_radius / ||s||`` (the reference divides by ||v||).
NB201 settings, from the run log in the reference notebook (config ``DARTS_wlr0p01``): weight learning rate 0.01
(cosine to 0.001), 30 epochs; the rest is DARTS's NB201 protocol.
"""
from __future__ import annotations

import torch
from pydantic import Field

from benchmarks.data_stream import Batch
from searchers.darts2 import Darts2


class Idarts(Darts2):
    name = "idarts"
    summary = "iDARTS: implicit hypergradient, Neumann-series inverse Hessian, K=2 (Zhang et al., ICML 2021)"
    paper_overrides = {"w_lr": 0.01, "epochs": 30}

    class Options(Darts2.Options):
        neumann_terms: int = Field(2, ge=0, le=100, description="K, the last power of (I - eta H) in the series "
                                                                "(Section 3.2; the reference's K = 2)")

    def arch_gradient(self, weight_batch: Batch,
                      arch_batch: Batch) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
        lr = self.w_opt.param_groups[0]["lr"]
        val_loss, val_logits = self.arch_loss(arch_batch)
        grads = torch.autograd.grad(val_loss.sum(), [*self.alphas, *self.weights])
        alpha_grads, vector = grads[: len(self.alphas)], grads[len(self.alphas):]
        series = self.neumann_series(list(vector), weight_batch, lr)
        implicit = self._hessian_vector_product([w.detach().clone() for w in self.weights], series, weight_batch)
        return [g - lr * h for g, h in zip(alpha_grads, implicit)], val_loss, val_logits

    def neumann_series(self, vector: list[torch.Tensor], batch: Batch, lr: float) -> list[torch.Tensor]:
        """``sum_{j=0..K} (I - lr H)^j vector``, H the training loss's Hessian in the weights (exact products)."""
        train_loss, _ = self.weight_loss(batch)
        train_grads = torch.autograd.grad(train_loss.sum(), self.weights, create_graph=True)
        term, total = vector, list(vector)
        for _ in range(self.options.neumann_terms):
            products = torch.autograd.grad(train_grads, self.weights, grad_outputs=term, retain_graph=True,
                                           allow_unused=True)
            term = [t - lr * (torch.zeros_like(t) if h is None else h) for t, h in zip(term, products)]
            total = [s + t for s, t in zip(total, term)]
        return total
