"""The seed dimension: K independent searches (seeds) computed together, each tensor of a searcher holding all K.

Why: at NB201 sizes every kernel is tiny, so K seeds in the same kernels cost little more than one (issue 16).
How: ``SeedStack`` holds K copies of one supernet as stacked parameters and buffers (leading dimension K) and
runs the unchanged single-seed supernet under ``torch.func.vmap``; a convolution with per-seed weights becomes one
grouped convolution, BN keeps per-seed statistics. A searcher sees every tensor with the seed dimension first:
mixing weights (K, ...), batches (K, B, ...), losses (K,). Seeds never mix: the loss a searcher differentiates is
the sum of the per-seed losses, whose gradient in seed k's slice is seed k's own gradient; element-wise
optimisers (SGD, Adam) update each slice as they would a lone seed's tensor; norms (gradient clipping, DARTS's
finite-difference radius) are taken per seed with ``seed_norms``. A single search is K = 1 through the same code.

State dictionaries keep the single-seed format on disk: ``select_seed`` slices seed k out of any nested state (a
tensor with at least one dimension is stacked; a 0-d tensor, e.g. Adam's step count, and plain values are
shared) and ``stack_seeds`` puts K of them back together.
"""
from __future__ import annotations

import copy
from typing import Any, Callable, Sequence

import torch
from torch import nn
from torch.func import functional_call, stack_module_state
from torch.nn import functional as F

from benchmarks.supernet import Supernet, required_feature


class SampledWeights(list):
    """Mixing weights of a sampled forward (GDAS): a list of (K, ...) tensors as any ``arch_weights``, and
    ``active``, 0/1 masks of the same shapes: the supernet adds an inactive op's weight itself, not weight x
    output, to its edge (``forward(..., active)`` of a supernet that supports it)."""

    def __init__(self, weights: list[torch.Tensor], active: list[torch.Tensor]) -> None:
        super().__init__(weights)
        self.active = active


class SeedStack(nn.Module):
    """K copies of a supernet with the same structure (and their own values), computed together.

    ``forward(images, arch_weights)``: images (K, B, C, H, W), one batch per seed, or (B, C, H, W) shared by all
    seeds (the fixed evaluation batches); arch_weights a list of (K, ...) tensors (or ``SampledWeights``).
    Returns logits (K, B, classes). ``arch_parameters()`` / ``weight_parameters()`` are the supernet's, stacked;
    ``op_choice_parameters`` and the optional features (``feature``) are the supernet's (``benchmarks.supernet``)."""

    def __init__(self, supernets: Sequence[Supernet], channels_last: bool = False) -> None:
        super().__init__()
        params, buffers = stack_module_state(list(supernets))
        self.net = copy.deepcopy(supernets[0])
        for name, value in [*params.items(), *buffers.items()]:
            owner, _, leaf = name.rpartition(".")
            module = self.net.get_submodule(owner)
            if name in params:
                value = value.detach().clone()
                if channels_last and value.dim() == 5:
                    value = per_seed_channels_last(value)
                setattr(module, leaf, nn.Parameter(value))
            else:
                module.register_buffer(leaf, value.clone())

    @property
    def seeds(self) -> int:
        return next(self.net.parameters()).shape[0]

    @property
    def op_choice_parameters(self) -> tuple[int, ...]:
        return tuple(self.net.op_choice_parameters)

    def feature(self, name: str, searcher: str) -> Callable[..., Any]:
        """The supernet's optional feature ``name`` (``benchmarks.supernet.OPTIONAL_FEATURES``), or a UserError
        saying that ``searcher`` needs what this space's supernet lacks."""
        return required_feature(self.net, name, searcher)

    def arch_parameters(self) -> list[nn.Parameter]:
        return self.net.arch_parameters()

    def weight_parameters(self) -> list[nn.Parameter]:
        return self.net.weight_parameters()

    def forward(self, images: torch.Tensor, arch_weights: list[torch.Tensor]) -> torch.Tensor:
        state = {**dict(self.net.named_parameters()), **dict(self.net.named_buffers())}
        extra = (list(arch_weights.active),) if isinstance(arch_weights, SampledWeights) else ()
        arch_weights = list(arch_weights)  # a plain list: vmap's pytrees do not know subclasses

        def one_seed(seed_state: dict[str, torch.Tensor], seed_images: torch.Tensor,
                     seed_weights: list[torch.Tensor], *seed_active: list[torch.Tensor]) -> torch.Tensor:
            return functional_call(self.net, seed_state, (seed_images, seed_weights, *seed_active))

        shared_images = images.dim() == 4
        if self.seeds == 1:  # one seed: its slices, without vmap's dispatch (10 % of a CPU step at paper size)
            seed_images = images if shared_images else images[0]
            return one_seed({name: value[0] for name, value in state.items()}, seed_images,
                            *[[tensor[0] for tensor in tensors] for tensors in (arch_weights, *extra)])[None]
        return torch.vmap(one_seed, in_dims=(0, None if shared_images else 0, 0, *[0] * len(extra)))(
            state, images, arch_weights, *extra)

    def seed_state_dict(self, seed: int) -> dict[str, torch.Tensor]:
        """Seed ``seed``'s supernet state dictionary, as the single supernet's ``state_dict()``."""
        return {name: value[seed].clone() for name, value in self.net.state_dict().items()}

    def load_seed_state_dicts(self, states: Sequence[dict[str, torch.Tensor]]) -> None:
        self.net.load_state_dict({name: torch.stack([s[name] for s in states]) for name in states[0]})


