"""NB201 as the runner sees a search space: build the supernet, derive the genotype, look it up."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from benchmarks.nb201 import space
from benchmarks.nb201.supernet import NB201Supernet
from benchmarks.nb201.table import NB201Table, load_table


class NB201Space:
    name = "nb201"
    summary = "NAS-Bench-201 cell space (6 edges x 5 ops), searched on CIFAR-10, looked up on 3 datasets"
    num_classes = 10
    structure: dict[str, Any] = {}  # the run defaults are NB201's supernet and protocol
    paper_overrides: dict[str, Any] = {}

    def __init__(self, data_dir: Path) -> None:
        self.table: NB201Table = load_table(data_dir)

    @classmethod
    def build_supernet(cls, channels: int, cells_per_stage: int, track_running_stats: bool) -> NB201Supernet:
        return NB201Supernet(channels, cells_per_stage, cls.num_classes, track_running_stats)

    @staticmethod
    def derive(derivation_weights: list[torch.Tensor]) -> space.Genotype:
        """Argmax over all five ops of each edge, ``none`` included (the NB201 reference's ``genotype()``)."""
        (edge_weights,) = derivation_weights
        return tuple(space.OPS[i] for i in edge_weights.argmax(dim=-1).tolist())

    @staticmethod
    def discrete_weights(weights: list[torch.Tensor]) -> list[torch.Tensor]:
        """Mixing weights of the derived cell: one-hot at each edge's argmax."""
        return [torch.nn.functional.one_hot(w.argmax(dim=-1), w.shape[-1]).to(w.dtype) for w in weights]

    def describe(self, genotype: space.Genotype) -> dict[str, Any]:
        """The per-epoch record fields of a genotype: string, table index, look-ups with their rank among all
        15,625 cells and regret, depth, skips."""
        arch = space.genotype_to_str(genotype)
        index = self.table.index_of[arch]
        return {"genotype": arch, "arch_index": index, "in_table": True, "lookup": self.table.accuracy(index),
                "rank_percentile": self.table.rank_percentile(index), "regret": self.table.regret(index),
                "depth": space.depth(genotype), "skip_count": space.skips(genotype)}
