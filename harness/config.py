"""A run configuration from names: the space and the searcher resolved (built-in, installed or
``package.module:Class``), then the one validation of ``foundation.run_config``."""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import torch
from torch import nn

from benchmarks import get_space
from benchmarks.images import Dataset, get_dataset
from benchmarks.search_space import SearchSpace
from benchmarks.supernet import required_feature
from foundation import run_config
from foundation.errors import UserError
from foundation.plugins import qualified_name
from foundation.run_config import RunConfig
from searchers import get_searcher
from searchers.searcher import Searcher


@dataclass(frozen=True)
class Experiment:
    """A validated configuration with the classes that run it."""

    config: RunConfig
    space: type[SearchSpace]
    searcher: type[Searcher]

    @cached_property
    def preset(self) -> RunConfig:
        return run_config.preset_config(self.space, self.searcher, self.config.preset)

    @property
    def name(self) -> str:
        """The config folder's name: the preset, or the preset and a hash of the configuration."""
        return run_config.config_name(self.config, self.preset)

    @property
    def overrides(self) -> dict[str, Any]:
        """What ``--epochs`` and ``--set`` changed from the preset (stored in ``config.json`` for the report)."""
        return run_config.overrides(self.config.to_dict(), self.preset.to_dict())

    @property
    def dataset(self) -> Dataset:
        return get_dataset(self.config.dataset)

    def build_supernet(self) -> nn.Module:
        """The space's supernet at the configured size, its classifier sized for the dataset searched on."""
        config = self.config
        features = self.searcher.supernet_features(self.searcher.Options(**config.searcher_options))
        try:
            return self.space.build_supernet(config.channels, config.cells_per_stage, config.track_running_stats,
                                             self.dataset.num_classes, **features)
        except TypeError as exc:
            if not features:
                raise
            raise UserError(f"searcher {config.searcher!r} needs supernet features {features} that space "
                            f"{config.space!r} does not have ({exc})") from None

    def classes(self) -> dict[str, str]:
        return {"space_class": qualified_name(self.space), "searcher_class": qualified_name(self.searcher)}


def configure(space: str, searcher: str, preset: str, assignments: list[str], epochs: int | None = None) -> Experiment:
    space_cls, searcher_cls = get_space(space), get_searcher(searcher)
    config = run_config.build_config(space_cls, searcher_cls, preset, assignments, epochs)
    experiment = Experiment(config, space_cls, searcher_cls)
    with torch.device("meta"):  # a supernet the space cannot build (a searcher's feature, a size) is said now
        supernet = experiment.build_supernet()
    for feature in searcher_cls.supernet_needs:
        required_feature(supernet, feature, config.searcher)
    return experiment


def build_config(space: str, searcher: str, preset: str, assignments: list[str],
                 epochs: int | None = None) -> RunConfig:
    return configure(space, searcher, preset, assignments, epochs).config
