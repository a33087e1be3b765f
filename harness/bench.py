"""``harness bench``: our search step of a preset against the reference (xautodl DARTS-V1) on one device.

Both run in the same process on the same device with the same batch size, on the same synthetic batches
(data loading is excluded from both: the reference's loader is slower still), after warm-up, in alternating
rounds; the median round gives the time per step. The reference step is the search space's
(``SearchSpace.reference_step``; NB201: xautodl's DARTS-V1). For a searcher other than DARTS, the DARTS step it
modifies (``searchers.darts``) is timed too (``cost_vs_our_darts`` = its step time / DARTS's).
With ``seeds`` = K > 1 it also times K seeds computed together as one batched search (``searchers.seeds``)
against the same K seeds stepped one after the other, each on its own batches, and gives seeds per hour of a
whole search for both and for the reference (one seed at a time). Peak memory is the device's per timed step
(CUDA), or the process's (CPU). Results are printed and appended to ``results/bench/bench.jsonl`` with device
and versions.
"""
from __future__ import annotations

import platform
import resource
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from pydantic import BaseModel

import harness
from benchmarks.data_stream import Batch
from foundation.atomic import append_jsonl
from harness.config import Experiment
from harness.device import configure_backends, device_description, precision_context
from harness.graphed import search_step
from harness.runner import build_searcher
from harness.threads import CpuThreads, pinned_threads
from searchers.context import EpochStats
from searchers.darts import Darts


