"""``harness sweep``: a grid of runs from a YAML file, on a local process pool (default) or a Ray cluster.

Sweep file::

    preset: paper                 # one preset for the whole sweep
    spaces: [nb201]               # names or package.module:Class, as --space / --searcher
    searchers: [darts, sd_darts_voted]
    seeds: 4                      # seeds 0..3, or an explicit list
    epochs: 50                    # optional
    set: {diagnostics_every: 5}   # optional: --set values for every cell
    grid: {warmup_epochs: [0, 10, 25]}   # optional: --set values varied (cartesian product)
    cases: [{a_lr: 0.0116}, {epochs: 16, a_lr: 0.0058}]   # optional: --set values that go together, each case
                                                          # crossed with the grid (a calibration's candidates)

Every cell is one ordinary run folder, exactly what ``harness run`` writes for the same arguments, so the
sweep is idempotent and resumable whatever ran it before: finished cells are skipped, interrupted ones resume
from their checkpoint, and the run-folder lock keeps two workers off one folder. Cells that differ only in the
seed are one task, a search vectorised over their seeds (``--seed-batch`` at a time, as ``harness run``). All cells are
validated before anything starts (a bad sweep file is a one-line error). A failing cell is recorded with its one-line
reason and the sweep goes on.
"""
from __future__ import annotations

import ctypes
import itertools
import os
import signal
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, replace
from multiprocessing import active_children, get_context
from pathlib import Path
from typing import Annotated, Any, Callable

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictInt, StrictStr, ValidationError

from foundation.errors import UserError
from foundation.run_config import SEEDS_RULE, check_seed_batch, checked_seeds
from harness.tracking import check_backends

PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class Cell:
    """One run folder of the sweep: a configuration (as written in the file) and a seed."""

    space: str
    searcher: str
    preset: str
    assignments: tuple[str, ...]
    epochs: int | None
    seed: int
    tracking: tuple[str, ...] = ()  # live tracking backends (``harness.tracking``): how the run is watched
    @property
    def name(self) -> str:
        return " ".join([f"{self.space}/{self.searcher}", *self.assignments, f"seed {self.seed}"])

    @property
    def configuration(self) -> tuple:
        return self.space, self.searcher, self.preset, self.assignments, self.epochs


def seed_batches(cells: list[Cell], size: int) -> list[list[Cell]]:
    """The tasks: cells of the same configuration, ``size`` seeds at a time, each computed as one batch."""
    groups: dict[tuple, list[Cell]] = {}
    for cell in cells:
        groups.setdefault(cell.configuration, []).append(cell)
    return [group[start:start + size] for group in groups.values() for start in range(0, len(group), size)]


def set_text(value: Any) -> str:
    """A YAML value as ``--set`` text, so that sweep files go through the one validation of the command line."""
    if isinstance(value, list):
        return ",".join(map(set_text, value))
    return str(value).lower() if isinstance(value, bool) else str(value)


