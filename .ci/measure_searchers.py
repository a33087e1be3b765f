"""Seconds per search step of every searcher at a preset, and the diagnostics' cost, on one device.

Used for the closing notes (CPU) and on a lent GPU; the diagnostics read real held-out images from the data
directory (``$HARNESS_DATA``).
Usage: python .ci/measure_searchers.py DEVICE PRESET STEPS [exact,power] [SEEDS]  (SEEDS computed together, default 1)
"""
import json
import sys
import time

import torch

from foundation.paths import resolve_data_dir
from harness.bench import _batches, _sync
from harness.config import configure
from harness.device import configure_backends
from harness.diagnostics import epoch_diagnostics
from harness.runner import build_searcher, device_data
from searchers import builtin_searchers
from searchers.context import EpochStats

device, preset, steps = torch.device(sys.argv[1]), sys.argv[2], int(sys.argv[3])
seeds = int(sys.argv[5]) if len(sys.argv) > 5 else 1
results = {}
for name in builtin_searchers():
    experiment = configure("nb201", name, preset, [])
    config = experiment.config
    configure_backends(config.precision, device)
    torch.manual_seed(0)
    searcher = build_searcher(experiment, device, 391, (config.batch_size, config.batch_size), list(range(seeds)))
    batches = _batches(experiment, device, 2 * (steps + 1), seeds=seeds)
    stats = EpochStats(device, seeds), EpochStats(device, seeds)
    searcher.begin_epoch(30)  # past SD-DARTS's warm-up: the distillation term is active
    if name.startswith("sd_darts"):
        searcher.previous = ([{h: torch.full_like(t, 0.1) for h, t in searcher.current.items()}]
                             * searcher.options.teacher_epochs)
    searcher.step(batches[0], batches[1], *stats)  # warm-up
    _sync(device)
    started = time.perf_counter()
    pairs = 0
    for i in range(2, len(batches) - 1, 2):
        searcher.step(batches[i], batches[i + 1], *stats)
        pairs += 1
    if hasattr(searcher, "window") and searcher.window:
        searcher.end_epoch(30)  # TSE: run the pending (shorter) outer step so its cost is counted
    _sync(device)
    per_step = (time.perf_counter() - started) / pairs
    results[name] = {"s_per_step": per_step, "s_per_epoch_391_steps": per_step * 391}
    print(f"{name:<16} {per_step:8.3f} s/step  ~{per_step * 391 / 60:7.1f} min/epoch (391 steps)", flush=True)
experiment = configure("nb201", "darts", preset, [])
config = experiment.config
searcher = build_searcher(experiment, device, 391, (config.batch_size, config.batch_size), list(range(seeds)))
# diagnostics on real held-out images (their spectrum sets the Lanczos products; noise images take ~3x more)
inputs = device_data(str(resolve_data_dir()), config.dataset, config.batch_size, str(device), config.channels_last,
                      config.eval_images)
evaluation = inputs.heldout.fixed_batches(config.eval_images, config.batch_size)
hessian = inputs.heldout.fixed_batches(config.hessian_images, config.batch_size)
epoch_s = results["darts"]["s_per_epoch_391_steps"]
for method in (sys.argv[4] if len(sys.argv) > 4 else "exact,power").split(","):
    _sync(device)
    diag = epoch_diagnostics(searcher, evaluation, hessian, method, experiment.space.discrete_weights)[0]
    results[f"diagnostics_{method}"] = diag.model_dump()
    print(f"diagnostics ({method}, accuracies on {config.eval_images} images, Hessian on {config.hessian_images}): "
          f"{diag.diagnostics_seconds:.1f} s ({100 * diag.diagnostics_seconds / epoch_s:.1f} % of a DARTS epoch), "
          f"eig {diag.hessian_eig_max:.4g}", flush=True)
print(json.dumps(results))
