"""The device a search runs on: choosing it, describing it, and the numeric settings that go with a precision."""
from __future__ import annotations

import platform
from contextlib import contextmanager
from typing import Iterator

import torch

from foundation.errors import UserError

# Seeds computed together when ``--seed-batch`` is not given (measured by ``harness bench --seeds``, docs/timings.md:
# on a CPU, since the supernet runs each node's convolutions as one, a seed alone outruns its share of a vmapped
# batch at the quick and the paper preset). CUDA: the GPU session batches (.ci/gpu_session.sh).
SEED_BATCH_DEFAULTS = {"cpu": 1, "cuda": 4}


def default_seed_batch(device: torch.device) -> int:
    return SEED_BATCH_DEFAULTS.get(device.type, 1)


def resolve_device(name: str | None) -> torch.device:
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    index = name.removeprefix("cuda:") if name.startswith("cuda:") else None
    if name not in ("cpu", "cuda") and not (index is not None and index.isdigit()):
        raise UserError(f"unknown device {name!r} (use cpu, cuda or cuda:N, N a GPU index)")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device {name!r} requested but no CUDA GPU is available to torch {torch.__version__}")
    if index is not None and int(index) >= torch.cuda.device_count():
        raise UserError(f"device {name!r}: this machine has {torch.cuda.device_count()} GPU(s), cuda:0 to "
                        f"cuda:{torch.cuda.device_count() - 1}")
    return torch.device(name)


def cpu_model() -> str:
    """The processor's model name (Linux ``/proc/cpuinfo``), else the architecture: wall times on two machines
    of one architecture differ severalfold (docs/timings.md), so a run names the model and the vector instructions
    torch used."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            names = [line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")]
    except OSError:
        names = []
    return names[0] if names else platform.processor() or platform.machine()


def kernels_description(device: torch.device) -> str:
    """What picks the kernels, and so their float32 rounding: the GPU, or the CPU model and the vector
    instructions torch uses on it (an epoch record's ``kernels``)."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({cpu_model()}, {torch.backends.cpu.get_cpu_capability()})"


def device_description(device: torch.device) -> str:
    if device.type == "cuda":
        return kernels_description(device)
    threads = torch.get_num_threads()
    return f"{kernels_description(device)[:-1]}, {threads} thread{'s' * (threads > 1)})"


@contextmanager
def default_dtype(precision: str) -> Iterator[None]:
    """``fp64``: tensors created meanwhile (supernet, images, searcher state) are float64, so that a search is
    free of float32 rounding (golden trajectories that hold on any CPU; the noise floor of a protocol); the
    previous default is restored after."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64 if precision == "fp64" else previous)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def precision_context(precision: str, device: torch.device):
    """bf16 autocast around a whole search step (forward and backward), or nothing for fp32/tf32. Without
    autocast's cache of cast weights: a captured step's warm-ups and capture run inside one such region, and a cast
    cached by a warm-up would leave the graph without it, replaying weights cast before their first update
    (torch.cuda.graphs: autocast with ``cache_enabled=False`` under capture)."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16", cache_enabled=False)


def configure_backends(precision: str, device: torch.device) -> None:
    """fp32 means fp32: cuDNN's default TF32 convolutions are allowed only with ``precision=tf32``.
    cuDNN autotuning is on (batch shapes are fixed within an epoch)."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cudnn.allow_tf32 = precision == "tf32"
        torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
