"""NB101 cells as (adjacency matrix, op list): validation, pruning, the module fingerprint, depth.

A cell has at most 7 vertices; vertex 0 is the input, the last the output, the matrix is strictly
upper triangular (a DAG in topological order). Pruning removes vertices that are not on an input->output path,
as NB101's ``ModelSpec`` does; the fingerprint is NB101's ``hash_module`` (a Weisfeiler-Lehman style iteration
of MD5 over (out-degree, in-degree, label) seeds), which keys the benchmark's table.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

from foundation.cell_metrics import cell_depth
from foundation.errors import UserError

MAX_VERTICES = 7  # NB101 also caps edges at 9; not enforced, since published sample rows exceed it unpruned
OPS = ("input", "conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3", "output")
SHORT = {"in": "input", "c3": "conv3x3-bn-relu", "c1": "conv1x1-bn-relu", "mp": "maxpool3x3", "out": "output"}
LABELS = {"input": -1, "output": -2, "conv3x3-bn-relu": 0, "conv1x1-bn-relu": 1, "maxpool3x3": 2}


@dataclass(frozen=True)
class Cell:
    matrix: tuple[tuple[int, ...], ...]
    ops: tuple[str, ...]

    @property
    def edges(self) -> list[tuple[int, int, str]]:
        return [(i, j, "edge") for i, row in enumerate(self.matrix) for j, bit in enumerate(row) if bit]

    def matrix_str(self) -> str:
        return ";".join("".join(str(b) for b in row) for row in self.matrix)


def parse_cell(matrix: str, ops: str) -> Cell:
    """``0110;0001;0001;0000`` and ``in,c3,mp,out`` (long or short op names); a UserError names a bad value."""
    rows = [row.strip() for row in matrix.strip().split(";")]
    if not rows or any(not row or set(row) - {"0", "1"} for row in rows):
        raise UserError(f"bad NB101 matrix {matrix!r}: rows of 0/1 joined by ';'")
    names = [SHORT.get(name.strip(), name.strip()) for name in ops.split(",")]
    unknown = [n for n in names if n not in OPS]
    if unknown:
        raise UserError(f"bad NB101 ops {ops!r}: unknown op {unknown[0]!r} "
                        f"(ops: {', '.join(OPS)} or {', '.join(SHORT)})")
    return validate(Cell(tuple(tuple(int(b) for b in row) for row in rows), tuple(names)))


def validate(cell: Cell) -> Cell:
    n = len(cell.matrix)
    shown = cell.matrix_str()
    if any(len(row) != n for row in cell.matrix):
        raise UserError(f"bad NB101 matrix {shown!r}: not square")
    if not 2 <= n <= MAX_VERTICES:
        raise UserError(f"bad NB101 matrix {shown!r}: {n} vertices, must be 2..{MAX_VERTICES}")
    if any(cell.matrix[i][j] for i in range(n) for j in range(i + 1)):
        raise UserError(f"bad NB101 matrix {shown!r}: must be strictly upper triangular (a DAG in topological order)")
    if len(cell.ops) != n:
        raise UserError(f"bad NB101 ops {','.join(cell.ops)!r}: {len(cell.ops)} ops for {n} vertices")
    if cell.ops[0] != "input" or cell.ops[-1] != "output" or "input" in cell.ops[1:] or "output" in cell.ops[:-1]:
        raise UserError(f"bad NB101 ops {','.join(cell.ops)!r}: input first, output last, nowhere else")
    return cell


def prune(cell: Cell) -> Cell | None:
    """Drop vertices off every input->output path; None when the output is cut off from the input."""
    n = len(cell.matrix)
    forward, backward = {0}, {n - 1}
    for j in range(1, n):
        if any(cell.matrix[i][j] for i in forward):
            forward.add(j)
    for i in range(n - 2, -1, -1):
        if any(cell.matrix[i][j] for j in backward):
            backward.add(i)
    keep = sorted(forward & backward)
    if n - 1 not in forward:
        return None
    return Cell(tuple(tuple(cell.matrix[i][j] for j in keep) for i in keep), tuple(cell.ops[i] for i in keep))


def fingerprint(cell: Cell) -> str:
    """NB101's module hash of a pruned cell."""
    n = len(cell.matrix)
    in_degree = [sum(cell.matrix[i][j] for i in range(n)) for j in range(n)]
    out_degree = [sum(row) for row in cell.matrix]
    hashes = [hashlib.md5(str((out_degree[v], in_degree[v], LABELS[cell.ops[v]])).encode()).hexdigest()
              for v in range(n)]
    for _ in range(n):
        hashes = [hashlib.md5(("".join(sorted(hashes[w] for w in range(n) if cell.matrix[w][v])) + "|"
                               + "".join(sorted(hashes[w] for w in range(n) if cell.matrix[v][w])) + "|"
                               + hashes[v]).encode()).hexdigest() for v in range(n)]
    return hashlib.md5(str(sorted(hashes)).encode()).hexdigest()


def depth(pruned: Cell) -> int:
    """Edges on the longest input->output path of the pruned cell (TSE paper, Section 3.3)."""
    return cell_depth(len(pruned.matrix), pruned.edges)
