"""NAS-Bench-1shot1 spaces 1-3 as the runner sees a search space; the derived cell is looked up in NB101.

Discretisation (the 1shot1 reference): the top op of each node, the top-k parents of each node with a choice
and of the output (k = the space's parent count), as an NB101 spec; pruned, hashed with the NB101 fingerprint and
looked up. The installed NB101 table is partial here, so a cell it does not hold is recorded as such (null
accuracies, ``in_table: false``) and each run's summary states its look-up coverage. Rank and regret are taken
among the cells of the space that the installed table holds, for each look-up it has a value for (the partial
table has validation accuracy only; test accuracy, and so the test regret the 1shot1 paper plots, needs the
official table). The record's ``arch_index`` is the NB101 hash; skip counts are 0 by construction.

Protocol of the 1shot1 reference DARTS (``paper_overrides``): batch 96, 3 stacks of 3 cells, 16 channels, weight
decay 3e-4, momentum without Nesterov, 50 epochs; the data split is NB201's 25k/25k halves (the reference takes
the first and second half of the training set: a documented difference).
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from benchmarks.nb101.graph import SHORT, depth, fingerprint, parse_cell, prune
from benchmarks.nb101.table import load_table, space_hashes
from benchmarks.oneshot1.space import CHOICE_OPS, DEFINITIONS, OneShot1Definition
from benchmarks.search_space import LookupField, SearchSpace
from foundation.cell_metrics import rank_percentile
from foundation.errors import UserError
from foundation.records import CellDescription

if TYPE_CHECKING:  # torch is loaded by the search, not by the report that reads this class's declarations
    import torch

    from benchmarks.oneshot1.supernet import OneShot1Supernet

Genotype = tuple[tuple[str, ...], tuple[tuple[int, ...], ...]]  # (op per node, parents per node and output)
LONG_TO_SHORT = {long: short for short, long in SHORT.items()}
LOOKUP_COLUMNS = {"nb101_valid": "valid_acc", "nb101_test": "test_acc"}  # record key -> NB101 table column


class OneShot1Space(SearchSpace):
    definition: ClassVar[OneShot1Definition]
    structure = {"cells_per_stage": 3}  # 3 stacks of 3 cells, in every preset
    paper_overrides = {"batch_size": 96, "w_weight_decay": 3e-4, "w_nesterov": False}
    # NB101 test when the installed table has it (the official one), else validation (the partial tables)
    metrics = (("nb101_test", "NB101 test accuracy (%)"), ("nb101_valid", "NB101 validation accuracy (%)"))
    plots_regret = True  # as the NAS-Bench-1shot1 paper plots it, on a log axis
    lookup_fields = (LookupField("matrix", "NB101 adjacency matrix, rows of 0/1 joined by ';'"),
                     LookupField("ops", "NB101 op names joined by ',' (long names or in,c3,c1,mp,out)"))

    def __init__(self, data_dir: Path) -> None:
        super().__init__(data_dir)
        self.table = load_table(data_dir)
        rows = [self.table.lookup(h) for h in space_hashes(Path(data_dir), self.definition.number)]
        self.sorted_by_key = {key: tuple(sorted(row[column] for row in rows if row[column] is not None))
                              for key, column in LOOKUP_COLUMNS.items()}

    def table_provenance(self) -> dict[str, Any]:
        return {"kind": self.table.kind, "files": self.table.files}

    def cell_values(self) -> dict[str, tuple[float, ...]]:
        """The space's distinct cells (NB101 hashes) that the installed table holds a value for."""
        return self.sorted_by_key

    @classmethod
    def build_supernet(cls, channels: int, cells_per_stage: int, track_running_stats: bool, num_classes: int,
                       partial_channels: int = 1) -> OneShot1Supernet:
        """PC-DARTS's partial channels, when a searcher asks for them (no edge normalisation: ``OneShot1Supernet``)."""
        from benchmarks.oneshot1.supernet import OneShot1Supernet

        return OneShot1Supernet(cls.definition, channels, cells_per_stage, num_classes, partial_channels)

    @classmethod
    def _parent_choices(cls, weights: list[torch.Tensor]) -> list[tuple[int, ...]]:
        """Parents of nodes 1..n and of the output: fixed where there is no choice, else the top-k."""
        output_weights, node_weights = weights[1], iter(weights[2:])
        parents = []
        for vertex, (count, choice) in enumerate(zip(cls.definition.node_parents,
                                                     cls.definition.nodes_with_parent_choice()), start=1):
            mix = next(node_weights) if choice else None
            parents.append(tuple(range(vertex)) if mix is None else tuple(sorted(mix.topk(count).indices.tolist())))
        parents.append(tuple(sorted(output_weights.topk(cls.definition.output_parents).indices.tolist())))
        return parents

    @classmethod
    def derive(cls, derivation_weights: list[torch.Tensor]) -> Genotype:
        ops = tuple(CHOICE_OPS[i] for i in derivation_weights[0].argmax(dim=-1).tolist())
        return ops, tuple(cls._parent_choices(derivation_weights))

    @classmethod
    def decisions(cls, weights: list[np.ndarray]) -> list[tuple[np.ndarray, int]]:
        """The op of each node, then the top-k parents of the output and of each node with a choice (as
        ``_parent_choices``)."""
        op_weights, output_weights, *node_weights = (np.asarray(w) for w in weights)
        counts = [count for count, choice in zip(cls.definition.node_parents,
                                                 cls.definition.nodes_with_parent_choice()) if choice]
        return [*((row, 1) for row in op_weights), (output_weights, cls.definition.output_parents),
                *zip(node_weights, counts)]

    @classmethod
    def discrete_weights(cls, weights: list[torch.Tensor]) -> list[torch.Tensor]:
        """One-hot op per node, and 0/1 masks on the chosen parents (of choice nodes and the output)."""
        import torch
        from torch.nn import functional as F

        op_weights, output_weights, *node_weights = weights
        parents = cls._parent_choices(weights)
        chosen_nodes = [p for p, choice in zip(parents, cls.definition.nodes_with_parent_choice()) if choice]

        def mask(like: torch.Tensor, indices: tuple[int, ...]) -> torch.Tensor:
            out = torch.zeros_like(like)
            out[list(indices)] = 1
            return out

        return [F.one_hot(op_weights.argmax(dim=-1), op_weights.shape[-1]).to(op_weights.dtype),
                mask(output_weights, parents[-1]), *[mask(w, p) for w, p in zip(node_weights, chosen_nodes)]]

    def describe(self, genotype: Genotype) -> CellDescription:
        ops, parents = genotype
        cell = self.definition.cell(ops, parents)
        shown = f"{cell.matrix_str()} {','.join(LONG_TO_SHORT[op] for op in cell.ops)}"
        pruned = prune(cell)
        if pruned is None:  # cannot happen with top-k parents (every node has one), kept for safety
            return CellDescription(genotype=shown, depth=0, skip_count=0)
        row = self.table.lookup(fingerprint(pruned))
        lookup = {key: row[column] for key, column in LOOKUP_COLUMNS.items()}
        known = {key: value for key, value in lookup.items() if value is not None}
        return CellDescription(
            genotype=shown, arch_index=row["hash"], in_table=row["in_table"], lookup=lookup,
            rank_percentile={k: rank_percentile(self.sorted_by_key[k], v) for k, v in known.items()} or None,
            regret={k: self.sorted_by_key[k][-1] - v for k, v in known.items()} or None,
            depth=depth(pruned), skip_count=0)

    @classmethod
    def lookup_cell(cls, data_dir: Path, matrix: str = "", ops: str = "") -> dict[str, Any]:
        """The cell's NB101 look-up, and whether it is a member of this space (by its NB101 hash)."""
        cell = prune(parse_cell(matrix, ops))
        if cell is None:
            raise UserError(f"bad NB101 cell {matrix!r}: the output is not reachable from the input")
        cell_hash = fingerprint(cell)
        row = load_table(data_dir).lookup(cell_hash)
        accuracy = {key: row[column] for key, column in LOOKUP_COLUMNS.items()} if row["in_table"] else None
        return {"space": cls.name, "id": f"{row['hash']}  {cell.matrix_str()}  {','.join(cell.ops)}", **row,
                "pruned_matrix": cell.matrix_str(), "pruned_ops": list(cell.ops), "depth": depth(cell),
                "skip_count": 0, "in_space": cell_hash in space_hashes(data_dir, cls.definition.number),
                "accuracy": accuracy}


def _space_class(number: int) -> type[OneShot1Space]:
    definition = DEFINITIONS[number]
    return type(f"OneShot1Space{number}", (OneShot1Space,), {
        "definition": definition, "name": f"1shot1-s{number}",
        "summary": f"NAS-Bench-1shot1 space {number} ({definition.num_nodes} nodes, parents "
                   f"{'/'.join(map(str, definition.node_parents))}, output {definition.output_parents}); "
                   "NB101 look-ups"})


OneShot1Space1, OneShot1Space2, OneShot1Space3 = (_space_class(n) for n in (1, 2, 3))
