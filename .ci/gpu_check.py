"""Part (a) of the GPU session (``.ci/gpu_session.sh``): for every built-in searcher, on the device,

1. graphed vs eager (capturable searchers): the step replayed from a CUDA graph against the eager step, lock-step
   (before each step the graphed searcher is set to the eager one's state: parameters, buffers, optimiser state,
   the tensors it holds and each seed's generator), fp32: the worst loss difference and relative gradient
   difference over the steps;
2. batched vs alone: the first step's per-seed losses of the seeds computed together against each seed alone.

The reduced preset's supernet (C=4) by default: capture and batching do not depend on the width, and it leaves the
session's minutes to the runs. The paper's searchers first; a searcher not reached in ``--budget`` seconds is
listed as such. On a CPU (the dry run) the graph is replaced by the static-buffer path. Prints one JSON object.

    python3 .ci/gpu_check.py [--device cuda] [--preset reduced] [--seeds 4] [--steps 5] [--budget 150]
"""
from __future__ import annotations

import argparse
import json
import time

import torch

from harness.bench import _batches
from harness.config import configure
from harness.device import configure_backends
from harness.graphed import GraphedStep, held_tensors, state_tensors
from harness.runner import build_searcher
from searchers import builtin_searchers
from searchers.context import EpochStats
from searchers.searcher import Searcher

FIRST = ["darts", "sd_darts_voted", "sd_darts", "tse_darts", "drnas", "tse_drnas", "darts2", "gdas"]
TOLERANCE = {"loss": 1e-4, "grad_rel": 1e-3}  # fp32 rounding of one step (tests/test_equivalence.py)


def build(name: str, preset: str, device: torch.device, seeds: list[int]) -> tuple[object, Searcher]:
    experiment = configure("nb201", name, preset, [])
    configure_backends(experiment.config.precision, device)
    size = experiment.config.batch_size * 8
    searcher = build_searcher(experiment, device, 8, (size, size), seeds)
    searcher.reseed([1000 + seed for seed in seeds])
    searcher.begin_epoch(experiment.config.epochs)  # past every warm-up: the step as it is at the end
    return experiment, searcher


def batches(experiment, device: torch.device, count: int, seeds: int, clean: bool) -> list:  # noqa: ANN001
    made = _batches(experiment, device, count, seeds=seeds)
    if clean:
        for batch in made:
            batch.clean = batch.images.clone()
    return made


def graphed_vs_eager(name: str, preset: str, device: torch.device, seeds: list[int], steps: int) -> dict:
    experiment, eager = build(name, preset, device, seeds)
    _, graphed = build(name, preset, device, seeds)
    replay = GraphedStep(graphed, device, use_graph=device.type == "cuda").step
    data = batches(experiment, device, 2 * steps, len(seeds), eager.wants_clean_images)
    worst = {"loss": 0.0, "grad_rel": 0.0}
    for i in range(steps):
        with torch.no_grad():
            for theirs, ours in zip([*state_tensors(graphed), *held_tensors(graphed)],
                                    [*state_tensors(eager), *held_tensors(eager)], strict=True):
                theirs.copy_(ours)
        for theirs, ours in zip(graphed.generators, eager.generators):
            theirs.set_state(ours.get_state())
        losses = []
        for each, step in ((eager, eager.step), (graphed, replay)):
            each.set_learning_rate(experiment.config.epochs, i)
            stats = EpochStats(device, len(seeds)), EpochStats(device, len(seeds))
            step(data[2 * i], data[2 * i + 1], *stats)
            losses.append([s["loss"] for part in stats for s in part.read()])
        worst["loss"] = max(worst["loss"], *(abs(a - b) for a, b in zip(*losses)))
        for ours, theirs in zip([*eager.alphas, *eager.weights], [*graphed.alphas, *graphed.weights]):
            if ours.grad is not None and theirs.grad is not None:
                rel = ((ours.grad - theirs.grad).norm() / ours.grad.norm().clamp_min(1e-12)).item()
                worst["grad_rel"] = max(worst["grad_rel"], rel)
    return worst


def batched_vs_alone(name: str, preset: str, device: torch.device, seeds: list[int]) -> float:
    experiment, together = build(name, preset, device, seeds)
    data = batches(experiment, device, 2, len(seeds), together.wants_clean_images)
    stats = EpochStats(device, len(seeds)), EpochStats(device, len(seeds))
    together.step(*data, *stats)
    batched = [[s["loss"] for s in part.read()] for part in stats]
    worst = 0.0
    for index, seed in enumerate(seeds):
        _, alone = build(name, preset, device, [seed])
        mine = [type(b)(*(None if t is None else t[index:index + 1] for t in (b.images, b.labels, b.indices, b.clean)))
                for b in data]
        stats = EpochStats(device, 1), EpochStats(device, 1)
        alone.step(*mine, *stats)
        lone = [[s["loss"] for s in part.read()] for part in stats]
        worst = max(worst, *(abs(part[index] - own[0]) for part, own in zip(batched, lone)))
    return worst


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--preset", default="reduced")
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--budget", type=float, default=150.0, help="seconds; searchers not reached are listed")
    args = parser.parse_args()
    device, seeds, start = torch.device(args.device), list(range(args.seeds)), time.monotonic()
    registry = builtin_searchers()
    names = [n for n in FIRST if n in registry] + sorted(set(registry) - set(FIRST))
    result: dict = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                    "torch": torch.__version__, "preset": args.preset, "seeds": args.seeds, "steps": args.steps,
                    "tolerance": TOLERANCE, "searchers": {}, "not_reached": []}
    for name in names:
        if time.monotonic() - start > args.budget:
            result["not_reached"].append(name)
            continue
        entry: dict = {"capturable": registry[name].graph_capturable}
        began = time.monotonic()
        try:
            entry["batched_vs_alone_loss"] = batched_vs_alone(name, args.preset, device, seeds)
            if registry[name].graph_capturable:
                entry["graphed_vs_eager"] = graphed_vs_eager(name, args.preset, device, seeds, args.steps)
                entry["verdict"] = "ok" if all(entry["graphed_vs_eager"][k] <= v for k, v in TOLERANCE.items()) \
                    else "departs"
        except Exception as exc:  # noqa: BLE001 - one searcher's failure is reported, the others go on
            entry["error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
        entry["seconds"] = round(time.monotonic() - began, 1)
        result["searchers"][name] = entry
    print(json.dumps(result))


if __name__ == "__main__":
    main()