def steps_per_epoch(experiment: Experiment) -> int:
    """Steps of an epoch of the configured search (CIFAR-10 paper: 391, the last batch partial)."""
    config = experiment.config
    return -(-(config.train_images or experiment.dataset.halves[0]) // config.batch_size)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _batches(experiment: Experiment, device: torch.device, count: int, seeds: int | None = None) -> list[Batch]:
    """Synthetic batches: (B, ...) for the reference, (seeds, B, ...) for our searchers."""
    config, classes, size = experiment.config, experiment.dataset.num_classes, experiment.dataset.augmentation.size
    generator = torch.Generator().manual_seed(0)
    shape = (config.batch_size,) if seeds is None else (seeds, config.batch_size)

    def images() -> torch.Tensor:
        x = torch.randn(*shape, 3, size, size, generator=generator).to(device)
        return x.contiguous(memory_format=torch.channels_last) if seeds is None and config.channels_last else x

    return [Batch(images(), torch.randint(0, classes, shape, generator=generator).to(device),
                  torch.arange(config.batch_size, device=device).expand(shape).contiguous()) for _ in range(count)]


def our_step(experiment: Experiment, device: torch.device, seeds: int = 1) -> Callable[[Batch, Batch], None]:
    """The run's step function over ``seeds`` seeds computed together, as in the last epoch (past warm-ups that
    skip architecture steps, e.g. PC-DARTS's)."""
    config = experiment.config
    searcher = build_searcher(experiment, device, steps_per_epoch(experiment), (config.batch_size, config.batch_size),
                              list(range(seeds)))
    searcher.begin_epoch(config.epochs)
    weight_stats, arch_stats = EpochStats(device, seeds), EpochStats(device, seeds)
    step_fn = search_step(searcher, device, config.cuda_graphs)

    def step(weight_batch: Batch, arch_batch: Batch) -> None:
        with precision_context(config.precision, device):
            step_fn(weight_batch, arch_batch, weight_stats, arch_stats)
    return step


def _sequential_seeds(experiment: Experiment, device: torch.device, seeds: int) -> Callable[[Batch, Batch], None]:
    """``seeds`` lone searches stepped one after the other, seed k on slice k of the batched batches."""
    steps = [our_step(experiment, device) for _ in range(seeds)]

    def sequential(weight_batch: Batch, arch_batch: Batch) -> None:
        for seed, step in enumerate(steps):
            step(*(Batch(b.images[seed:seed + 1], b.labels[seed:seed + 1], b.indices[seed:seed + 1])
                   for b in (weight_batch, arch_batch)))
    return sequential


def _time_steps(step: Callable[[Batch, Batch], None], batches: list[Batch], device: torch.device) -> float:
    _sync(device)
    started = time.perf_counter()
    for i in range(0, len(batches) - 1, 2):
        step(batches[i], batches[i + 1])
    _sync(device)
    return (time.perf_counter() - started) / (len(batches) // 2)


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class BenchResult(BaseModel):
    """One ``harness bench`` measurement (a line of ``bench/bench.jsonl``; fields not measured are left out):
    medians over rounds of seconds per search step, ours and, when timed, the reference's, the DARTS step the
    searcher modifies, and K seeds batched against K sequential; and what was measured, on what."""

    searcher: str
    space: str
    preset: str
    precision: str
    channels_last: bool
    batch_size: int
    channels: int
    cells_per_stage: int
    epochs: int
    device: str
    steps_per_round: int
    rounds: int
    ours_s_per_step: float
    ours_steps_per_s: float
    estimated_search_s: float
    peak_memory_mb: float
    peak_memory_mb_by_step: dict[str, float] | None = None  # CUDA only
    torch_version: str
    cuda_graphs: bool
    harness_version: str
    python_version: str
    time: str
    reference: str | None = None
    reference_s_per_step: float | None = None
    speedup_vs_reference: float | None = None
    reference_seeds_per_hour: float | None = None
    our_darts_s_per_step: float | None = None
    cost_vs_our_darts: float | None = None
    seeds: int | None = None
    seeds_batched_s_per_step: float | None = None
    seeds_sequential_s_per_step: float | None = None
    batching_speedup: float | None = None
    seeds_per_hour_batched: float | None = None
    seeds_per_hour_sequential: float | None = None
    batched_vs_reference_throughput: float | None = None
    beside_busy_s_per_step: float | None = None  # ours beside a busy process (``--contention``)
    beside_busy_threads: int | None = None  # the CPU threads chosen beside it
    contention_slowdown: float | None = None  # that over ours alone; a fair share of C cores is C / (C - 1)

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)

    def lines(self) -> list[str]:
        """The measurement as ``harness bench`` prints it."""
        lines = [f"device {self.device}, {self.preset} preset, {self.precision}, batch {self.batch_size}",
                 f"  ours       {self.ours_s_per_step * 1e3:9.1f} ms/step  ({self.ours_steps_per_s:.2f} steps/s)"]
        if self.reference_s_per_step is not None:
            lines.append(f"  reference  {self.reference_s_per_step * 1e3:9.1f} ms/step  "
                         f"speedup {self.speedup_vs_reference:.2f}x")
        if self.cost_vs_our_darts is not None:
            lines.append(f"  our darts  {self.our_darts_s_per_step * 1e3:9.1f} ms/step  ({self.searcher} costs "
                         f"{self.cost_vs_our_darts:.2f}x a DARTS step)")
        if self.batching_speedup is not None:
            reference = ("" if self.reference_seeds_per_hour is None
                         else f", {self.reference_seeds_per_hour:.2f} reference")
            lines.append(f"  {self.seeds} seeds: {self.seeds_batched_s_per_step * 1e3:.1f} ms batched, "
                         f"{self.seeds_sequential_s_per_step * 1e3:.1f} ms sequential per step of all seeds "
                         f"({self.batching_speedup:.2f}x); seeds per hour of a {self.epochs}-epoch search: "
                         f"{self.seeds_per_hour_batched:.2f} batched, {self.seeds_per_hour_sequential:.2f} "
                         f"sequential{reference}")
        if self.contention_slowdown is not None:
            lines.append(f"  beside a busy process {self.beside_busy_s_per_step * 1e3:9.1f} ms/step  "
                         f"({self.contention_slowdown:.2f}x alone, {self.beside_busy_threads} threads)")
        lines.append(f"  peak memory {self.peak_memory_mb:.0f} MiB; a {self.epochs}-epoch search: "
                     f"~{self.estimated_search_s / 60:.1f} min")
        return lines


@contextmanager
def busy_neighbour() -> Iterator[None]:
    """Another process at normal priority keeping one core busy meanwhile: a shared machine, as a user meets it."""
    neighbour = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)  # scheduled and spinning before the first timed step
        yield
    finally:
        neighbour.kill()
        neighbour.wait()


