"""PC-DARTS's partial channel connections (Xu et al., ICLR 2020, Section 3.1; ``MixedOp`` of the reference), as
the spaces' supernets build them when a searcher asks (``partial_channels`` K): the ops see the first 1/K of the
channels, the rest bypass them, and ``rejoin`` puts them back together, shuffled."""
from __future__ import annotations

import torch


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """The reference's ``channel_shuffle``: channels as (groups, C / groups), transposed, flattened."""
    return x.unflatten(1, (groups, -1)).transpose(1, 2).flatten(1, 2)


def rejoin(mixed: torch.Tensor, bypass: torch.Tensor, groups: int) -> torch.Tensor:
    """The ops' output on the first 1/K channels, the bypassed rest appended, shuffled in K groups (K = 1: the
    output itself)."""
    return channel_shuffle(torch.cat([mixed, bypass], dim=1), groups) if groups > 1 else mixed
