"""``reinmax``: GDAS with the ReinMax gradient estimator in place of straight-through Gumbel-softmax.

ReinMax (Liu, Dong, Liu, Yu & Gao, "Bridging Discrete and Backpropagation: Straight-Through and Beyond",
NeurIPS 2023: straight-through is the forward Euler method, first order; ReinMax is Heun's method, second order;
reference ``microsoft/ReinMax``, ``reinmax/reinmax.py``, ``ReinMaxCore``, whose README quotes the same):
the forward pass uses a one-hot sample ``D ~ Categorical(softmax(alpha))`` (``torch.multinomial`` of
``logits.softmax(-1)``: no Gumbel temperature in the forward pass, the temperature enters only the gradient);
the backward pass replaces straight-through's first-order (forward Euler) estimate with Heun's method, second
order: with ``pi_0 = softmax(alpha)``, ``pi_1 = (softmax(alpha / tau) + D) / 2`` and g the gradient at D,
``grad_alpha = 2 (diag(pi_1) - pi_1 pi_1^T) g - 1/2 (diag(pi_0) - pi_0 pi_0^T) g`` (then centred per row,
as the reference's ``- grad.mean(dim=-1)``; a softmax Jacobian's output sums to zero already).

As a NAS sampler, as confopt's ``ReinMaxSampler`` (``shakibamrd/ConfigurableOptimizer``,
``confopt/oneshot/archsampler/reinmax/sampler.py``: a ``GDASSampler`` whose ``sample`` is ``reinmax(alpha,
tau)``): GDAS's structure unchanged (``gdas``: one sample per forward pass shared by all cells; only the sampled
op is computed, the others add their weight, zero in value, through ``SampledWeights``; the temperature falls
linearly per epoch from ``tau_max`` to ``tau_min``; genotype the argmax of alpha; GDAS's NB201 protocol, 250
epochs, inherited), with ReinMax's sample and gradient for the op choices. Architecture parameters that are not
op choices (``op_choice_parameters``; NAS-Bench-1shot1's input mixtures) keep GDAS's relaxed Gumbel-softmax.

Temperature, an interpretation: confopt's ``ReinMaxProfile`` inherits ``GDASProfile``'s ``tau_max`` = 10,
``tau_min`` = 0.1, but the ``reinmax`` it calls refuses tau < 1 (``ValueError``: "ReinMax prefers to set the
temperature (tau) larger or equal to 1."; README: "reinmax prefers to set tau >= 1, while gumbel-softmax prefers
to set tau < 1"), so that schedule cannot run to its end, and the paper has no NAS experiment to take a value
from. Default: GDAS's schedule start, ``tau_max`` = 10, falling to ReinMax's lower bound, ``tau_min`` = 1; both
options must be >= 1.
"""
from __future__ import annotations

import torch
from pydantic import Field
from torch.autograd.function import once_differentiable
from torch.nn import functional as F

from searchers.gdas import Gdas


def softmax_jacobian_product(probs: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """``(diag(p) - p p^T) g`` over the last dimension."""
    weighted = probs * grad
    return weighted - probs * weighted.sum(dim=-1, keepdim=True)


class ReinMaxSample(torch.autograd.Function):
    """The one-hot ``sample`` (drawn outside) in the forward pass, ReinMax's gradient w.r.t. ``alpha`` in the
    backward pass."""

    @staticmethod
    def forward(ctx, alpha: torch.Tensor, sample: torch.Tensor, tau: float) -> torch.Tensor:  # noqa: ANN001
        ctx.save_for_backward(alpha, sample)
        ctx.tau = tau
        return sample.clone()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:  # noqa: ANN001
        alpha, sample = ctx.saved_tensors
        heun = 0.5 * (F.softmax(alpha / ctx.tau, dim=-1) + sample)
        estimate = (softmax_jacobian_product(heun, 2 * grad)
                    - softmax_jacobian_product(F.softmax(alpha, dim=-1), 0.5 * grad))
        return estimate - estimate.mean(dim=-1, keepdim=True), None, None


def reinmax_sample(alpha: torch.Tensor, tau: float, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """One-hot ``D ~ Categorical(softmax(alpha))`` per row with ReinMax's gradient, and D itself (the active ops)."""
    probs = F.softmax(alpha.detach(), dim=-1)
    picks = torch.multinomial(probs.reshape(-1, probs.shape[-1]), 1, replacement=True, generator=generator)
    one_hot = torch.zeros_like(probs).view(-1, probs.shape[-1]).scatter_(-1, picks, 1.0).view(probs.shape)
    return ReinMaxSample.apply(alpha, one_hot, tau), one_hot


class ReinMax(Gdas):
    name = "reinmax"
    summary = "ReinMax: GDAS sampling with ReinMax's second-order straight-through gradient (Liu et al., NeurIPS 2023)"
    graph_capturable = True

    class Options(Gdas.Options):
        tau_max: float = Field(10.0, ge=1, description="temperature of the first epoch (GDAS's 10; ReinMax: >= 1)")
        tau_min: float = Field(1.0, ge=1, description="temperature of the last epoch (ReinMax's lower bound, 1)")

    hard_sample = staticmethod(reinmax_sample)  # GDAS's forward, ReinMax's sample and gradient for op choices
