"""Convert the official NB201 / NATS-Bench topology files into the harness's table format.

Real users with ``NAS-Bench-201-v1_0-e61699.pth`` (package ``nas-bench-201``) or the NATS-tss archive
(package ``nats_bench``) run ``harness data import-nb201 FILE``; the result is ``<data>/nb201/nb201_table.csv.gz``
with the columns documented in ``../shared/data/nb201/README.md`` (the 200-epoch accuracies, mean over seeds,
``is_random=False``; 12-epoch columns where the file has them).
"""
from __future__ import annotations

import csv
import gzip
import io
from pathlib import Path
from typing import Any, Protocol

from foundation.atomic import atomic_write
from foundation.errors import UserError
from foundation.integrity import write_sidecar

# (column, dataset name in the API, metric key in get_more_info, hp)
QUERIES: tuple[tuple[str, str, str, str], ...] = tuple(
    (f"acc{hp}_{col}", ds, metric, hp)
    for hp in ("200", "12")
    for col, ds, metric in (
        ("cifar10valid_xvalid", "cifar10-valid", "valid-accuracy"),
        ("cifar10_oritest", "cifar10", "test-accuracy"),
        ("cifar100_xvalid", "cifar100", "valid-accuracy"),
        ("cifar100_xtest", "cifar100", "test-accuracy"),
        ("imagenet16_xvalid", "ImageNet16-120", "valid-accuracy"),
        ("imagenet16_xtest", "ImageNet16-120", "test-accuracy"),
    )
)
COST_COLUMNS = (("cifar10", "cifar10-valid"), ("cifar100", "cifar100"), ("imagenet16", "ImageNet16-120"))


class TopologyAPI(Protocol):
    def __len__(self) -> int: ...
    def arch(self, index: int) -> str: ...
    def get_more_info(self, index: int, dataset: str, hp: str, is_random: bool) -> dict[str, Any]: ...
    def get_cost_info(self, index: int, dataset: str, hp: str) -> dict[str, Any]: ...


def open_official(path: Path) -> TopologyAPI:
    """Open an official file with whichever API package is installed (optional dependencies)."""
    try:
        from nats_bench import create  # type: ignore[import-not-found]

        return create(str(path), "tss", fast_mode=True, verbose=False)
    except ImportError:
        pass
    try:
        from nas_201_api import NASBench201API  # type: ignore[import-not-found]

        return NASBench201API(str(path), verbose=False)
    except ImportError:
        raise UserError("import-nb201 needs the official API: pip install nats_bench (or nas-bench-201)") from None


def convert(api: TopologyAPI, out_path: Path) -> int:
    """Write the table for every architecture of ``api``; returns the number of rows."""
    columns = ["arch_index", "arch_str", "unique_str", *[q[0] for q in QUERIES if q[3] == "200"],
               *[f"flops_M_{c}" for c, _ in COST_COLUMNS], *[f"params_M_{c}" for c, _ in COST_COLUMNS],
               *[q[0] for q in QUERIES if q[3] == "12"]]
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    count = len(api)
    for index in range(count):
        row: dict[str, Any] = {"arch_index": index, "arch_str": api.arch(index)}
        row["unique_str"] = api.get_unique_str(index) if hasattr(api, "get_unique_str") else ""
        for column, dataset, metric, hp in QUERIES:
            try:
                row[column] = api.get_more_info(index, dataset, hp=hp, is_random=False)[metric]
            except (KeyError, ValueError):
                row[column] = ""  # e.g. no 12-epoch results in an NB201 v1.0 file
        for column, dataset in COST_COLUMNS:
            cost = api.get_cost_info(index, dataset, hp="200")
            row[f"flops_M_{column}"], row[f"params_M_{column}"] = cost["flops"], cost["params"]
        writer.writerow(row)
    payload = gzip.compress(text.getvalue().encode())
    atomic_write(out_path, lambda handle: handle.write(payload))
    write_sidecar(out_path)
    return count