def _names(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


def _seeds(value: Any) -> list[int]:
    try:
        return checked_seeds(value)
    except (UserError, TypeError):
        raise ValueError(SEEDS_RULE) from None


Names = Annotated[list[StrictStr], BeforeValidator(_names), Field(min_length=1)]
Settings = dict[StrictStr, Any]


MAX_FILE_BYTES = 100_000  # a sweep file is a few lines; anything far larger is not one
MAX_CELLS = 10_000  # runs in one sweep: more would take years, and validating them alone hours


def strict_yaml(text: bytes) -> Any:
    """A sweep file's YAML document, or a ValueError saying why it is refused: not UTF-8, larger than
    ``MAX_FILE_BYTES``, not YAML, a key given twice in one mapping (YAML keeps the last silently) or an alias (a
    few hundred bytes of nested aliases expand to gigabytes)."""
    import yaml

    class StrictLoader(yaml.SafeLoader):
        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.check_event(yaml.AliasEvent):
                raise ValueError(f"aliases (*{self.peek_event().anchor}) are not allowed; write the values out")
            return super().compose_node(parent, index)

        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            keys = [self.construct_object(key, deep=True) for key, _ in node.value]
            repeated = sorted({str(key) for key in keys if keys.count(key) > 1})
            if repeated:
                raise ValueError(f"key {repeated[0]!r} is given twice (line {node.start_mark.line + 1})")
            return super().construct_mapping(node, deep)

    if len(text) > MAX_FILE_BYTES:
        raise ValueError(f"{len(text):,} bytes, more than a sweep file's {MAX_FILE_BYTES:,}")
    try:
        decoded = text.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 text (byte {exc.start})") from None
    try:
        return yaml.load(decoded, Loader=StrictLoader)  # a SafeLoader underneath
    except yaml.YAMLError as exc:
        raise ValueError(f"not YAML ({str(exc).splitlines()[0]})") from None


class SweepFile(BaseModel):
    """A sweep file: ``preset``, ``spaces`` and ``searchers`` (a name or a list), ``seeds`` (a count or a list),
    ``epochs``, ``set`` (run fields and searcher options for every cell), ``grid`` (each a list of values, crossed)
    and ``cases`` (mappings of values that go together, crossed with the grid). Values are ``--set`` texts once
    read (``set_text``), so every cell goes through the command line's one validation."""

    model_config = ConfigDict(extra="forbid")

    preset: StrictStr = Field("paper", description="a preset name")
    spaces: Names = Field(description="a name or a non-empty list of names")
    searchers: Names = Field(description="a name or a non-empty list of names")
    seeds: Annotated[list[int], BeforeValidator(_seeds)] = Field([0], description=SEEDS_RULE)
    epochs: StrictInt | None = Field(None, ge=1, description="an integer >= 1")
    set: Settings = Field({}, description="a mapping of run fields to values")
    grid: dict[StrictStr, Annotated[list[Any], Field(min_length=1)]] = Field(
        {}, description="a mapping of run fields to non-empty lists of values")
    cases: list[Settings] = Field([{}], description="a list of mappings of run fields to values")

    @classmethod
    def read(cls, path: Path) -> "SweepFile":
        """The file's model; a UserError names the first bad key, its value and what it must be. Read strictly
        (``strict_yaml``): UTF-8, at most ``MAX_FILE_BYTES``, no repeated keys, no aliases."""
        try:
            spec = strict_yaml(Path(path).read_bytes())
        except OSError as exc:
            raise UserError(f"cannot read sweep file {path}: {exc.strerror}") from None
        except ValueError as exc:
            raise UserError(f"bad sweep file {path}: {exc}") from None
        if not isinstance(spec, dict):
            raise UserError(f"bad sweep file {path}: expected a mapping of {', '.join(cls.model_fields)}")
        spec = {key: value for key, value in spec.items() if not (key in ("set", "grid", "cases") and value is None)}
        try:
            return cls.model_validate(spec)
        except ValidationError as exc:
            key = str(exc.errors(include_url=False)[0]["loc"][0])
            if key not in cls.model_fields:
                raise UserError(f"bad sweep file {path}: unknown key {key!r} "
                                f"(known: {', '.join(cls.model_fields)})") from None
            raise UserError(f"bad sweep file {path}: {key}={spec.get(key)!r} must be "
                            f"{cls.model_fields[key].description}") from None

    def assignments(self) -> list[tuple[str, ...]]:
        """Each cell's ``--set`` texts: the common settings, then a case's, then a grid point's."""
        common = tuple(f"{k}={set_text(v)}" for k, v in self.set.items())
        return [(*common, *(f"{k}={set_text(v)}" for k, v in [*case.items(), *zip(self.grid, point)]))
                for case in self.cases for point in itertools.product(*self.grid.values())]


def load_sweep(path: Path, log: Callable[[str], None] = print) -> list[Cell]:
    """The sweep's cells, each validated by building its configuration; cells that are one run folder (the same
    configuration and seed, however written) are merged, and the merge is said."""
    from harness.config import configure

    sweep = SweepFile.read(path)
    count = len(sweep.spaces) * len(sweep.searchers) * len(sweep.cases) * len(sweep.seeds)
    for values in sweep.grid.values():
        count *= len(values)
    if count > MAX_CELLS:
        raise UserError(f"bad sweep file {path}: {count:,} runs, more than the {MAX_CELLS:,} a sweep may hold; "
                        "split it")
    cells: dict[tuple, Cell] = {}
    merged = 0
    for space, searcher, assignments in itertools.product(sweep.spaces, sweep.searchers, sweep.assignments()):
        try:
            experiment = configure(space, searcher, sweep.preset, list(assignments), sweep.epochs)
        except UserError as exc:
            raise UserError(f"bad sweep file {path}: {exc}") from None
        for seed in sweep.seeds:
            folder = (experiment.config.space, experiment.config.searcher, experiment.name, seed)
            merged += folder in cells
            cells.setdefault(folder, Cell(space, searcher, sweep.preset, assignments, sweep.epochs, seed))
    if merged:
        log(f"sweep {path}: {merged} cell(s) name the same run folder as an earlier one (the same configuration "
            "and seed); each folder runs once")
    return list(cells.values())


def run_cells(cells: list[dict[str, Any]], out: str, data_dir: str, device: str, threads: int) -> list[dict[str, Any]]:
    """One task in a worker (process or Ray task): cells differing only in the seed, computed together by the
    same code path as ``harness run``; one result per cell; never raises. Its log (each epoch's line, tagged with
    the run folder or the batch's seeds, as ``harness run`` prints it) goes to the worker's stderr, which the
    local pool shares with the sweep and Ray forwards to the driver: a long sweep shows progress every epoch,
    not only when a task's runs finish. ``threads``: the worker's share of the CPU threads, pinned for its runs
    (workers that start together would each find the cores idle and take all of them: oversubscribed)."""
    from harness.config import configure
    from harness.device import resolve_device
    from harness.log import stderr_log
    from harness.runner import SeedBatch

    specs = [Cell(**{**cell, "assignments": tuple(cell["assignments"]), "tracking": tuple(cell["tracking"])})
             for cell in cells]
    first = specs[0]
    try:
        experiment = configure(first.space, first.searcher, first.preset, list(first.assignments), first.epochs)
        batch = SeedBatch(experiment, [spec.seed for spec in specs], Path(out), Path(data_dir), resolve_device(device),
                          log=stderr_log, tracking=first.tracking, threads=threads)
        return [{"cell": spec.name, "folder": str(folder), "status": summary.status,
                 "epochs_done": summary.epochs_done, "reason": None}
                for spec, folder, summary in zip(specs, batch.folders, batch.execute())]
    except (UserError, OSError) as exc:
        reason = str(exc)
    except Exception as exc:  # noqa: BLE001 - a bug in one task must not stop the sweep; reported as such
        reason = f"{type(exc).__name__}: {exc}"
    return [{"cell": spec.name, "folder": None, "status": "failed", "epochs_done": 0, "reason": reason}
            for spec in specs]


@dataclass
class Progress:
    total: int
    parallel: int
    log: Callable[[str], None]
    done: int = 0
    failed: int = 0
    epochs: int = 0

    def update(self, result: dict[str, Any], pending: int) -> None:
        self.done += result["status"] == "done"
        self.failed += result["status"] != "done"
        self.epochs += result["epochs_done"]
        reason = f": {result['reason']}" if result["reason"] else ""
        running = min(self.parallel, pending)
        self.log(f"[{self.done + self.failed}/{self.total} finished: {self.done} done, {self.failed} failed; "
                 f"{running} task(s) running, {pending - running} queued; {self.epochs} epochs] {result['cell']} "
                 f"{result['status']}{reason}")


def default_parallel(device: str, gpus_per_run: float) -> int:
    if device != "cpu":
        import torch

        if torch.cuda.is_available():
            return max(1, int(torch.cuda.device_count() / gpus_per_run))
    return os.cpu_count() or 1


def run_local(tasks: list[list[Cell]], out: Path, data_dir: Path, device: str, parallel: int,
              progress: Progress) -> list[dict[str, Any]]:
    """A process pool; each worker gets an equal share of the CPU threads (no oversubscription). An interrupt
    (Ctrl-C, SIGTERM) drops the queued tasks and ends the running ones now, rather than after every queued run:
    each interrupted run resumes from its last checkpoint when the sweep is re-run."""
    threads = max(1, (os.cpu_count() or 1) // parallel)
    results = []
    pool = ProcessPoolExecutor(max_workers=parallel, mp_context=get_context("spawn"), initializer=_die_with_parent,
                               initargs=(os.getpid(),))
    try:
        pending = {pool.submit(run_cells, [asdict(c) for c in task], str(out), str(data_dir), device, threads)
                   for task in tasks}
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                for result in future.result():
                    results.append(result)
                    progress.update(result, len(pending))
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        for worker in active_children():
            worker.terminate()
        raise
    pool.shutdown()
    return results


def _die_with_parent(parent: int) -> None:
    """A worker ends (SIGTERM) when the sweep that started it dies, even by SIGKILL: Linux's PR_SET_PDEATHSIG. Its
    run folder's lock goes with it, and a re-run of the sweep resumes the run from its checkpoint."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: workers end when they next talk to the dead pool
        return
    if os.getppid() != parent:  # the sweep died before the request took effect
        os._exit(1)


def run_ray(tasks: list[list[Cell]], out: Path, data_dir: Path, device: str, parallel: int, gpus_per_run: float,
            address: str | None, progress: Progress) -> list[dict[str, Any]]:
    """Ray tasks on the cluster at ``address`` (or a local one started here); each task declares its CPUs and
    (fractional) GPUs. The results root must be shared by the cluster's nodes."""
    try:
        import ray
    except ImportError:
        raise UserError("the ray backend needs Ray: pip install 'dnas-harness[ray]'") from None
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, num_cpus=None if address else parallel, include_dashboard=False,
                 log_to_driver=False, runtime_env={"env_vars": {"PYTHONPATH": _python_path()}})
    gpus = gpus_per_run if device != "cpu" else 0
    remote = ray.remote(num_cpus=1, num_gpus=gpus)(run_cells)
    pending = [remote.remote([asdict(c) for c in task], str(Path(out).resolve()), str(Path(data_dir).resolve()),
                             device, 1) for task in tasks]
    results = []
    try:
        while pending:
            finished, pending = ray.wait(pending, num_returns=1)
            for result in ray.get(finished[0]):
                results.append(result)
                progress.update(result, len(pending))
    finally:
        if started_here:
            ray.shutdown()
    return results


def _python_path() -> str:
    """What Ray workers import from: this source tree, the caller's PYTHONPATH and working directory (where a
    ``package.module:Class`` plug-in may live)."""
    parts = [str(Path(__file__).resolve().parents[1]),
             *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep)), os.getcwd()]
    return os.pathsep.join(dict.fromkeys(parts))


