"""``darts2``: DARTS with the second-order (unrolled) architecture gradient (Liu et al. 2019, Eq. 7-8)."""
from __future__ import annotations

import torch
from pydantic import Field

from benchmarks.data_stream import Batch
from foundation.options import OptionSet
from searchers.darts import Darts
from searchers.seeds import per_seed, seed_norms


class Darts2(Darts):
    """grad_a L_val(w', a) - xi * (grad_a L_train(w+, a) - grad_a L_train(w-, a)) / (2 eps), with the virtual step
    w' = w - xi * (momentum * buf + grad_w L_train(w, a) + wd * w) taken with the weight optimiser's current
    learning rate xi, momentum and weight decay (as the NB201 reference's DARTS-V2 and the DARTS code do; the
    Nesterov correction is not part of the virtual step there either), w+- = w +- eps * grad_w' L_val(w', a) and
    eps = 0.01 / ||grad_w' L_val(w', a)|| (DARTS, Section 2.3), the norm and eps per seed."""

    name = "darts2"
    summary = "DARTS, second-order unrolled architecture gradient (Liu et al., ICLR 2019)"
    paper_step_order = "weights_first"  # the published row's code: xautodl's DARTS-V2.py updates the weights first

    class Options(OptionSet):
        fd_radius: float = Field(0.01, gt=0, description="numerator of the finite-difference epsilon (Section 2.3)")

    graph_capturable = True

    def arch_gradient(self, weight_batch: Batch,
                      arch_batch: Batch) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
        group = self.w_opt.param_groups[0]
        lr, momentum, decay = group["lr"], group["momentum"], group["weight_decay"]
        train_loss, _ = self.weight_loss(weight_batch)
        train_grads = torch.autograd.grad(train_loss.sum(), self.weights)
        saved = [w.detach().clone() for w in self.weights]
        with torch.no_grad():
            for w, g in zip(self.weights, train_grads):
                buf = self.w_opt.state.get(w, {}).get("momentum_buffer")
                step = g + decay * w if buf is None else momentum * buf + g + decay * w
                w.sub_(lr * step)
        val_loss, val_logits = self.arch_loss(arch_batch)
        grads = torch.autograd.grad(val_loss.sum(), [*self.alphas, *self.weights])
        alpha_grads, weight_grads = grads[:len(self.alphas)], grads[len(self.alphas):]
        implicit = self._hessian_vector_product(saved, weight_grads, weight_batch)
        return [g - lr * h for g, h in zip(alpha_grads, implicit)], val_loss, val_logits

    def _hessian_vector_product(self, saved: list[torch.Tensor], vector: tuple[torch.Tensor, ...] | list[torch.Tensor],
                                batch: Batch, eps: torch.Tensor | None = None) -> list[torch.Tensor]:
        """(grad_a L_train(w + eps v) - grad_a L_train(w - eps v)) / (2 eps), leaving the weights at ``saved``;
        eps per seed, by default ``fd_radius / ||v||``."""
        if eps is None:
            eps = self.options.fd_radius / seed_norms(vector)
        gradients = []
        for sign in (1.0, -1.0):
            with torch.no_grad():
                for w, w0, v in zip(self.weights, saved, vector):
                    w.copy_(w0 + sign * per_seed(eps, v) * v)
            loss, _ = self.weight_loss(batch)
            gradients.append(torch.autograd.grad(loss.sum(), self.alphas))
        with torch.no_grad():
            for w, w0 in zip(self.weights, saved):
                w.copy_(w0)
        return [(plus - minus) / (2 * per_seed(eps, plus)) for plus, minus in zip(*gradients)]
