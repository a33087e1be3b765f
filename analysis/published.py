"""The papers' published numbers (``published.json``), the reference a reproduction is compared with.

Each row: paper, table, method, the harness searcher that reproduces it (or null for methods the harness does not
implement), space, epochs, its search protocol (``searched_on``: ``cifar10``, every column from a CIFAR-10 search;
``each``, each dataset's columns from searches on that dataset, see the file's note_protocols), and per look-up
key the published (mean, std). Rows whose every std is 0 and whose
cell is known carry ``lookup_arch``: their values are pure table look-ups, which CI checks against the installed
table (the DARTS rows of SD-DARTS Table 4 are the all-skip cell, the TSE-DrNAS row the all-conv3x3 cell).
Rows with ``checked`` false are shown in tables but not used by the regression check: the papers' DARTS rows on
NB201 contradict each other (SD-DARTS: all-skip collapse; TSE: 61 % on CIFAR-100), and the check follows SD-DARTS.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

PUBLISHED_FILE = Path(__file__).with_name("published.json")


@dataclass(frozen=True)
class PublishedRow:
    paper: str
    table: str
    method: str
    searcher: str | None
    space: str
    values: dict[str, tuple[float, float]]  # look-up key -> (mean, std)
    epochs: int | None = None
    searched_on: str = "cifar10"  # a dataset, or "each"
    lookup_arch: str | None = None
    checked: bool = True  # compared with our runs in ``harness report --check`` (see the file's note_checked)


def searched_dataset(space: str, key: str, searched_on: str) -> str:
    """The dataset whose searches a published column ``key`` of ``space`` reports under the protocol
    ``searched_on``: that dataset, or (``each``) the one the look-up key measures."""
    from benchmarks import get_space

    return get_space(space).lookup_dataset(key) if searched_on == "each" else searched_on


@lru_cache(maxsize=1)
def _published() -> dict:
    return json.loads(PUBLISHED_FILE.read_text())


@lru_cache(maxsize=1)
def published_rows() -> tuple[PublishedRow, ...]:
    return tuple(PublishedRow(**{**row, "values": {k: (v[0], v[1]) for k, v in row["values"].items()}})
                 for row in _published()["rows"])


def table_layouts() -> list[dict]:
    """The papers' table layouts (``tables`` in the file): name, paper, table, title, protocol, [space, key,
    header]s."""
    return _published()["tables"]


def lookup_discrepancies(data_dir: Path) -> list[str]:
    """Published values that are one table look-up of a known cell (``lookup_arch``, as the row's space writes a
    genotype) but that the installed table does not reproduce to the published two decimals; empty when the
    look-up layer agrees. A missing table is a UserError."""
    from benchmarks import get_space

    problems = []
    spaces = {}
    for row in published_rows():
        if not row.lookup_arch:
            continue
        if row.space not in spaces:
            spaces[row.space] = get_space(row.space)(data_dir)
        accuracy = spaces[row.space].lookup_genotype(row.lookup_arch)
        problems += [f"{row.paper} {row.table} {row.method} {key}: published {mean:.2f}, "
                     f"table gives {accuracy[key]:.2f}" for key, (mean, _) in row.values.items()
                     if round(accuracy[key], 2) != mean]
    return problems
