"""Dominant eigenvalue of the Hessian of a loss with respect to the architecture parameters.

Zela et al. (ICLR 2020) tie DARTS's failure to the sharpness of the validation loss in alpha; SD-DARTS (Fig. 2)
and the TSE paper (Section 3.4, Fig. 2b, App. E) plot this eigenvalue per epoch. Two methods, cross-checked in
the tests:

- ``exact``: the full Hessian, one Hessian-vector product (double backward) per parameter — cheap where the
  architecture is small (NB201: 30 parameters) — then ``eigvalsh``.
- ``power``: power iteration with Hessian-vector products, for large architectures; if the dominant eigenvalue
  is negative, a second iteration on ``H - lambda I`` returns the largest (algebraic) one.

The loss is a sum over a fixed list of batches, so the Hessian is that of the mean loss over them.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch

LossFn = Callable[[int], torch.Tensor]  # batch number -> scalar loss (built from the current parameters)


def _flat(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.reshape(-1) for t in tensors])


def _split(flat: torch.Tensor, like: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    out, offset = [], 0
    for t in like:
        out.append(flat[offset:offset + t.numel()].view_as(t))
        offset += t.numel()
    return out


def exact_hessian(loss_fn: LossFn, params: Sequence[torch.Tensor], num_batches: int) -> torch.Tensor:
    """(n, n) Hessian of the mean loss over ``num_batches`` batches w.r.t. the flattened ``params``."""
    size = sum(p.numel() for p in params)
    hessian = torch.zeros(size, size, dtype=torch.float64, device=params[0].device)
    for b in range(num_batches):
        grad = _flat(torch.autograd.grad(loss_fn(b), params, create_graph=True))
        for i in range(size):
            row = torch.autograd.grad(grad[i], params, retain_graph=i < size - 1)
            hessian[i] += _flat(row).double()
    return hessian / num_batches


def hessian_vector_product(loss_fn: LossFn, params: Sequence[torch.Tensor], num_batches: int,
                           vector: torch.Tensor) -> torch.Tensor:
    total = torch.zeros_like(vector)
    for b in range(num_batches):
        grads = torch.autograd.grad(loss_fn(b), params, create_graph=True)
        dot = sum((g * v).sum() for g, v in zip(grads, _split(vector.to(grads[0].dtype), params)))
        total += _flat(torch.autograd.grad(dot, params)).to(total.dtype)
    return total / num_batches


def power_iteration(hvp: Callable[[torch.Tensor], torch.Tensor], size: int, device: torch.device,
                    iterations: int = 100, tolerance: float = 1e-5, seed: int = 0) -> float:
    """Largest eigenvalue of a symmetric operator given by its matrix-vector product."""
    def dominant(shift: float) -> float:
        vector = torch.randn(size, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(device)
        vector /= vector.norm()
        value = 0.0
        for _ in range(iterations):
            product = hvp(vector) - shift * vector
            new_value = float(vector @ product)
            norm = product.norm()
            if norm == 0:
                return shift
            vector = product / norm
            if abs(new_value - value) <= tolerance * max(abs(new_value), 1e-12):
                value = new_value
                break
            value = new_value
        return value + shift

    largest_magnitude = dominant(0.0)
    return largest_magnitude if largest_magnitude >= 0 else dominant(largest_magnitude)


def dominant_eigenvalue(loss_fn: LossFn, params: Sequence[torch.Tensor], num_batches: int, method: str,
                        iterations: int = 100) -> float:
    if method == "exact":
        hessian = exact_hessian(loss_fn, params, num_batches)
        return float(torch.linalg.eigvalsh((hessian + hessian.T) / 2)[-1])  # symmetric up to round-off
    size = sum(p.numel() for p in params)
    return power_iteration(lambda v: hessian_vector_product(loss_fn, params, num_batches, v), size,
                           params[0].device, iterations)
