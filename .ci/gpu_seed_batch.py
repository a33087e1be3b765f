"""GPU check of the batched step (run on a lent GPU by .ci/gpu_seed_batch.sh), paper preset, fp32, 4 seeds:

1. graphed vs eager: for every searcher that may be captured (``graph_capturable``), and for DrNAS (its Dirichlet
   draws come from per-seed device generators registered with the graph; not capturable until this passes), the
   batched step replayed from a CUDA graph against the eager batched step, lock-step over 10 steps (before each
   step the graphed searcher is set to the eager one's state): the worst loss and relative gradient differences;
2. batched vs alone on CUDA: the first step's per-seed losses of the 4 seeds batched against each seed alone.
Prints one JSON line; exit 1 when a captured step departs from the eager one beyond fp32 rounding.
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
from searchers import builtin_searchers
from searchers.context import EpochStats

STEPS, SEEDS = 10, [0, 1, 2, 3]


def searcher(name: str, device: torch.device, seeds: list[int]):
    experiment = configure("nb201", name, "paper", [])
    configure_backends(experiment.config.precision, device)
    built = build_searcher(experiment, device, 391, (25_000, 25_000), seeds)
    built.reseed([1000 + seed for seed in seeds])
    return experiment, built


def graphed_vs_eager(name: str, device: torch.device) -> dict:
    experiment, eager = searcher(name, device, SEEDS)
    _, graphed = searcher(name, device, SEEDS)
    type(graphed).graph_capturable = True
    replay = GraphedStep(graphed, device, use_graph=True).step
    batches = _batches(experiment, device, 2 * STEPS, seeds=len(SEEDS))
    worst = {"loss": 0.0, "grad_rel": 0.0}
    for i in range(STEPS):
        with torch.no_grad():
            for theirs, ours in zip(state_tensors(graphed), state_tensors(eager), strict=True):
                theirs.copy_(ours)
            for theirs, ours in zip(graphed.generators, eager.generators):
                theirs.set_state(ours.get_state())
        losses = []
        for each, step in ((eager, eager.step), (graphed, replay)):
            each.set_learning_rate(1, i)
            stats = EpochStats(device, len(SEEDS)), EpochStats(device, len(SEEDS))
            step(batches[2 * i], batches[2 * i + 1], *stats)
            losses.append([s["loss"] for part in stats for s in part.read()])
        worst["loss"] = max(worst["loss"], *(abs(a - b) for a, b in zip(*losses)))
        for p_eager, p_graph in zip([*eager.alphas, *eager.weights], [*graphed.alphas, *graphed.weights]):
            if p_eager.grad is not None:
                rel = ((p_eager.grad - p_graph.grad).norm() / p_eager.grad.norm().clamp_min(1e-12)).item()
                worst["grad_rel"] = max(worst["grad_rel"], rel)
    return worst


def batched_vs_alone(device: torch.device) -> float:
    experiment, batched = searcher("darts", device, SEEDS)
    batches = _batches(experiment, device, 2, seeds=len(SEEDS))
    stats = EpochStats(device, len(SEEDS)), EpochStats(device, len(SEEDS))
    batched.step(*batches, *stats)
    together = [s["loss"] for part in stats for s in part.read()]
    worst = 0.0
    for index, seed in enumerate(SEEDS):
        _, alone = searcher("darts", device, [seed])
        mine = [type(b)(b.images[index:index + 1], b.labels[index:index + 1], b.indices[index:index + 1])
                for b in batches]
        stats = EpochStats(device, 1), EpochStats(device, 1)
        alone.step(*mine, *stats)
        lone = [s["loss"] for part in stats for s in part.read()]
        worst = max(worst, abs(together[index] - lone[0]), abs(together[len(SEEDS) + index] - lone[1]))
    return worst


def main() -> None:
    device = torch.device("cuda")
    names = [name for name, cls in builtin_searchers().items() if cls.graph_capturable] + ["drnas"]
    result = {"device": torch.cuda.get_device_name(device), "torch": torch.__version__,
              "batched_vs_alone_first_step_max_loss_diff": batched_vs_alone(device)}
    for name in names:
        try:
            result[f"graphed_vs_eager_{name}"] = graphed_vs_eager(name, device)
        except Exception as exc:  # noqa: BLE001 - a searcher that cannot be captured is reported, not fatal
            result[f"graphed_vs_eager_{name}"] = f"{type(exc).__name__}: {str(exc)[:300]}"
    print(json.dumps(result))
    captured = [v for k, v in result.items() if k.startswith("graphed_vs_eager_darts") and isinstance(v, dict)]
    sys.exit(0 if captured and all(v["loss"] < 1e-4 and v["grad_rel"] < 1e-3 for v in captured) else 1)


if __name__ == "__main__":
    main()
