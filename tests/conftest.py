"""Shared fixtures and helpers: the benchmark data directory and the NB201 table, the arguments of a smoke search,
record comparison, interrupting a search, the pinned thread count, and the rule that a test running a search is
marked ``slow``.

The data directory is ``$HARNESS_DATA`` when set, else ``<repo>/../shared/data``. Tests that need it skip
(with the path in the reason) when it, or the file they need, is absent.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NONDETERMINISTIC = {"epoch_seconds", "diagnostics_seconds"}
HOW_COMPUTED = {"batch_seeds"}  # differs between a seed batched and alone, whose records tests compare
# Searches here run on a pinned thread count: by default a search follows the machine's load (harness.threads), and
# a kernel may round differently with another thread count, which records compared across runs within a test
# must not depend on.
os.environ.setdefault("HARNESS_THREADS", str(os.cpu_count() or 1))


def smoke_args(data_dir: Path, out: Path, *extra: str) -> list[str]:
    return ["run", "--preset", "smoke", "--device", "cpu", "--data-dir", str(data_dir), "--out", str(out), *extra]


def epochs_diagnosed_last(epochs: int) -> tuple[str, ...]:
    """``--epochs n`` with the diagnostics after epoch n only, for tests of resumes, kills and batches: the last
    epoch's diagnostics are still compared, at a third of the cost of diagnosing every epoch (most of a smoke
    epoch's time)."""
    return ("--epochs", str(epochs), "--set", f"diagnostics_every={epochs}")


def comparable(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in NONDETERMINISTIC | HOW_COMPUTED} for r in records]


def flat(value: object) -> list:
    """Nested lists (mixing weights of any shapes) as one list of numbers."""
    return [x for item in value for x in flat(item)] if isinstance(value, list) else [value]


def assert_records_close(a: list[dict], b: list[dict], tol: float = 1e-6) -> None:
    assert [r["epoch"] for r in a] == [r["epoch"] for r in b]
    for ra, rb in zip(comparable(a), comparable(b)):
        assert ra.keys() == rb.keys()
        for key in ra:
            if isinstance(ra[key], float):
                assert ra[key] == pytest.approx(rb[key], abs=tol, rel=tol), key
            elif key == "arch_weights":
                assert flat(ra[key]) == pytest.approx(flat(rb[key]), abs=tol)
            elif key == "decisiveness" and ra[key] and rb[key]:
                assert ra[key].keys() == rb[key].keys()
                for name, value in ra[key].items():
                    assert (flat(value) == pytest.approx(flat(rb[key][name]), abs=tol) if value is not None
                            else rb[key][name] is None), f"decisiveness.{name}"
            else:
                assert ra[key] == rb[key], key


def md_rows(text: str) -> list[list[str]]:
    """The rows of the pipe tables in Markdown ``text``, each a list of its cells' texts (separator lines left
    out; a table indented into a list item counts): tests compare contents, not layout."""
    rows = []
    for line in (line.strip() for line in text.splitlines()):
        if line.startswith("|") and not set(line) <= set("|-: "):
            rows.append([cell.strip() for cell in line.strip().strip("|").split(" | ")])
    return rows


def write_tarball(path: Path, folder: str, members: dict[str, bytes]) -> None:
    """A ``.tar.gz`` holding ``folder/<name>`` for each member, as the official CIFAR tarballs are laid out, with a
    checksum sidecar: a stand-in for the official file, trusted as written."""
    import io
    import tarfile

    from foundation.integrity import write_sidecar

    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for name, payload in members.items():
            info = tarfile.TarInfo(f"{folder}/{name}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    write_sidecar(path)


DATA_FIXTURES = {"data_dir", "nb201_table", "search_data"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that reads the benchmark data (a data fixture, directly or through another fixture) is marked
    ``data``, whether or not it says so: ``-m "not data"`` leaves out exactly the tests that need it."""
    for item in items:
        if DATA_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.data)


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


@pytest.fixture(autouse=True)
def searches_are_marked_slow(request, monkeypatch):
    """A test that runs a search in this process must be marked ``slow`` (``make test-fast`` leaves them out)."""
    if request.node.get_closest_marker("slow") is None:
        from harness.runner import SeedBatch

        def refuse(self):
            pytest.fail("this test runs a search: mark it @pytest.mark.slow")

        monkeypatch.setattr(SeedBatch, "_execute", refuse)


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
    from harness.epoch import EpochRunner

    original = EpochRunner.run

    def stop_at(epoch: int | None) -> None:
        def interrupted(self, searcher, step_fn, batch, current: int, clock):
            if current == epoch:
                raise KeyboardInterrupt
            return original(self, searcher, step_fn, batch, current, clock)

        EpochRunner.run = original if epoch is None else interrupted

    yield stop_at
    EpochRunner.run = original
