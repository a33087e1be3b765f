"""Dominant eigenvalue of the Hessian of a loss with respect to the architecture parameters.

Zela et al. (ICLR 2020) tie DARTS's failure to the sharpness of the validation loss in alpha; SD-DARTS (Fig. 2)
and the TSE paper (Section 3.4, Fig. 2b, App. E) plot this eigenvalue per epoch. Three methods, cross-checked in
the tests, all built on ``HessianProducts`` (the gradient's graph built once per batch, then one double backward
per product, for all seeds of a batch at once: the seeds' Hessians are the diagonal blocks of the summed loss's):

- ``exact``: the full Hessian, one product per parameter (NB201: 30), then ``eigvalsh``.
- ``lanczos`` (default): Lanczos iteration with full reorthogonalisation, stopped when the top Ritz pair's
  residual (which bounds the distance to an eigenvalue; the error is typically its square over the spectral gap)
  is below 1e-4 of the value: measured on the paper preset, 10 products of 30 and the exact method's value to
  1e-9; at most one product per parameter, then exact up to rounding.
- ``power``: power iteration, for comparison with other tools; if the dominant eigenvalue is negative, a second
  iteration on ``H - lambda I`` returns the largest (algebraic) one.

The loss is a sum over a fixed list of batches, so the Hessian is that of the mean loss over them. Every method
stops each seed on its own criterion, so a seed computed in a batch gets the value it gets alone.
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


class HessianProducts:
    """Hessian-vector products of the mean loss over the batches w.r.t. the stacked ``params``, all seeds at once:
    ``products(vectors)`` maps (K, n) to (K, n), seed k's Hessian times its own row."""

    def __init__(self, loss_fn: LossFn, params: Sequence[torch.Tensor], num_batches: int) -> None:
        self.params = list(params)
        self.seeds, self.size = params[0].shape[0], sum(p[0].numel() for p in params)
        self.gradients = [_flat(torch.autograd.grad(loss_fn(b).sum(), self.params, create_graph=True))
                          for b in range(num_batches)]

    def __call__(self, vectors: torch.Tensor) -> torch.Tensor:
        total = torch.zeros(self.seeds, self.size, dtype=torch.float64, device=vectors.device)
        for gradient in self.gradients:
            dot = (gradient * vectors.to(gradient.dtype)).sum()
            total += _flat(torch.autograd.grad(dot, self.params, retain_graph=True)).double()
        return total / len(self.gradients)


def exact_hessian(loss_fn: LossFn, params: Sequence[torch.Tensor], num_batches: int) -> torch.Tensor:
    """(K, n, n): each seed's Hessian of its mean loss over ``num_batches`` batches w.r.t. its flattened
    parameters, one product per basis vector (row i of every seed at once)."""
    products = HessianProducts(loss_fn, params, num_batches)
    basis = torch.eye(products.size, dtype=torch.float64, device=params[0].device)
    return torch.stack([products(basis[i].expand(products.seeds, -1)) for i in range(products.size)], dim=1)


LANCZOS_TOLERANCE = 1e-4


def lanczos(hvp: Callable[[torch.Tensor], torch.Tensor], seeds: int, size: int, device: torch.device,
            tolerance: float = LANCZOS_TOLERANCE, seed: int = 0) -> tuple[torch.Tensor, int]:
    """Largest eigenvalue (K,) of each seed's symmetric operator, and the products it took. Each seed stops when
    ``residual = beta_j * |last component of the top Ritz vector|`` is at most ``tolerance * |value|`` (an
    eigenvalue lies within ``residual`` of the Ritz value), or after ``size`` products (then it is exact up to
    rounding); a non-finite operator (a diverged seed) gives NaN."""
    start = torch.randn(size, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(device)
    basis = [(start / start.norm()).expand(seeds, size).clone()]
    diagonal: list[torch.Tensor] = []
    off_diagonal: list[torch.Tensor] = []
    value = torch.full((seeds,), float("nan"), dtype=torch.float64, device=device)
    done = torch.zeros(seeds, dtype=torch.bool, device=device)
    for step in range(size):
        product = hvp(basis[-1])
        diagonal.append((product * basis[-1]).sum(dim=1))
        stacked = torch.stack(basis, dim=1)  # (K, j + 1, n)
        for _ in range(2):  # full reorthogonalisation, twice (Kahan's rule)
            product = product - torch.einsum("kjn,kj->kn", stacked, torch.einsum("kjn,kn->kj", stacked, product))
        beta = product.norm(dim=1)
        tridiagonal = torch.diag_embed(torch.stack(diagonal, dim=1))
        if off_diagonal:
            offsets = torch.diag_embed(torch.stack(off_diagonal, dim=1), offset=1)
            tridiagonal = tridiagonal + offsets + offsets.transpose(1, 2)
        finite = torch.isfinite(tridiagonal).all(dim=(1, 2)) & torch.isfinite(beta)
        values, vectors = torch.linalg.eigh(torch.where(finite[:, None, None], tridiagonal, 0.0))
        top, residual = values[:, -1], beta * vectors[:, -1, -1].abs()
        stops = ~done & (~finite | (residual <= tolerance * top.abs().clamp_min(1e-30)) | (step == size - 1))
        value = torch.where(stops, torch.where(finite, top, float("nan")), value)
        done |= stops
        if done.all():
            return value, step + 1
        off_diagonal.append(beta)
        basis.append(product / beta.clamp_min(1e-300)[:, None])
    return value, size


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
    if method == "lanczos":
        products = HessianProducts(loss_fn, params, num_batches)
        return lanczos(products, products.seeds, products.size, params[0].device)[0].tolist()
    if method == "exact":
        hessian = exact_hessian(loss_fn, params, num_batches)
        finite = torch.isfinite(hessian).all(dim=(1, 2))
        symmetric = torch.nan_to_num((hessian + hessian.transpose(1, 2)) / 2, nan=0.0, posinf=0.0, neginf=0.0)
        return torch.where(finite, torch.linalg.eigvalsh(symmetric)[:, -1], float("nan")).tolist()
    products = HessianProducts(loss_fn, params, num_batches)
    return power_iteration(products, products.seeds, products.size, params[0].device, iterations).tolist()
