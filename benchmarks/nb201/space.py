"""The NAS-Bench-201 cell space: 4 nodes, 6 edges, 5 ops; genotype <-> architecture string.

Edge order is NB201's: the edges into node 1, then node 2, then node 3, each by source (``1<-0, 2<-0, 2<-1,
3<-0, 3<-1, 3<-2``); it is the row order of the architecture parameters and the order of the string
``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``. A genotype is the tuple of six op names in that order.
"""
from __future__ import annotations

import itertools
import re

from foundation.cell_metrics import Edge, cell_depth, skip_count
from foundation.errors import UserError

OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
NUM_NODES = 4
EDGES: tuple[tuple[int, int], ...] = tuple((src, dst) for dst in range(1, NUM_NODES) for src in range(dst))
Genotype = tuple[str, ...]

_NODE_RE = re.compile(r"\|(?:[a-z0-9_]+~\d\|)+")


def genotype_to_str(genotype: Genotype) -> str:
    if len(genotype) != len(EDGES):
        raise ValueError(f"an NB201 genotype has {len(EDGES)} ops, got {len(genotype)}")
    parts = []
    for dst in range(1, NUM_NODES):
        ops = [f"{genotype[e]}~{src}" for e, (src, d) in enumerate(EDGES) if d == dst]
        parts.append("|" + "|".join(ops) + "|")
    return "+".join(parts)


def str_to_genotype(arch: str) -> Genotype:
    """Parse ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``; a malformed string is a UserError naming it."""
    nodes = arch.strip().split("+")
    if len(nodes) != NUM_NODES - 1:
        raise UserError(f"bad NB201 architecture string {arch!r}: expected {NUM_NODES - 1} nodes joined by '+'")
    genotype: list[str] = []
    for dst, node in enumerate(nodes, start=1):
        if not _NODE_RE.fullmatch(node):
            raise UserError(f"bad NB201 architecture string {arch!r}: node {node!r} is not of the form |op~i|...|")
        inputs = node.strip("|").split("|")
        if [int(item.split("~")[1]) for item in inputs] != list(range(dst)):
            raise UserError(f"bad NB201 architecture string {arch!r}: "
                            f"node {dst} must take inputs 0..{dst - 1} in order")
        for item in inputs:
            op = item.split("~")[0]
            if op not in OPS:
                raise UserError(f"bad NB201 architecture string {arch!r}: unknown op {op!r} (ops: {', '.join(OPS)})")
            genotype.append(op)
    return tuple(genotype)


def all_genotypes() -> list[Genotype]:
    return [tuple(ops) for ops in itertools.product(OPS, repeat=len(EDGES))]


def labelled_edges(genotype: Genotype) -> list[Edge]:
    return [(src, dst, op) for (src, dst), op in zip(EDGES, genotype)]


def depth(genotype: Genotype) -> int:
    return cell_depth(NUM_NODES, labelled_edges(genotype))


def skips(genotype: Genotype) -> int:
    return skip_count(labelled_edges(genotype))
