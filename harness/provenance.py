"""What ``config.json`` holds besides the configuration: how the run differs from its preset, the classes and
versions that ran it, the device, the seeds computed with it, the data, the look-up table, the supernet's
BatchNorm settings and the diagnostics' evaluation set."""
from __future__ import annotations

import os
import platform
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

import harness
from benchmarks.data_stream import Batch
from benchmarks.search_space import SearchSpace
from harness.config import Experiment
from harness.device import device_description

EVAL_SETS = {"heldout": "held out: the first {dataset} {heldout}-set images that no searcher trains on "
                        "(benchmarks.images)",
             "arch_half": "the first images of the architecture half"}


def git_commit() -> str | None:
    """The checkout's HEAD; where the code travelled without its ``.git`` (a copy of the tree on a lent GPU
    machine, ``.ci/gpu_session.sh``), ``$HARNESS_GIT_COMMIT`` as the copy's maker wrote it."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(harness.__file__).parent, capture_output=True,
                             text=True, timeout=5)
        commit = out.stdout.strip()
        if len(commit) == 40:
            return commit
    except (OSError, subprocess.SubprocessError):
        pass
    return os.environ.get("HARNESS_GIT_COMMIT") or None


def batch_norm_settings(supernet: nn.Module) -> list[dict[str, Any]]:
    """The supernet's distinct BatchNorm configurations and how many layers have each (affine parameters and
    running statistics in search cells are a known source of disagreement between published DARTS numbers).
    During search and diagnostics BN normalises by batch statistics."""
    counts = Counter((m.affine, m.track_running_stats, m.momentum, m.eps) for m in supernet.modules()
                     if isinstance(m, nn.modules.batchnorm._BatchNorm))
    return [{"affine": affine, "track_running_stats": track, "momentum": momentum, "eps": eps, "layers": layers}
            for (affine, track, momentum, eps), layers in counts.items()]


def run_provenance(experiment: Experiment, space: SearchSpace, device: torch.device, data: dict[str, Any],
                   batch: Sequence[int], eval_batches: list[Batch], hessian_batches: list[Batch],
                   thread_policy: str) -> dict[str, Any]:
    """Everything ``config.json`` holds besides the configuration, for a run computed with the seeds ``batch``;
    ``thread_policy``: how the CPU thread count was chosen (``harness.threads``; the count at the start is in
    ``device``, each epoch's in its record)."""
    config = experiment.config
    count = lambda batches: sum(len(b.labels) for b in batches)  # noqa: E731
    eval_set = EVAL_SETS[config.eval_set].format(dataset=data["dataset"], heldout=data["halves"]["heldout"])
    return {
        "config_name": experiment.name, "overrides": experiment.overrides, **experiment.classes(),
        "harness_version": harness.__version__, "git_commit": git_commit(), "torch_version": torch.__version__,
        "python_version": platform.python_version(), "numpy_version": np.__version__,
        "device": device_description(device), "thread_policy": thread_policy, "seed_batch": list(batch), "data": data,
        "table": space.table_provenance(), "batch_norm": batch_norm_settings(experiment.build_supernet()),
        "diagnostics": {"hessian_method": config.hessian_method, "every": config.diagnostics_every,
                        "eval_set": eval_set, "eval_images": count(eval_batches),
                        "hessian_images": count(hessian_batches)},
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
