"""Memory a search needs, estimated before it starts, and the one-line answer when a device runs out anyway.

The estimate builds the configured supernet on PyTorch's ``meta`` device (shapes, no storage) and runs one
forward pass of a batch through it, adding up the bytes of every tensor autograd saves for the backward pass:
the activations, which dominate (every op of every edge keeps its input and output). Parameters count four
times (weights, gradients, SGD momentum, a copy while checkpointing). A search whose estimate exceeds the memory
the device has free is refused up front, naming the settings that drive memory; a space whose supernet cannot
run on the meta device is not estimated (nothing is guessed).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn import functional as F

from foundation.errors import UserError
from harness.config import Experiment

GIB = 2**30
PARAMETER_COPIES = 4
MEMORY_FIELDS = ("channels", "cells_per_stage", "batch_size", "precision")  # what drives a search's memory


@dataclass(frozen=True)
class Estimate:
    parameters: int  # bytes
    activations: int  # bytes saved for backward by one forward pass of a batch

    @property
    def total(self) -> int:
        return PARAMETER_COPIES * self.parameters + self.activations


def settings(experiment: Experiment) -> str:
    return ", ".join(f"{field}={getattr(experiment.config, field)}" for field in MEMORY_FIELDS)


def estimate(experiment: Experiment) -> Estimate | None:
    config = experiment.config
    try:
        with torch.device("meta"):
            supernet = experiment.build_supernet()
            size = experiment.dataset.augmentation.size
            images = torch.empty(config.batch_size, 3, size, size)
            mixing = [F.softmax(alpha, dim=-1) for alpha in supernet.arch_parameters()]
        saved = 0

        def count(tensor: torch.Tensor) -> torch.Tensor:
            nonlocal saved
            saved += tensor.numel() * tensor.element_size()
            return tensor

        with torch.autograd.graph.saved_tensors_hooks(count, lambda tensor: tensor):
            supernet(images, mixing)
    except Exception:  # noqa: BLE001 - a supernet with ops the meta device lacks is simply not estimated
        return None
    parameters = sum(p.numel() * p.element_size() for p in supernet.parameters())
    return Estimate(parameters, saved)


def free_bytes(device: torch.device) -> int | None:
    """Memory the device has free now: the GPU's, or the host's available memory (Linux); None if unknown."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            fields = dict(line.split(":", 1) for line in handle)
        return int(fields["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return None


def check_fits(experiment: Experiment, device: torch.device, seeds: int = 1) -> None:
    """UserError when the search of ``seeds`` seeds computed together (each needs what one search needs) would
    need more memory than ``device`` has free."""
    needed, free = estimate(experiment), free_bytes(device)
    if needed is None or free is None or seeds * needed.total <= free:
        return
    batch = f" (x{seeds} seeds batched: run fewer with --seed-batch)" if seeds > 1 else ""
    raise UserError(f"a search with {settings(experiment)} needs about {size(seeds * needed.total)}{batch} "
                    f"(activations {size(needed.activations)}, parameters {size(needed.parameters)} "
                    f"x{PARAMETER_COPIES} per seed) but {device.type} has {size(free)} free; lower channels, "
                    "batch_size or cells_per_stage")


def size(count: float) -> str:
    """Bytes in the unit that shows them with three significant figures (a small supernet's parameters are MiB,
    not 0.00 GiB)."""
    for unit, scale in (("GiB", GIB), ("MiB", 2**20), ("KiB", 2**10)):
        if count >= scale:
            return f"{count / scale:.3g} {unit}"
    return f"{count:.0f} B"


def out_of_memory(experiment: Experiment, device: torch.device, epoch: int, last_checkpoint: int) -> UserError:
    kept = f"the checkpoint of epoch {last_checkpoint} is kept" if last_checkpoint else "no epoch had finished"
    return UserError(f"out of {device.type} memory in epoch {epoch} with {settings(experiment)}; {kept}: free "
                     "memory and re-run to resume, or lower channels or batch_size (a new run folder)")


def is_out_of_memory(exc: BaseException) -> bool:
    """CUDA's OutOfMemoryError, Python's MemoryError, or the CPU allocator's failure (a RuntimeError)."""
    return isinstance(exc, (torch.OutOfMemoryError, MemoryError)) or (
        isinstance(exc, RuntimeError) and "can't allocate memory" in str(exc))
