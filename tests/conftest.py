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


@pytest.fixture(scope="session")
def search_data(data_dir: Path, nb201_table) -> Path:
    """The data directory, when it holds what a search needs (the NB201 table and CIFAR-10)."""
    if not (data_dir / "cifar10").is_dir():
        pytest.skip(f"CIFAR-10 not found under {data_dir}; set HARNESS_DATA")
    return data_dir


@pytest.fixture
def interrupt():
    """``interrupt(epoch)``: searches started from now on stop with a KeyboardInterrupt (as Ctrl-C) when they
    reach ``epoch``; ``interrupt(None)`` lets them run through again."""
    from harness.runner import SeedRun

    original = SeedRun._run_epoch

    def stop_at(epoch: int | None) -> None:
        def interrupted(self, searcher, step_fn, data, current: int, estimate: bool):
            if current == epoch:
                raise KeyboardInterrupt
            return original(self, searcher, step_fn, data, current, estimate)

        SeedRun._run_epoch = original if epoch is None else interrupted

    yield stop_at
    SeedRun._run_epoch = original
