"""Shared fixtures: the benchmark data directory and the NB201 table.

The data directory is ``$HARNESS_DATA`` when set, else ``<repo>/../shared/data``. Tests that need it skip
(with the path in the reason) when it, or the file they need, is absent.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _data_dir() -> Path:
    env = os.environ.get("HARNESS_DATA")
    return Path(env).expanduser() if env else REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = _data_dir()
    if not path.is_dir():
        pytest.skip(f"benchmark data not found at {path}; set HARNESS_DATA")
    return path


@pytest.fixture(scope="session")
def nb201_table(data_dir: Path):
    from benchmarks.nb201.table import TABLE_FILE, load_table

    if not (data_dir / TABLE_FILE).is_file():
        pytest.skip(f"benchmark data not found at {data_dir / TABLE_FILE}; set HARNESS_DATA")
    return load_table(data_dir)