def per_seed_channels_last(weights: torch.Tensor) -> torch.Tensor:
    """Stacked convolution weights (K, out, in, kh, kw) laid out so that every seed's slice, and the (K * out, in,
    kh, kw) grouped weight vmap makes of them, is ``channels_last``: the layout fast CPU and cuDNN convolutions
    prefer (docs/timings.md)."""
    return weights.permute(0, 1, 3, 4, 2).contiguous().permute(0, 1, 4, 2, 3)


def seed_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-seed mean cross-entropy, (K,): logits (K, B, classes), labels (K, B) or (B,) shared."""
    return torch.vmap(F.cross_entropy, in_dims=(0, 0 if labels.dim() == 2 else None))(logits, labels)


def per_seed(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(K,) values shaped to broadcast over a (K, ...) tensor."""
    return values.view(-1, *[1] * (like.dim() - 1))


def seed_norms(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """The 2-norm over all ``tensors`` of each seed, (K,), in ``clip_grad_norm_``'s order: per tensor, then over
    the tensors' norms."""
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(t.flatten(1), dim=1) for t in tensors]),
                                    dim=0)


def assign_gradients(tensors: Sequence[torch.Tensor], grads: Sequence[torch.Tensor]) -> None:
    """Set each tensor's ``.grad``, in the tensor's own memory layout (as ``backward`` accumulates it): a gradient
    from ``autograd.grad`` may come with other strides (the classifier's: transposed), and the fused optimisers
    of a captured step read a gradient as if it had its parameter's strides (measured: torch 2.13's CPU fused SGD)."""
    for tensor, grad in zip(tensors, grads, strict=True):
        tensor.grad = grad if grad.stride() == tensor.stride() else torch.empty_like(tensor).copy_(grad)


@torch.no_grad()
def clip_grad_norm_per_seed(parameters: Sequence[torch.Tensor], max_norm: float) -> torch.Tensor:
    """``nn.utils.clip_grad_norm_`` applied to each seed's gradients on their own; returns the (K,) norms."""
    grads = [p.grad for p in parameters if p.grad is not None]
    norms = seed_norms(grads)
    coefficient = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    for grad in grads:
        grad.mul_(per_seed(coefficient, grad))
    return norms


def select_seed(state: Any, seed: int) -> Any:
    """Seed ``seed``'s part of a nested state (dicts, lists, tuples of tensors and plain values)."""
    if isinstance(state, torch.Tensor):
        return state[seed].clone() if state.dim() else state.clone()
    if isinstance(state, dict):
        return {key: select_seed(value, seed) for key, value in state.items()}
    if isinstance(state, (list, tuple)):
        return type(state)(select_seed(value, seed) for value in state)
    return copy.deepcopy(state)


def stack_seeds(states: Sequence[Any]) -> Any:
    """The inverse of ``select_seed`` over all seeds: per-seed states (same structure) into one. A 0-dim tensor is
    one shared by the seeds (Adam's step count), so a per-seed scalar must be stored as (K, 1), not (K,)."""
    first = states[0]
    if isinstance(first, torch.Tensor):
        return torch.stack(list(states)) if first.dim() else first.clone()
    if isinstance(first, dict):
        return {key: stack_seeds([s[key] for s in states]) for key in first}
    if isinstance(first, (list, tuple)):
        return type(first)(stack_seeds(parts) for parts in zip(*states))
    return copy.deepcopy(first)