def run_bench(experiment: Experiment, device: torch.device, steps: int, rounds: int, with_reference: bool,
              results_dir: Path | None, seeds: int = 1, contention: bool = False,
              threads: int | None = None) -> BenchResult:
    """``threads``: pinned CPU threads, else chosen as a run chooses them (``harness.threads``), beside the busy
    process too (``--contention``: the choice a run started on a loaded machine makes). ``steps`` is rounded up
    to whole updates of the searcher (``Searcher.steps_per_update``: TSE's window), so that a round does all the
    work of the steps it times."""
    searcher, options = experiment.searcher, experiment.config.searcher_options
    update = searcher.steps_per_update(searcher.Options(**options))
    steps = -(-steps // update) * update
    with CpuThreads(pinned_threads(threads)):
        return _measure(experiment, device, steps, rounds, with_reference, results_dir, seeds, contention, threads)


def _measure(experiment: Experiment, device: torch.device, steps: int, rounds: int, with_reference: bool,
             results_dir: Path | None, seeds: int, contention: bool, threads: int | None) -> BenchResult:
    config = experiment.config
    configure_backends(config.precision, device)
    torch.manual_seed(0)
    ours = _batches(experiment, device, 2 * steps, seeds=1)
    candidates = {"ours": (our_step(experiment, device), ours)}
    if with_reference:
        candidates["reference"] = (experiment.space.reference_step(config, device),
                                   _batches(experiment, device, 2 * steps))
    if experiment.searcher is not Darts:  # the cost of a searcher relative to the DARTS step it modifies
        darts = config.model_copy(update={"searcher": Darts.name, "searcher_options": {}})
        candidates["our_darts"] = (our_step(Experiment(darts, experiment.space, Darts), device), ours)
    if seeds > 1:
        stacked = _batches(experiment, device, 2 * steps, seeds=seeds)
        candidates["seeds_batched"] = (our_step(experiment, device, seeds), stacked)
        candidates["seeds_sequential"] = (_sequential_seeds(experiment, device, seeds), stacked)
    peaks: dict[str, float] = {}
    for name, (step, batches) in candidates.items():  # warm-up: allocator, cuDNN autotuning, lazy init
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        _time_steps(step, batches[:4], device)
        peaks[name] = _peak_memory_mb(device)
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(rounds):
        for name, (step, batches) in candidates.items():
            times[name].append(_time_steps(step, batches, device))
    if contention:
        step, batches = candidates["ours"]
        with busy_neighbour(), CpuThreads(pinned_threads(threads)):
            beside_threads = torch.get_num_threads()
            times["beside_busy"] = [_time_steps(step, batches, device) for _ in range(rounds)]
    median = {name: statistics.median(values) for name, values in times.items()}
    search_steps = steps_per_epoch(experiment) * config.epochs
    result = BenchResult(
        searcher=config.searcher, space=config.space, preset=config.preset, precision=config.precision,
        channels_last=config.channels_last, batch_size=config.batch_size, channels=config.channels,
        cells_per_stage=config.cells_per_stage, epochs=config.epochs, device=device_description(device),
        steps_per_round=steps, rounds=rounds, ours_s_per_step=median["ours"], ours_steps_per_s=1.0 / median["ours"],
        estimated_search_s=median["ours"] * search_steps, peak_memory_mb=_peak_memory_mb(device),
        torch_version=torch.__version__, cuda_graphs=config.cuda_graphs and device.type == "cuda",
        harness_version=harness.__version__, python_version=platform.python_version(),
        time=time.strftime("%Y-%m-%dT%H:%M:%S%z"), peak_memory_mb_by_step=peaks if device.type == "cuda" else None)
    if with_reference:
        result = result.model_copy(update={
            "reference_s_per_step": median["reference"], "speedup_vs_reference": median["reference"] / median["ours"],
            "reference_seeds_per_hour": 3600 / (median["reference"] * search_steps),
            "reference": experiment.space.reference_name})
    if "our_darts" in times:
        result = result.model_copy(update={"our_darts_s_per_step": median["our_darts"],
                                           "cost_vs_our_darts": median["ours"] / median["our_darts"]})
    if seeds > 1:
        batched, sequential = median["seeds_batched"], median["seeds_sequential"]
        result = result.model_copy(update={
            "seeds": seeds, "seeds_batched_s_per_step": batched, "seeds_sequential_s_per_step": sequential,
            "batching_speedup": sequential / batched,
            "seeds_per_hour_batched": 3600 * seeds / (batched * search_steps),
            "seeds_per_hour_sequential": 3600 * seeds / (sequential * search_steps),
            "batched_vs_reference_throughput": median["reference"] * seeds / batched if with_reference else None})
    if contention:
        result = result.model_copy(update={"beside_busy_s_per_step": median["beside_busy"],
                                           "beside_busy_threads": beside_threads,
                                           "contention_slowdown": median["beside_busy"] / median["ours"]})
    if results_dir is not None:
        append_jsonl(_bench_file(results_dir), result.to_json())
    return result


def _bench_file(results_dir: Path) -> Path:
    path = Path(results_dir) / "bench" / "bench.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path
