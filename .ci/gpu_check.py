"""Part (a) of the GPU session (``.ci/gpu_session.sh``): for every built-in searcher, on the device,

1. graphed vs eager (capturable searchers), over three epochs of ``--steps`` steps each (so each epoch's
   recapture runs, and SD-DARTS distils from the epochs before), with the epoch ends the runner calls:
   - lock-step: before each step the graphed searcher is set to the eager one's state (parameters, buffers,
     optimiser state, the tensors it holds, each seed's generator); the worst loss difference and relative
     gradient difference, and a verdict against the searcher's fp32 tolerance (``tests/test_seed_batch.py``'s);
   - free-running: the same steps from the same start without any setting (a replay that failed to advance a
     registered generator would draw the same numbers again): the worst loss difference;
2. batched vs alone: the first step's per-seed losses of the seeds computed together against each seed alone.

The reduced preset's supernet (C=4) by default: capture and batching do not depend on the width, and it leaves the
session's minutes to the runs. The paper's searchers first; those not reached in ``--budget`` seconds are listed.
One JSON line per searcher as it finishes (a timeout loses only the one in progress), then a last line with the
device and the searchers not reached. A failure is recorded with its whole chain (a failed capture re-raises as
"operation failed due to a previous error during capture") and the next searcher starts on the default stream.
On a CPU (the dry run) the graph is replaced by the static-buffer path.

    python3 .ci/gpu_check.py [--device cuda] [--preset reduced] [--seeds 4] [--steps 3] [--budget 150]
"""
from __future__ import annotations

import argparse
import json
import time
import traceback

import torch

from harness.bench import _batches
from harness.config import configure
from harness.device import configure_backends
from harness.graphed import GraphedStep, copy_state
from harness.runner import build_searcher
from searchers import builtin_searchers
from searchers.context import EpochStats
from searchers.searcher import Searcher

FIRST = ["darts", "sd_darts_voted", "sd_darts", "tse_darts", "drnas", "tse_drnas", "darts2", "gdas"]
TOLERANCE = 1e-4  # fp32 rounding of one step on noise images, loss and relative gradient
TOLERANCES = {"darts2": 5e-2, "idarts": 5e-2, "lambda_darts": 5e-3}  # finite differences divide rounding
EPOCHS = 3


def build(name: str, preset: str, device: torch.device, seeds: list[int]) -> tuple[object, Searcher]:
    experiment = configure("nb201", name, preset, [])
    configure_backends(experiment.config.precision, device)
    size = experiment.config.batch_size * 8
    return experiment, build_searcher(experiment, device, 8, (size, size), seeds)


def begin(searcher: Searcher, seeds: list[int], epoch: int) -> None:
    searcher.reseed([1000 * epoch + seed for seed in seeds])
    searcher.begin_epoch(epoch)


def batches(experiment, device: torch.device, count: int, seeds: int, clean: bool) -> list:  # noqa: ANN001
    made = _batches(experiment, device, count, seeds=seeds)
    if clean:
        for batch in made:
            batch.clean = batch.images.clone()
    return made


def graphed_vs_eager(name: str, preset: str, device: torch.device, seeds: list[int], steps: int) -> dict:
    """Three epochs ending at the preset's last (past every warm-up), lock-step and then free-running."""
    result = {}
    for mode in ("lock_step", "free_running"):
        experiment, eager = build(name, preset, device, seeds)
        _, graphed = build(name, preset, device, seeds)
        replay = GraphedStep(graphed, device, use_graph=device.type == "cuda").step
        data = batches(experiment, device, 2 * steps * EPOCHS, len(seeds), eager.wants_clean_images)
        worst = {"loss": 0.0, "grad_rel": 0.0}
        last = experiment.config.epochs
        for index in range(steps * EPOCHS):
            epoch, step = last - EPOCHS + 1 + index // steps, index % steps
            if step == 0:
                for each in (eager, graphed):
                    if index:
                        each.end_epoch(epoch - 1)
                    begin(each, seeds, epoch)
            if mode == "lock_step":
                copy_state(graphed, eager)
            losses = []
            for each, step_fn in ((eager, eager.step), (graphed, replay)):
                each.set_learning_rate(epoch, step)
                stats = EpochStats(device, len(seeds)), EpochStats(device, len(seeds))
                step_fn(data[2 * index], data[2 * index + 1], *stats)
                losses.append([s["loss"] for part in stats for s in part.read()])
            worst["loss"] = max(worst["loss"], *(abs(a - b) for a, b in zip(*losses)))
            for ours, theirs in zip([*eager.alphas, *eager.weights], [*graphed.alphas, *graphed.weights]):
                if mode == "lock_step" and ours.grad is not None and theirs.grad is not None:
                    rel = ((ours.grad - theirs.grad).norm() / ours.grad.norm().clamp_min(1e-12)).item()
                    worst["grad_rel"] = max(worst["grad_rel"], rel)
        result[mode] = worst if mode == "lock_step" else {"loss": worst["loss"]}
    tolerance = TOLERANCES.get(name, TOLERANCE)
    result["verdict"] = "ok" if max(result["lock_step"].values()) <= tolerance else "departs"
    result["tolerance"] = tolerance
    return result


def batched_vs_alone(name: str, preset: str, device: torch.device, seeds: list[int]) -> float:
    experiment, together = build(name, preset, device, seeds)
    begin(together, seeds, experiment.config.epochs)
    data = batches(experiment, device, 2, len(seeds), together.wants_clean_images)
    stats = EpochStats(device, len(seeds)), EpochStats(device, len(seeds))
    together.step(*data, *stats)
    batched = [[s["loss"] for s in part.read()] for part in stats]
    worst = 0.0
    for index, seed in enumerate(seeds):
        _, alone = build(name, preset, device, [seed])
        begin(alone, [seed], experiment.config.epochs)
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
    parser.add_argument("--steps", type=int, default=3, help="steps per epoch (three epochs)")
    parser.add_argument("--budget", type=float, default=150.0, help="seconds; searchers not reached are listed")
    args = parser.parse_args()
    device, seeds, start = torch.device(args.device), list(range(args.seeds)), time.monotonic()
    registry = builtin_searchers()
    names = [n for n in FIRST if n in registry] + sorted(set(registry) - set(FIRST))
    not_reached = []
    for name in names:
        if time.monotonic() - start > args.budget:
            not_reached.append(name)
            continue
        entry: dict = {"searcher": name, "capturable": registry[name].graph_capturable}
        began = time.monotonic()
        try:
            entry["batched_vs_alone_loss"] = batched_vs_alone(name, args.preset, device, seeds)
            if registry[name].graph_capturable:
                entry["graphed_vs_eager"] = graphed_vs_eager(name, args.preset, device, seeds, args.steps)
        except Exception as exc:  # noqa: BLE001 - one searcher's failure is reported, the others go on
            entry["error"] = "".join(traceback.format_exception(exc))[-3000:]
            if device.type == "cuda":  # a failed capture leaves its stream current
                torch.cuda.set_stream(torch.cuda.default_stream(device))
        entry["seconds"] = round(time.monotonic() - began, 1)
        print(json.dumps(entry), flush=True)
    print(json.dumps({"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                      "torch": torch.__version__, "preset": args.preset, "seeds": args.seeds, "steps": args.steps,
                      "not_reached": not_reached}), flush=True)


if __name__ == "__main__":
    main()
