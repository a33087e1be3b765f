"""The three NAS-Bench-1shot1 cell spaces and their discretisation into NB101 cells.

Each space has n choice nodes (an op from conv3x3-bn-relu, conv1x1-bn-relu, maxpool3x3 each) and a fixed
number of parents per node, chosen among the earlier vertices (the input is vertex 0; node 1 always has the
input as its only parent); the output takes its own fixed number of parents. Space 1: 4 nodes with 1/2/2/2
parents, output 2; space 2: 4 nodes with 1/1/2/2, output 3; space 3: 5 nodes with 1/1/1/2/2, output 2. Spaces 1
and 2 give a 6-vertex graph, made a 7-vertex NB101 spec by inserting an unused conv1x1 vertex before the output,
as the 1shot1 reference does (it is pruned away before hashing). See ``../shared/data/nb101/README.md``.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Iterator, Sequence

from benchmarks.nb101.graph import Cell

CHOICE_OPS: tuple[str, ...] = ("conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3")


@dataclass(frozen=True)
class OneShot1Definition:
    number: int
    node_parents: tuple[int, ...]  # parents of choice nodes 1..n
    output_parents: int

    @property
    def num_nodes(self) -> int:
        return len(self.node_parents)

    def parent_counts(self) -> tuple[int, ...]:
        """Parents of each vertex that chooses them: choice nodes 1..n, then the output."""
        return (*self.node_parents, self.output_parents)

    def nodes_with_parent_choice(self) -> tuple[bool, ...]:
        """Per choice node: whether its parents are a choice (more candidates than parents). Node 1 never is;
        in space 1 node 2 takes both earlier vertices, so neither is it."""
        return tuple(len(self.candidates(v)) > k for v, k in enumerate(self.node_parents, start=1))

    def candidates(self, vertex: int) -> range:
        """Possible parents of vertex ``vertex`` (1..n+1): all earlier vertices."""
        return range(vertex)

    def cell(self, ops: Sequence[str], parents: Sequence[Sequence[int]]) -> Cell:
        """The NB101 cell of one configuration: an op per choice node, parents per node and for the output."""
        size = self.num_nodes + 2
        matrix = [[0] * size for _ in range(size)]
        for vertex, chosen in enumerate(parents, start=1):
            for parent in chosen:
                matrix[parent][vertex] = 1
        names = ["input", *ops, "output"]
        if size == 6:  # spaces 1 and 2: insert the unused conv1x1 vertex at index 5
            matrix = [row[:5] + [0] + row[5:] for row in matrix]
            matrix.insert(5, [0] * 7)
            names.insert(5, "conv1x1-bn-relu")
        return Cell(tuple(tuple(row) for row in matrix), tuple(names))

    def configurations(self) -> Iterator[tuple[tuple[str, ...], tuple[tuple[int, ...], ...]]]:
        """Every (ops, parents) configuration of the space."""
        parent_choices = [list(itertools.combinations(self.candidates(v), k))
                          for v, k in enumerate(self.parent_counts(), start=1)]
        for parents in itertools.product(*parent_choices):
            for ops in itertools.product(CHOICE_OPS, repeat=self.num_nodes):
                yield ops, parents


DEFINITIONS = {
    1: OneShot1Definition(1, (1, 2, 2, 2), 2),
    2: OneShot1Definition(2, (1, 1, 2, 2), 3),
    3: OneShot1Definition(3, (1, 1, 1, 2, 2), 2),
}
