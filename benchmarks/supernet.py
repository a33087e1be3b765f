"""The contract between a search space's supernet and the searchers (``Supernet``), stated once.

A space's ``build_supernet`` returns a module with:

- ``arch_parameters()`` / ``weight_parameters()``: the architecture parameters (one tensor per kind of choice)
  and everything else;
- ``op_choice_parameters``: which of ``arch_parameters()`` choose an op per edge or node (GDAS samples those hard,
  the rest relaxed; SPOS draws them);
- ``forward(images, arch_weights, active=None)``: logits for mixing weights, one tensor per architecture
  parameter; ``active``, 0/1 masks of the same shapes, marks the ops a sampled forward runs (GDAS).

Optional features, which a searcher asks for and a space may lack (``OPTIONAL_FEATURES``): ``normalised_edges``
(edge scales from one parameter per edge, PC-DARTS's edge normalisation), ``with_identity`` (mixing weights that
also pass a multiple of the input on every edge, DARTS-'s auxiliary skip) and ``per_cell_weights`` (the number of
search cells, each of which can mix with its own copy of the op weights: Lambda-DARTS). Searchers reach a
supernet only through the seed stack (``searchers.seeds.SeedStack``), which forwards these.
"""
from __future__ import annotations

from typing import Any, Callable, Protocol, runtime_checkable

import torch
from torch import nn

from foundation.errors import UserError

OPTIONAL_FEATURES = {
    "normalised_edges": "edge scales from one parameter per edge (PC-DARTS's edge normalisation)",
    "with_identity": "an identity op on every edge to add an auxiliary skip to (DARTS-)",
    "per_cell_weights": "op-mixing weights per search cell (Lambda-DARTS)",
}


@runtime_checkable
class Supernet(Protocol):
    op_choice_parameters: tuple[int, ...]

    def arch_parameters(self) -> list[nn.Parameter]: ...

    def weight_parameters(self) -> list[nn.Parameter]: ...

    def forward(self, images: torch.Tensor, arch_weights: list[torch.Tensor],
                active: list[torch.Tensor] | None = None) -> torch.Tensor: ...


def required_feature(supernet: nn.Module, name: str, searcher: str) -> Callable[..., Any]:
    """The supernet's optional feature ``name``, or a UserError saying that ``searcher`` needs what this space's
    supernet lacks."""
    found = getattr(supernet, name, None)
    if not callable(found):
        raise UserError(f"{searcher} needs a supernet with {OPTIONAL_FEATURES[name]}; {type(supernet).__name__} "
                        "has none")
    return found
