"""Live experiment tracking: after every epoch, the record's scalars and the mixing weights as an image go to
TensorBoard and/or Weights & Biases (optional extras: ``pip install tensorboard`` / ``wandb``; ``--log``).

Each run folder logs on its own (a seed is one curve), its epoch as the step. A resumed run continues the same
curves without duplicated steps: TensorBoard events are written to ``<run>/tensorboard/`` and, when a process
(re)opens them, every event from step 1 on is purged and the records so far are logged again (so a kill between a
record and its event loses nothing); W&B (``<run>/wandb/``, offline unless the user configured W&B: an API key
or ``WANDB_MODE``) resumes the run of the same id and logs only the epochs after the records the resumed run
starts from (W&B steps only increase).
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Protocol, Sequence

import numpy as np

from foundation.errors import UserError
from foundation.records import EpochRecord

BACKENDS = ("tensorboard", "wandb")
PROJECT = "dnas-harness"
SCALARS = ("skip_count", "depth", "hessian_eig_max", "supernet_acc", "discrete_acc", "discretization_gap",
           "train_loss", "train_acc", "arch_loss", "arch_acc", "w_lr", "a_lr", "epoch_seconds", "diagnostics_seconds")


def check_backends(names: Sequence[str]) -> None:
    """``--log`` values, checked once for ``run``, the Python API and sweeps."""
    unknown = sorted(set(names) - set(BACKENDS))
    if unknown:
        raise UserError(f"bad value --log {unknown[0]}: known: {', '.join(BACKENDS)}")


class Tracker(Protocol):
    def log(self, record: EpochRecord) -> None: ...
    def close(self) -> None: ...


def scalars(record: EpochRecord) -> dict[str, float]:
    """The record's numbers by tag: look-ups as ``lookup/<key>``, decisiveness summaries as ``decisiveness/<key>``
    (its per-decision lists are left out), the rest by field name (missing ones left out)."""
    data = record.to_json()
    values = {f"lookup/{key}": value for key, value in (data.get("lookup") or {}).items()}
    values.update({f"decisiveness/{key}": value for key, value in (data.get("decisiveness") or {}).items()})
    values.update({key: data.get(key) for key in SCALARS})
    return {key: float(value) for key, value in values.items() if isinstance(value, (int, float))}


def weights_image(record: EpochRecord, scale: int = 12) -> np.ndarray | None:
    """The mixing weights (each tensor edges x ops, stacked with a blank row between) as an HWC uint8 heat map,
    each cell ``scale`` pixels wide; None for a record without weights (a diverged epoch)."""
    if not record.arch_weights:
        return None
    width = max(len(row) for matrix in record.arch_weights for row in matrix)
    rows: list[list[float]] = []
    for matrix in record.arch_weights:
        rows += [list(row) + [0.0] * (width - len(row)) for row in matrix] + [[0.0] * width]
    grid = np.asarray(rows[:-1], dtype=np.float64)
    peak = grid.max() or 1.0
    heat = (255 * (1 - grid / peak)).astype(np.uint8)  # white = 0, dark blue = the largest weight
    image = np.stack([heat, heat, np.full_like(heat, 255)], axis=-1)
    return np.kron(image, np.ones((scale, scale, 1), dtype=np.uint8))


class TensorBoardTracker:
    def __init__(self, folder: Path, records: Sequence[EpochRecord]) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise UserError("--log tensorboard needs the tensorboard package (pip install tensorboard)") from None
        self.writer = SummaryWriter(str(folder / "tensorboard"), purge_step=1)
        for record in records:
            self.log(record)

    def log(self, record: EpochRecord) -> None:
        for tag, value in scalars(record).items():
            self.writer.add_scalar(tag, value, record.epoch)
        image = weights_image(record)
        if image is not None:
            self.writer.add_image("arch_weights", image, record.epoch, dataformats="HWC")
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class WandbTracker:
    def __init__(self, folder: Path, name: str, config: dict[str, Any]) -> None:
        try:
            import wandb
        except ImportError:
            raise UserError("--log wandb needs the wandb package (pip install wandb)") from None
        configured = os.environ.get("WANDB_MODE") or ("online" if os.environ.get("WANDB_API_KEY") else "offline")
        run_id = hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:16]  # one W&B run per run folder
        (folder / "wandb").mkdir(parents=True, exist_ok=True)
        self.wandb = wandb
        self.run = wandb.init(project=PROJECT, dir=str(folder), id=run_id, name=name, config=config, resume="allow",
                              mode=configured, settings=wandb.Settings(silent=True, console="off"))

    def log(self, record: EpochRecord) -> None:
        data: dict[str, Any] = dict(scalars(record))
        image = weights_image(record)
        if image is not None:
            data["arch_weights"] = self.wandb.Image(image)
        self.run.log(data, step=record.epoch)

    def close(self) -> None:
        self.run.finish()


def open_trackers(backends: Sequence[str], folder: Path, name: str, config: dict[str, Any],
                  records: Sequence[EpochRecord]) -> list[Tracker]:
    """The trackers of one run folder, given the records it resumes from."""
    trackers: list[Tracker] = []
    if "tensorboard" in backends:
        trackers.append(TensorBoardTracker(folder, records))
    if "wandb" in backends:
        trackers.append(WandbTracker(folder, name, config))
    return trackers
