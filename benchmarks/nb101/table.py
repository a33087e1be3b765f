"""NB101 ground truth keyed by module fingerprint, from whatever the data directory holds.

Here that is partial (``../shared/data/nb101/README.md``): one run's 108-epoch validation accuracy for about 7 %
of the models and no test accuracy. A look-up of a cell the installed table does not hold says so explicitly
(``in_table: false``, null accuracies) and never guesses. Accuracies are reported in percent, as NB201's.
"""
from __future__ import annotations

import csv
import gzip
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from foundation.errors import UserError
from foundation.integrity import verified_sha256

OFFICIAL_FILE = "nb101/nb101_table.csv.gz"  # written by `harness data import-nb101` from the official tfrecord
PARTIAL_FILES = ("nb101/nb101_partial_tiga1231_valacc.csv.gz", "nb101/nb101_partial_naslib_valacc.csv.gz")
MEMBERSHIP_FILE = "nb101/oneshot1_space_nb101_hashes.csv.gz"
HOW_TO_GET = "convert the official nasbench_only108.tfrecord with `harness data import-nb101 FILE`"


def _mean(values: tuple[float, ...] | None) -> float | None:
    return sum(values) / len(values) if values else None


@dataclass(frozen=True)
class NB101Table:
    valid_runs: dict[str, tuple[float, ...]]  # hash -> per-run 108-epoch validation accuracies (%)
    test_runs: dict[str, tuple[float, ...]]  # hash -> per-run test accuracies (%); empty for the partial data
    kind: str  # "official" or "partial"
    files: dict[str, str]  # file name -> SHA-256: what the look-ups come from, recorded in config.json

    def lookup(self, module_hash: str) -> dict[str, Any]:
        runs = self.valid_runs.get(module_hash)
        return {"hash": module_hash, "in_table": runs is not None, "valid_acc": _mean(runs),
                "valid_runs": list(runs) if runs else None, "test_acc": _mean(self.test_runs.get(module_hash)),
                "table": self.kind if runs is not None else None}


def load_table(data_dir: Path) -> NB101Table:
    """The converted official table when installed, else the partial samples."""
    official = Path(data_dir) / OFFICIAL_FILE
    if official.is_file():
        return _load_official(official.resolve())
    paths = tuple(Path(data_dir) / name for name in PARTIAL_FILES if (Path(data_dir) / name).is_file())
    if not paths:
        raise UserError(f"missing data file {PARTIAL_FILES[0]}: no NB101 table in {Path(data_dir) / 'nb101'} "
                        f"({HOW_TO_GET})")
    return _load(tuple(p.resolve() for p in paths))


def _read(path: Path, files: dict[str, str] | None = None) -> list[dict[str, str]]:
    sha = verified_sha256(path)
    if files is not None:
        files[path.name] = sha
    try:
        with gzip.open(path, "rt", newline="") as handle:
            return list(csv.DictReader(handle))
    except (OSError, EOFError, zlib.error, csv.Error, UnicodeDecodeError) as exc:
        raise UserError(f"corrupt data file {path}: {exc}") from None


@lru_cache(maxsize=2)
def _load(paths: tuple[Path, ...]) -> NB101Table:
    runs: dict[str, list[float]] = {}
    files: dict[str, str] = {}
    try:
        for path in paths:
            for row in _read(path, files):
                values = row.get("val_acc_e108") or row.get("val_acc_e108_samples") or ""
                for value in filter(None, values.split(";")):
                    runs.setdefault(row["hash"], []).append(100.0 * float(value))
    except (KeyError, ValueError) as exc:
        raise UserError(f"corrupt data file {path}: {exc}") from None
    return NB101Table({h: tuple(v) for h, v in runs.items()}, {}, "partial", files)


@lru_cache(maxsize=2)
def _load_official(path: Path) -> NB101Table:
    def runs(text: str) -> tuple[float, ...]:
        return tuple(float(v) for v in text.split(";") if v)

    files: dict[str, str] = {}
    try:
        rows = _read(path, files)
        return NB101Table({r["hash"]: runs(r["valid_acc_runs"]) for r in rows},
                          {r["hash"]: runs(r["test_acc_runs"]) for r in rows}, "official", files)
    except (KeyError, ValueError) as exc:
        raise UserError(f"corrupt data file {path}: {exc}") from None


@lru_cache(maxsize=2)
def space_hashes(data_dir: Path, space: int) -> frozenset[str]:
    """Every NB101 hash that 1shot1 space ``space`` can produce (the membership list)."""
    path = Path(data_dir) / MEMBERSHIP_FILE
    if not path.is_file():
        raise UserError(f"missing data file {MEMBERSHIP_FILE}: expected at {path}")
    return frozenset(row["hash"] for row in _read(path) if row["space"] == str(space))
