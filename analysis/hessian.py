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

LossFn = Callable[[int], torch.Tensor]  # batch number -> per-seed losses (K,) (built from the current parameters)


def _flat(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """(K, n): each seed's slices of the stacked tensors, flattened and concatenated."""
    return torch.cat([t.reshape(t.shape[0], -1) for t in tensors], dim=1)


def _split(flat: torch.Tensor, like: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    out, offset = [], 0
    for t in like:
        size = t[0].numel()
        out.append(flat[:, offset:offset + size].reshape(t.shape))
        offset += size
    return out


def exact_hessian(loss_fn: LossFn, params: Sequence[torch.Tensor], num_batches: int) -> torch.Tensor:
    """(K, n, n): each seed's Hessian of its mean loss over ``num_batches`` batches w.r.t. its flattened
    parameters. The seeds' Hessians are the diagonal blocks of the Hessian of the summed loss, so row i of every
    seed comes from one Hessian-vector product: n products for all K seeds."""
    seeds, size = params[0].shape[0], sum(p[0].numel() for p in params)
    hessian = torch.zeros(seeds, size, size, dtype=torch.float64, device=params[0].device)
    for b in range(num_batches):
        grad = _flat(torch.autograd.grad(loss_fn(b).sum(), params, create_graph=True))
        for i in range(size):
            row = torch.autograd.grad(grad[:, i].sum(), params, retain_graph=i < size - 1)
            hessian[:, i] += _flat(row).double()
    return hessian / num_batches


def hessian_vector_product(loss_fn: LossFn, params: Sequence[torch.Tensor], num_batches: int,
                           vector: torch.Tensor) -> torch.Tensor:
    """(K, n): each seed's Hessian times its own row of ``vector`` (K, n)."""
    total = torch.zeros_like(vector)
    for b in range(num_batches):
        grads = torch.autograd.grad(loss_fn(b).sum(), params, create_graph=True)
        dot = sum((g * v).sum() for g, v in zip(grads, _split(vector.to(grads[0].dtype), params)))
        total += _flat(torch.autograd.grad(dot, params)).to(total.dtype)
    return total / num_batches


def power_iteration(hvp: Callable[[torch.Tensor], torch.Tensor], seeds: int, size: int, device: torch.device,
                    iterations: int = 100, tolerance: float = 1e-5, seed: int = 0) -> torch.Tensor:
    """Largest eigenvalue (K,) of each seed's symmetric operator, given their batched matrix-vector product.
    Each seed stops on its own criterion (its later iterations change nothing of it): a seed computed in a
    batch gets the value it gets alone."""
    def dominant(shift: torch.Tensor, active: torch.Tensor) -> torch.Tensor:
        start = torch.randn(size, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(device)
        vector = (start / start.norm()).expand(seeds, size).clone()
        value = torch.zeros(seeds, dtype=torch.float64, device=device)
        running = active.clone()
        for _ in range(iterations):
            if not running.any():
                break
            product = hvp(vector) - shift[:, None] * vector
            new_value = (vector * product).sum(dim=1)
            norm = product.norm(dim=1)
            zero = running & (norm == 0)
            value = torch.where(zero, 0.0, value)  # H - shift I annihilates the vector: the eigenvalue is the shift
            running &= ~zero
            vector = torch.where(running[:, None], product / norm.clamp_min(1e-300)[:, None], vector)
            converged = (new_value - value).abs() <= tolerance * new_value.abs().clamp_min(1e-12)
            value = torch.where(running, new_value, value)
            running &= ~converged
        return value + shift

    everyone = torch.ones(seeds, dtype=torch.bool, device=device)
    largest_magnitude = dominant(torch.zeros(seeds, dtype=torch.float64, device=device), everyone)
    negative = largest_magnitude < 0
    if not negative.any():
        return largest_magnitude
    shifted = dominant(torch.where(negative, largest_magnitude, 0.0), negative)
    return torch.where(negative, shifted, largest_magnitude)


def dominant_eigenvalues(loss_fn: LossFn, params: Sequence[torch.Tensor], num_batches: int, method: str,
                         iterations: int = 100) -> list[float]:
    """Each seed's largest Hessian eigenvalue (a NaN Hessian, that of a diverged seed, gives NaN)."""
    if method == "exact":
        hessian = exact_hessian(loss_fn, params, num_batches)
        finite = torch.isfinite(hessian).all(dim=(1, 2))
        symmetric = torch.nan_to_num((hessian + hessian.transpose(1, 2)) / 2, nan=0.0, posinf=0.0, neginf=0.0)
        return torch.where(finite, torch.linalg.eigvalsh(symmetric)[:, -1], float("nan")).tolist()
    seeds, size = params[0].shape[0], sum(p[0].numel() for p in params)
    return power_iteration(lambda v: hessian_vector_product(loss_fn, params, num_batches, v), seeds, size,
                           params[0].device, iterations).tolist()