def summarize(results: list[dict[str, Any]], seconds: float, log: Callable[[str], None]) -> int:
    failed = [r for r in results if r["status"] != "done"]
    log(f"sweep: {len(results) - len(failed)} done, {len(failed)} failed or diverged, {len(results)} runs, "
        f"{seconds:.1f} s")
    for result in failed:
        log(f"  {result['status']}: {result['cell']}" + (f": {result['reason']}" if result["reason"] else ""))
    return 1 if failed else 0


def sweep(path: Path, backend: str, out: Path, data_dir: Path, device: str, parallel: int | None,
          gpus_per_run: float, address: str | None, log: Callable[[str], None] = print,
          seed_batch: int | None = None, tracking: tuple[str, ...] = ()) -> int:
    if backend not in ("local", "ray"):
        raise UserError(f"unknown backend {backend!r} (local or ray)")
    if not 0 < gpus_per_run <= 1:
        raise UserError(f"bad value --gpus-per-run {gpus_per_run}: must be in (0, 1]")
    if parallel is not None and parallel < 1:
        raise UserError(f"bad value --max-parallel {parallel}: must be >= 1")
    check_seed_batch(seed_batch)
    check_backends(tracking)
    cells = [replace(cell, tracking=tuple(tracking)) for cell in load_sweep(path, log)]
    if not seed_batch:
        from harness.device import default_seed_batch, resolve_device

        seed_batch = default_seed_batch(resolve_device(device))
    tasks = seed_batches(cells, seed_batch)
    parallel = min(parallel or default_parallel(device, gpus_per_run), len(tasks))
    log(f"sweep {path}: {len(cells)} runs in {len(tasks)} task(s) of seeds computed together, {parallel} at a time "
        f"on the {backend} backend")
    progress = Progress(len(cells), parallel, log)
    started = time.time()
    if backend == "local":
        results = run_local(tasks, out, data_dir, device, parallel, progress)
    else:
        results = run_ray(tasks, out, data_dir, device, parallel, gpus_per_run, address, progress)
    return summarize(results, time.time() - started, log)
