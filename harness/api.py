"""The Python API: a search or a sweep started from Python with the command line's arguments; the ``harness run``
and ``harness sweep`` commands are thin layers over it. Bad arguments raise ``UserError`` (one line).

    from harness.api import run_search
    results = run_search(searcher="sd_darts", preset="quick", seeds=[0, 1], settings={"warmup_epochs": 2})
    for folder, summary in results:
        print(folder, summary.status, summary.final["lookup"]["cifar10_test"])
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable, Mapping

from foundation.errors import UserError
from foundation.records import Summary
from harness.log import Log


def run_search(searcher: str | None = None, space: str | None = None, preset: str = "paper",
               seeds: Iterable[int] = (0,), epochs: int | None = None,
               settings: Mapping[str, Any] | Iterable[str] = (), device: str = "auto", out: str | Path = "results",
               data_dir: str | Path | None = None, seed_batch: int | None = None, wait: bool = False,
               repair: bool = False, progress: bool = False, tracking: Iterable[str] = (),
               log: Log | None = None, threads: int | None = None) -> list[tuple[Path, Summary]]:
    """Run (or resume, or skip when finished) the searches of one configuration, one per seed, ``seed_batch`` seeds
    computed together (default per device); ``settings`` are ``--set`` values, a mapping or ``key=value`` texts
    (validated exactly as on the command line); ``tracking``: ``tensorboard`` and/or ``wandb`` (``harness.tracking``);
    ``threads``: CPU threads (default: ``$HARNESS_THREADS``, else the cores other processes leave free,
    ``harness.threads``).
    Returns each seed's run folder and summary, in seed order."""
    from foundation.paths import resolve_data_dir
    from foundation.run_config import check_seed_batch, checked_seeds
    from harness.config import configure
    from harness.device import default_seed_batch, resolve_device
    from harness.log import stderr_log
    from harness.runner import SeedBatch
    from harness.sweep import set_text
    from harness.threads import check_threads

    seeds = checked_seeds(seeds)
    check_seed_batch(seed_batch)
    check_threads(threads)
    if epochs is not None and epochs < 1:
        raise UserError(f"bad value --epochs {epochs}: must be >= 1")
    check_folder("--out", out)
    assignments = [f"{key}={set_text(value)}" for key, value in settings.items()] \
        if isinstance(settings, Mapping) else list(settings)
    experiment = configure(*names(space, searcher), preset, assignments, epochs)
    resolved = resolve_device(device)
    size = seed_batch or default_seed_batch(resolved)
    results: list[tuple[Path, Summary]] = []
    for start in range(0, len(seeds), size):
        batch = SeedBatch(experiment, seeds[start:start + size], Path(out), resolve_data_dir(data_dir), resolved,
                          log=log or stderr_log, progress=progress, wait_for_lock=wait, repair=repair,
                          tracking=tuple(tracking), threads=threads)
        results += list(zip(batch.folders, batch.execute()))
    return results


def run_sweep(file: str | Path, backend: str = "local", out: str | Path = "results", data_dir: str | Path | None = None,
              device: str = "auto", max_parallel: int | None = None, gpus_per_run: float = 1.0,
              address: str | None = None, seed_batch: int | None = None, tracking: Iterable[str] = (),
              log: Log = print) -> int:
    """Every cell of a sweep file (``harness.sweep``); 0 when every run finished, 1 otherwise."""
    from foundation.paths import resolve_data_dir
    from harness.device import resolve_device
    from harness.sweep import sweep

    check_folder("--out", out)
    return sweep(Path(file), backend, Path(out), resolve_data_dir(data_dir), str(resolve_device(device)),
                 max_parallel, gpus_per_run, address, log=log, seed_batch=seed_batch, tracking=tuple(tracking))


def check_folder(flag: str, value: str | Path) -> None:
    """A results root this process can write, said before any run starts: not empty (an unset shell variable
    would write into the working directory), not a file or under one, and writable where it begins to exist."""
    if not str(value).strip():
        raise UserError(f"bad value {flag} {str(value)!r}: a folder (leave the option out for results/)")
    path = Path(value)
    existing = next(folder for folder in (path, *path.parents) if folder.exists() or folder == Path(folder.anchor))
    if not existing.is_dir():
        where = "a file" if existing == path else f"under the file {existing}"
        raise UserError(f"bad value {flag} {value}: {where}, where a folder is expected")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"bad value {flag} {value}: {existing} is not writable by this user")


def names(space: str | None, searcher: str | None) -> tuple[str, str]:
    """The space and the searcher, defaulting (when not given: None) to the space that declares itself the default
    and DARTS; an empty name (an unset shell variable) is refused, never taken for the default."""
    from benchmarks import default_space
    from searchers.darts import Darts

    for option, name in (("--space", space), ("--searcher", searcher)):
        if name is not None and not name.strip():
            raise UserError(f"bad value {option} {name!r}: a name (harness list), or leave the option out")
    return default_space() if space is None else space, Darts.name if searcher is None else searcher

