"""GPU check of the CUDA-graph step (run on a lent GPU by .ci/gpu_graphs.sh): the paper-preset DARTS step replayed
from a CUDA graph against the eager step, 20 steps from the same initial state, in fp32.

Lock-step: before each step the graphed searcher is set (in place) to the eager one's state; the step's losses
and gradients are compared. Free-running: both run 20 steps on their own; the loss difference per step is
printed (fp32 rounding grows along a trajectory, see tests/test_equivalence.py). Prints one JSON line.
"""
from __future__ import annotations

import json
import sys

import torch

from harness.bench import _batches
from harness.config import configure
from harness.device import configure_backends
from harness.graphed import GraphedStep, state_tensors
from harness.runner import build_searcher
from searchers.context import EpochStats

STEPS = 20


def main() -> None:
    device = torch.device("cuda")
    experiment = configure("nb201", "darts", "paper", [])
    config = experiment.config
    configure_backends(config.precision, device)
    batches = _batches(experiment, device, 2 * STEPS)
    pairs = [(batches[2 * i], batches[2 * i + 1]) for i in range(STEPS)]
    searchers = []
    for _ in range(2):
        torch.manual_seed(0)
        searchers.append(build_searcher(experiment, device, 391, (25_000, 25_000)))
    eager, graphed = searchers
    replay = GraphedStep(graphed, device, use_graph=True).step
    worst = {"loss": 0.0, "grad_rel": 0.0}
    for i, (wb, ab) in enumerate(pairs):
        with torch.no_grad():
            for theirs, ours in zip(state_tensors(graphed), state_tensors(eager), strict=True):
                theirs.copy_(ours)
        losses = []
        for searcher, step in ((eager, eager.step), (graphed, replay)):
            searcher.set_learning_rate(1, i)
            stats = EpochStats(device), EpochStats(device)
            step(wb, ab, *stats)
            losses.append([s.read()["loss"] for s in stats])
        worst["loss"] = max(worst["loss"], *(abs(a - b) for a, b in zip(*losses)))
        for p_eager, p_graph in zip([*eager.alphas, *eager.weights], [*graphed.alphas, *graphed.weights]):
            rel = ((p_eager.grad - p_graph.grad).norm() / p_eager.grad.norm().clamp_min(1e-12)).item()
            worst["grad_rel"] = max(worst["grad_rel"], rel)
    free = []
    searchers = []
    for _ in range(2):
        torch.manual_seed(1)
        searchers.append(build_searcher(experiment, device, 391, (25_000, 25_000)))
    steps = [searchers[0].step, GraphedStep(searchers[1], device, use_graph=True).step]
    for i, (wb, ab) in enumerate(pairs):
        row = []
        for searcher, step in zip(searchers, steps):
            searcher.set_learning_rate(1, i)
            stats = EpochStats(device), EpochStats(device)
            step(wb, ab, *stats)
            row.append(stats[0].read()["loss"])
        free.append(abs(row[0] - row[1]))
    result = {"lockstep_max_loss_diff": worst["loss"], "lockstep_max_grad_rel_diff": worst["grad_rel"],
              "free_running_loss_diff_per_step": free, "device": torch.cuda.get_device_name(device),
              "torch": torch.__version__}
    print(json.dumps(result))
    sys.exit(0 if worst["loss"] < 1e-4 and worst["grad_rel"] < 1e-3 else 1)


if __name__ == "__main__":
    main()
