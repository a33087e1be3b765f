"""NB201 as a ``SearchSpace``: build the supernet, derive the genotype, look it up, the ``lookup`` command."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from benchmarks.nb201 import space
from benchmarks.nb201.table import NB201Table, load_table
from benchmarks.search_space import LookupField, SearchSpace
from foundation.records import CellDescription

if TYPE_CHECKING:  # torch is loaded by the search, not by the report that reads this class's declarations
    import torch

    from benchmarks.nb201.supernet import NB201Supernet


class NB201Space(SearchSpace):
    name = "nb201"
    summary = ("NAS-Bench-201 cell space (6 edges x 5 ops), searched on CIFAR-10/100 or ImageNet16-120, "
               "looked up on all 3")
    datasets = ("cifar10", "cifar100", "imagenet16-120")
    metrics = (("cifar10_test", "CIFAR-10 test accuracy (%)"), ("cifar100_test", "CIFAR-100 test accuracy (%)"),
               ("imagenet16_test", "ImageNet16-120 test accuracy (%)"))
    has_skip_connections = True
    reference_name = "xautodl DARTS-V1 (TinyNetworkDarts)"
    default = True  # the run defaults are NB201's supernet and protocol: no structure or paper overrides
    lookup_fields = (LookupField("arch", "NB201 architecture string |op~0|+|op~0|op~1|+|op~0|op~1|op~2|",
                                 alternative=True),
                     LookupField("index", "NB201 index (0..15624)", int, alternative=True))

    def __init__(self, data_dir: Path) -> None:
        super().__init__(data_dir)
        self.table: NB201Table = load_table(data_dir)

    @classmethod
    def build_supernet(cls, channels: int, cells_per_stage: int, track_running_stats: bool, num_classes: int,
                       partial_channels: int = 1, edge_normalisation: bool = False) -> NB201Supernet:
        """PC-DARTS's features, when a searcher asks for them: ``NB201Supernet``."""
        from benchmarks.nb201.supernet import NB201Supernet

        return NB201Supernet(channels, cells_per_stage, num_classes, track_running_stats, partial_channels,
                             edge_normalisation)

    @classmethod
    def lookup_dataset(cls, key: str) -> str:
        """``cifar100_test`` -> ``cifar100``: the look-up keys name the dataset first (``cifar10_valid`` is NB201's
        ``cifar10-valid``, a CIFAR-10 search's)."""
        prefix = key.split("_")[0]
        return next(name for name in cls.datasets if name.replace("-120", "") == prefix)

    def table_provenance(self) -> dict[str, Any]:
        return self.table.provenance

    def cell_values(self) -> dict[str, tuple[float, ...]]:
        """All 15,625 cells (isomorphic duplicates included, as a uniformly drawn cell string would be)."""
        return self.table.accuracies

    @staticmethod
    def derive(derivation_weights: list[torch.Tensor]) -> space.Genotype:
        """Argmax over all five ops of each edge, ``none`` included (the NB201 reference's ``genotype()``); edge
        scales (PC-DARTS) do not matter: every edge is kept."""
        edge_weights = derivation_weights[0]
        return tuple(space.OPS[i] for i in edge_weights.argmax(dim=-1).tolist())

    @staticmethod
    def discrete_weights(weights: list[torch.Tensor]) -> list[torch.Tensor]:
        """Mixing weights of the derived cell: one-hot at each edge's argmax, every edge at scale 1."""
        import torch

        edge_weights, *edge_scales = weights
        one_hot = torch.nn.functional.one_hot(edge_weights.argmax(dim=-1), edge_weights.shape[-1])
        return [one_hot.to(edge_weights.dtype), *[torch.ones_like(scales) for scales in edge_scales]]

    def describe(self, genotype: space.Genotype) -> CellDescription:
        """String, table index, look-ups with their rank among all 15,625 cells and regret, depth, skips."""
        arch = space.genotype_to_str(genotype)
        index = self.table.index_of[arch]
        return CellDescription(genotype=arch, arch_index=index, in_table=True, lookup=self.table.accuracy(index),
                               rank_percentile=self.table.rank_percentile(index), regret=self.table.regret(index),
                               depth=space.depth(genotype), skip_count=space.skips(genotype))

    def lookup_genotype(self, genotype: str) -> dict[str, float | None]:
        return self.table.accuracy(self.table.index(genotype))

    @classmethod
    def lookup_cell(cls, data_dir: Path, arch: str | None = None, index: int | None = None) -> dict[str, Any]:
        table = load_table(data_dir)
        index = table.check_index(index) if index is not None else table.index(arch)
        genotype = space.str_to_genotype(table.arch_strs[index])
        return {"space": cls.name, "id": f"#{index}  {table.arch_strs[index]}", "arch_index": index,
                "arch_str": table.arch_strs[index], "depth": space.depth(genotype), "skip_count": space.skips(genotype),
                "accuracy": table.accuracy(index), "rank_percentile": table.rank_percentile(index),
                "regret": table.regret(index), "row": table.row(index)}

    @classmethod
    def reference_step(cls, config: Any, device: torch.device) -> Callable[[Any, Any], None]:
        from benchmarks.nb201.reference import reference_step

        return reference_step(config, device)
