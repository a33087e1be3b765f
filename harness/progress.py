"""How long a run will take, said early and corrected as it goes, and the progress bar of an epoch.

The first steps of a session are not representative (allocation, thread pools, caches, cuDNN autotuning): the
first estimate times the ``MEASURED_STEPS`` steps after ``WARMUP_STEPS`` of them and scales to the epochs left,
adding the diagnostics after each epoch that has them, probed before the first epoch
(``harness.diagnostics.probe_seconds``). After every epoch the estimate is redone from what that epoch really
took, search and diagnostics apart, which is what the rest of the run will repeat. On an interactive
terminal each epoch has a tqdm bar (steps/s, the epoch's ETA, and the run's remaining time); elsewhere only lines.
"""
from __future__ import annotations

import sys
import time
from typing import Callable

import torch

WARMUP_STEPS = 2
MEASURED_STEPS = 5


def duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


class RunClock:
    """Estimates for one session of a run: the epochs still to run, ``steps`` steps each, with diagnostics after
    the epochs in ``diagnostics_due`` costing ``diagnostics_each`` seconds (probed before the first epoch, then as
    measured)."""

    def __init__(self, log: Callable[[str], None], device: torch.device, epochs: list[int], steps: int, where: str,
                 diagnostics_due: Callable[[int], bool], diagnostics_each: float) -> None:
        self.log, self.device, self.steps, self.where = log, device, steps, where
        self.epochs = list(epochs)  # not yet finished
        self.due, self.diagnostics_each = diagnostics_due, diagnostics_each
        self.per_step: float | None = None  # search seconds per step
        self.measure_from: float | None = None
        self.first_epoch = True

    def _now(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def _left(self, search_steps: int, epochs: list[int]) -> float:
        return (self.per_step or 0.0) * search_steps + self.diagnostics_each * sum(map(self.due, epochs))

    def after_step(self, step: int) -> None:
        """Called after step ``step`` (0-based) of an epoch: the first epoch of the session times its steps."""
        if not self.first_epoch:
            return
        if step == WARMUP_STEPS - 1:
            self.measure_from = self._now()
        elif self.measure_from is not None and step == min(WARMUP_STEPS + MEASURED_STEPS, self.steps) - 1:
            self.per_step = (self._now() - self.measure_from) / (step - WARMUP_STEPS + 1)
            diagnostics = sum(map(self.due, self.epochs))
            self.log(f"{self.per_step:.3f} s/step on {self.where}: about "
                     f"{duration(self._left(self.steps * len(self.epochs), self.epochs))} for {len(self.epochs)} "
                     f"epoch(s) of {self.steps} steps" + (f", diagnostics after {diagnostics} of them (about "
                                                            f"{duration(self.diagnostics_each)} each)" if diagnostics
                                                            else ""))

    def after_epoch(self, search_seconds: float, diagnostics_seconds: float | None) -> str:
        """The finished epoch's measured costs replace the estimates; the time left, for the epoch's line."""
        self.first_epoch = False
        self.epochs.pop(0)
        self.per_step = search_seconds / self.steps
        if diagnostics_seconds is not None:
            self.diagnostics_each = diagnostics_seconds
        return f"eta {duration(self._left(self.steps * len(self.epochs), self.epochs))}" if self.epochs else "done"

    def remaining(self, steps_left: int) -> str | None:
        """The run's remaining time during an epoch, once anything has been measured."""
        if self.per_step is None:
            return None
        return duration(self._left(steps_left + self.steps * (len(self.epochs) - 1), self.epochs))


class EpochBar:
    """A tqdm bar on a terminal (steps/s, the epoch's ETA, the run's remaining time); nothing elsewhere."""

    def __init__(self, steps: int, desc: str, enabled: bool, clock: RunClock) -> None:
        self.steps, self.clock, self.done = steps, clock, 0
        self.bar = None
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=steps, desc=desc, unit="step", leave=False, file=sys.stderr)

    def update(self) -> None:
        self.done += 1
        if self.bar is not None:
            left = self.clock.remaining(self.steps - self.done)
            if left:
                self.bar.set_postfix_str(f"run {left} left", refresh=False)
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
