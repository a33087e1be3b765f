"""``harness bench``: our search step of a preset against the reference (xautodl DARTS-V1) on one device.

Both run in the same process on the same device with the same batch size, on the same synthetic batches
(data loading is excluded from both: the reference's loader is slower still), after warm-up, in alternating
rounds; the median round gives the time per step. The reference step is the search space's
(``SearchSpace.reference_step``; NB201: xautodl's DARTS-V1). For a searcher other than DARTS, the DARTS step it
modifies (the ``Darts`` base class) is timed too (``cost_vs_our_darts`` = its step time / DARTS's).
With ``seeds`` > 1 it also times that many independent searches stepped one after the other against the same
stepped concurrently, each on its own CUDA stream (the aggregate-throughput measure for several seeds in one
process). Results are printed and appended to ``results/bench/bench.jsonl`` with device and versions.
"""
from __future__ import annotations

import platform
import resource
import statistics
import time
from pathlib import Path
from typing import Any, Callable

import torch

import harness
from benchmarks.data_stream import Batch
from foundation.atomic import append_jsonl
from harness.config import Experiment
from harness.device import configure_backends, device_description, precision_context
from harness.graphed import search_step
from harness.runner import build_searcher
from searchers.context import EpochStats
from searchers.darts import Darts

STEPS_PER_EPOCH_PAPER = 391  # 25,000 images / batch 64, last batch partial


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _batches(experiment: Experiment, device: torch.device, count: int) -> list[Batch]:
    config, classes = experiment.config, experiment.space.num_classes
    generator = torch.Generator().manual_seed(0)
    layout = torch.channels_last if config.channels_last else torch.contiguous_format
    return [Batch(torch.randn(config.batch_size, 3, 32, 32, generator=generator).to(device).contiguous(memory_format=layout),
                  torch.randint(0, classes, (config.batch_size,), generator=generator).to(device),
                  torch.arange(config.batch_size, device=device)) for _ in range(count)]


def our_step(experiment: Experiment, device: torch.device) -> Callable[[Batch, Batch], None]:
    config = experiment.config
    searcher = build_searcher(experiment, device, STEPS_PER_EPOCH_PAPER, (config.batch_size, config.batch_size))
    weight_stats, arch_stats = EpochStats(device), EpochStats(device)
    step_fn = search_step(searcher, device, config.cuda_graphs)

    def step(weight_batch: Batch, arch_batch: Batch) -> None:
        with precision_context(config.precision, device):
            step_fn(weight_batch, arch_batch, weight_stats, arch_stats)
    return step


def _seed_steps(experiment: Experiment, device: torch.device, seeds: int) -> tuple[Callable, Callable]:
    """``seeds`` independent searches stepped one after the other, and the same stepped concurrently, each on
    its own CUDA stream (on a CPU both are the sequential loop)."""
    steps = []
    for seed in range(seeds):
        torch.manual_seed(seed)
        steps.append(our_step(experiment, device))
    streams = [torch.cuda.Stream(device) for _ in steps] if device.type == "cuda" else []

    def sequential(weight_batch: Batch, arch_batch: Batch) -> None:
        for step in steps:
            step(weight_batch, arch_batch)

    def concurrent(weight_batch: Batch, arch_batch: Batch) -> None:
        if not streams:
            return sequential(weight_batch, arch_batch)
        main = torch.cuda.current_stream(device)
        for step, stream in zip(steps, streams):
            stream.wait_stream(main)
            with torch.cuda.stream(stream):
                step(weight_batch, arch_batch)
        for stream in streams:
            main.wait_stream(stream)
    return sequential, concurrent


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


def run_bench(experiment: Experiment, device: torch.device, steps: int, rounds: int, with_reference: bool,
              results_dir: Path | None, seeds: int = 1) -> dict[str, Any]:
    config = experiment.config
    configure_backends(config.precision, device)
    torch.manual_seed(0)
    batches = _batches(experiment, device, 2 * steps)
    candidates = {"ours": our_step(experiment, device)}
    if with_reference:
        candidates["reference"] = experiment.space.reference_step(config, device)
    if experiment.searcher is not Darts:  # the cost of a searcher relative to the DARTS step it modifies
        darts = config.model_copy(update={"searcher": Darts.name, "searcher_options": {}})
        candidates["our_darts"] = our_step(Experiment(darts, experiment.space, Darts), device)
    if seeds > 1:
        candidates["seeds_sequential"], candidates["seeds_concurrent"] = _seed_steps(experiment, device, seeds)
    for step in candidates.values():  # warm-up: allocator, cuDNN autotuning, lazy init
        _time_steps(step, batches[:4], device)
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(rounds):
        for name, step in candidates.items():
            times[name].append(_time_steps(step, batches, device))
    ours = statistics.median(times["ours"])
    result: dict[str, Any] = {
        "searcher": config.searcher, "space": config.space, "preset": config.preset, "precision": config.precision,
        "channels_last": config.channels_last, "batch_size": config.batch_size, "channels": config.channels,
        "cells_per_stage": config.cells_per_stage, "device": device_description(device),
        "steps_per_round": steps, "rounds": rounds, "ours_s_per_step": ours, "ours_steps_per_s": 1.0 / ours,
        "estimated_search_s": ours * STEPS_PER_EPOCH_PAPER * config.epochs,
        "peak_memory_mb": _peak_memory_mb(device), "torch_version": torch.__version__,
        "cuda_graphs": config.cuda_graphs and device.type == "cuda",
        "harness_version": harness.__version__, "python_version": platform.python_version(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if with_reference:
        reference = statistics.median(times["reference"])
        result.update({"reference_s_per_step": reference, "speedup_vs_reference": reference / ours,
                       "reference": experiment.space.reference_name})
    if "our_darts" in times:
        result.update({"our_darts_s_per_step": statistics.median(times["our_darts"]),
                       "cost_vs_our_darts": ours / statistics.median(times["our_darts"])})
    if seeds > 1:
        sequential, concurrent = (statistics.median(times[k]) for k in ("seeds_sequential", "seeds_concurrent"))
        result.update({"seeds": seeds, "seeds_sequential_s_per_step": sequential,
                       "seeds_concurrent_s_per_step": concurrent, "multi_seed_speedup": sequential / concurrent})
    if results_dir is not None:
        append_jsonl(_bench_file(results_dir), result)
    return result


def _bench_file(results_dir: Path) -> Path:
    path = Path(results_dir) / "bench" / "bench.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path
