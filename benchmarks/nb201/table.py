"""The NB201 ground-truth table (200-epoch accuracies of all 15,625 cells), indexed in memory.

The file is ``<data>/nb201/nb201_table.csv.gz`` (format: ``../shared/data/nb201/README.md``; produced for real
users by ``harness data import-nb201`` from the official files). It is parsed once per process; look-ups by
architecture string or index are dictionary/array reads.
"""
from __future__ import annotations

import csv
import gzip
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from benchmarks.nb201 import space
from foundation.cell_metrics import rank_percentile
from foundation.errors import UserError
from foundation.integrity import verified_sha256
from foundation.paths import require_file

TABLE_FILE = "nb201/nb201_table.csv.gz"
NUM_ARCHS = 15625
HOW_TO_GET = ("run `harness data import-nb201 FILE` on the official NAS-Bench-201/NATS-Bench file, "
              "or point --data-dir at a folder holding it")

# SHA-256 of the table files whose version is known -> that version (``../shared/data/nb201/README.md``)
KNOWN_VERSIONS = {"5219aae11dc442fe735b2a93d0b19eb9b0030f524d75d69cde1a5281b9cc4539":
                  "NATS-tss-v1_0-3ffb9 hp=200 (offline copy; reproduces the NB201 v1.0 numbers)"}
# Record key -> table column. Order is that of the SD-DARTS Table 4 / TSE Table 3 columns.
ACCURACY_COLUMNS: dict[str, str] = {
    "cifar10_valid": "acc200_cifar10valid_xvalid",
    "cifar10_test": "acc200_cifar10_oritest",
    "cifar100_valid": "acc200_cifar100_xvalid",
    "cifar100_test": "acc200_cifar100_xtest",
    "imagenet16_valid": "acc200_imagenet16_xvalid",
    "imagenet16_test": "acc200_imagenet16_xtest",
}
TABLE_COLUMNS: tuple[str, ...] = (
    "arch_index", "arch_str", "unique_str", *ACCURACY_COLUMNS.values(),
    "flops_M_cifar10", "flops_M_cifar100", "flops_M_imagenet16",
    "params_M_cifar10", "params_M_cifar100", "params_M_imagenet16",
)


@dataclass(frozen=True)
class NB201Table:
    arch_strs: tuple[str, ...]
    index_of: dict[str, int]
    accuracies: dict[str, tuple[float, ...]]  # record key -> value per index
    rows: tuple[dict[str, str], ...]
    sorted_accuracies: dict[str, tuple[float, ...]]  # ascending, for ranks
    provenance: dict[str, str]  # file, SHA-256 and version: recorded in every run's config.json

    def index(self, arch: str) -> int:
        genotype = space.str_to_genotype(arch)  # validates
        return self.index_of[space.genotype_to_str(genotype)]

    def check_index(self, index: int) -> int:
        if not 0 <= index < len(self.arch_strs):
            raise UserError(f"bad NB201 index {index}: must be in 0..{len(self.arch_strs) - 1}")
        return index

    def accuracy(self, index: int) -> dict[str, float]:
        return {key: values[index] for key, values in self.accuracies.items()}

    def rank_percentile(self, index: int) -> dict[str, float]:
        """Per look-up: rank among all cells, ties left out (the best cifar10 cell shares its value with an
        isomorphic duplicate): 100 = best, 0 = worst."""
        return {key: rank_percentile(ordered, self.accuracies[key][index])
                for key, ordered in self.sorted_accuracies.items()}

    def regret(self, index: int) -> dict[str, float]:
        """Per look-up: best accuracy in the table minus this cell's."""
        return {key: ordered[-1] - self.accuracies[key][index] for key, ordered in self.sorted_accuracies.items()}

    def row(self, index: int) -> dict[str, str]:
        return self.rows[self.check_index(index)]


def load_table(data_dir: Path) -> NB201Table:
    return _load(require_file(Path(data_dir), TABLE_FILE, HOW_TO_GET).resolve())


@lru_cache(maxsize=4)
def _load(path: Path) -> NB201Table:
    sha = verified_sha256(path)
    try:
        with gzip.open(path, "rt", newline="") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in TABLE_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise UserError(f"corrupt data file {path}: missing columns {', '.join(missing)}")
            rows = tuple(reader)
    except (OSError, EOFError, zlib.error, csv.Error, UnicodeDecodeError) as exc:
        raise UserError(f"corrupt data file {path}: {exc}") from None
    if len(rows) != NUM_ARCHS or any(int(r["arch_index"]) != i for i, r in enumerate(rows)):
        raise UserError(f"corrupt data file {path}: expected {NUM_ARCHS} rows indexed 0..{NUM_ARCHS - 1}")
    try:
        accuracies = {key: tuple(float(r[col]) for r in rows) for key, col in ACCURACY_COLUMNS.items()}
    except ValueError as exc:
        raise UserError(f"corrupt data file {path}: {exc}") from None
    arch_strs = tuple(r["arch_str"] for r in rows)
    provenance = {"file": TABLE_FILE, "sha256": sha, "columns": "acc200_* (200 epochs, mean over seeds)",
                  "version": KNOWN_VERSIONS.get(sha, "imported by `harness data import-nb201` (version of its source)")}
    return NB201Table(arch_strs, {a: i for i, a in enumerate(arch_strs)}, accuracies, rows,
                      {key: tuple(sorted(values)) for key, values in accuracies.items()}, provenance)
