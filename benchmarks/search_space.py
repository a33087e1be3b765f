"""The ``SearchSpace`` interface: what the runner, the report and the command line ask of a search space.

A space is a class (built-in in a subpackage of ``benchmarks``, installed under the entry point group
``dnas_harness.spaces``, or ``package.module:Class``) that declares:

- ``name``, ``summary``, ``datasets`` it can search on (names of ``benchmarks.images``; the first is the default)
  and ``lookup_dataset`` (the dataset a look-up key measures, for per-dataset protocols), ``structure`` (run fields
  its supernet needs in every preset) and ``paper_overrides`` (its published search protocol, paper preset only);
- ``metrics``: its look-up keys with axis labels, in the order figures prefer them (the first the runs hold);
  ``has_skip_connections`` (figures draw skips per epoch) and ``plots_regret`` (regret per epoch, log axis);
- the search: ``build_supernet``, ``derive`` (mixing weights -> genotype), ``decisions`` (the choices ``derive``
  makes, for ``foundation.decisiveness``), ``discrete_weights`` (mixing weights of the derived cell) and ``describe``
  (genotype -> ``CellDescription``: look-ups, rank, regret, depth, skips); ``lookup_genotype`` (a genotype as records
  write it -> look-ups);
- one cell's ground truth, as ``harness lookup`` asks for it: ``lookup_fields`` (what names a cell; the command
  line makes flags of them) and ``lookup_cell``;
- optionally ``reference_step``, a published implementation's search step that ``harness bench`` times ours
  against, and its ``reference_name``.

An instance holds what ``describe`` needs (its table), loaded from the data directory.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar

import numpy as np

from foundation.errors import UserError
from foundation.records import CellDescription

if TYPE_CHECKING:  # the report reads spaces' declarations without loading torch
    import torch
    from torch import nn


@dataclass(frozen=True)
class LookupField:
    """One value that names a cell for ``lookup_cell``: a keyword, its help text and type. ``alternative`` fields
    are ways to name the same cell, of which exactly one is given; the others are all required."""

    name: str
    help: str
    type: type = str
    alternative: bool = False


class SearchSpace:
    name: ClassVar[str]
    summary: ClassVar[str]
    datasets: ClassVar[tuple[str, ...]] = ("cifar10",)
    structure: ClassVar[dict[str, Any]] = {}
    paper_overrides: ClassVar[dict[str, Any]] = {}
    metrics: ClassVar[tuple[tuple[str, str], ...]]
    has_skip_connections: ClassVar[bool] = False
    plots_regret: ClassVar[bool] = False
    default: ClassVar[bool] = False  # the space ``--space`` means when it is not given
    reference_name: ClassVar[str | None] = None

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)

    @classmethod
    def build_supernet(cls, channels: int, cells_per_stage: int, track_running_stats: bool, num_classes: int,
                       **features: Any) -> nn.Module:
        """The supernet; ``features`` are what a searcher asks of it (``Darts.supernet_features``, e.g. PC-DARTS's
        ``partial_channels``): a space that lacks one fails with a ``TypeError``, said as a bad setting."""
        raise NotImplementedError

    @classmethod
    def lookup_dataset(cls, key: str) -> str:
        """The dataset whose search a look-up key reports under a per-dataset protocol."""
        return cls.datasets[0]

    def table_provenance(self) -> dict[str, Any]:
        return {}

    @classmethod
    def derive(cls, derivation_weights: list[torch.Tensor]) -> Any:
        raise NotImplementedError

    @classmethod
    def decisions(cls, weights: list[np.ndarray]) -> list[tuple[np.ndarray, int]]:
        """The choices ``derive`` makes from these derivation weights (arrays, as records store them): each a
        weight vector and how many of its entries the derived cell keeps. Default: every row of the first tensor,
        its argmax (an edge's op, as in NB201); further tensors (edge scales) decide nothing."""
        first = np.asarray(weights[0])
        return [(row, 1) for row in first.reshape(-1, first.shape[-1])]

    @classmethod
    def discrete_weights(cls, weights: list[torch.Tensor]) -> list[torch.Tensor]:
        raise NotImplementedError

    def describe(self, genotype: Any) -> CellDescription:
        raise NotImplementedError

    def cell_values(self) -> dict[str, tuple[float, ...]]:
        """Per look-up key, the value of every cell the space's table holds: the population a uniformly random
        cell is drawn from (the tables' random-cell row and test) and whose maximum is the best cell's."""
        raise UserError(f"space {self.name!r} does not list its cells' look-ups")

    def lookup_genotype(self, genotype: str) -> dict[str, float | None]:
        """The look-ups of a cell written as the records write ``genotype`` (published rows name cells so)."""
        raise UserError(f"space {self.name!r} cannot look up a genotype string")

    lookup_fields: ClassVar[tuple[LookupField, ...]] = ()

    @classmethod
    def lookup_cell(cls, data_dir: Path, **values: Any) -> dict[str, Any]:
        """One cell, named by ``lookup_fields`` (an alternative not given is None): ``id``, ``depth``,
        ``skip_count``, ``accuracy`` (None: not in the table) and what else the space knows of it."""
        raise UserError(f"space {cls.name!r} offers no look-up of a single cell")

    @classmethod
    def reference_step(cls, config: Any, device: torch.device) -> Callable[[Any, Any], None]:
        raise UserError(f"no reference implementation to time against in space {cls.name!r}")

    @classmethod
    def metric(cls, records_have: Callable[[str], bool], dataset: str | None = None) -> tuple[str, str]:
        """The look-up key (and its axis label) figures show: the first of ``metrics`` that measures ``dataset``
        (the one searched on) and that the runs hold, else the first they hold."""
        ranked = sorted(cls.metrics, key=lambda metric: cls.lookup_dataset(metric[0]) != dataset)  # stable
        return next(((key, label) for key, label in ranked if records_have(key)), cls.metrics[0])
