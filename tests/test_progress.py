"""Duration estimates: the first one skips the warm-up steps and adds the probed diagnostics; each finished epoch
replaces the estimates with what it measured (clock replaced by a script: nothing here depends on speed)."""
from __future__ import annotations

import torch

from harness import progress
from harness.progress import RunClock


def test_estimates_skip_warm_up_add_diagnostics_and_follow_the_measured_epochs(monkeypatch):
    readings = iter([10.0, 10.5])  # after warm-up step 1, after measured step 6: 5 steps in 0.5 s
    monkeypatch.setattr(progress.time, "perf_counter", lambda: next(readings))
    said: list[str] = []
    clock = RunClock(said.append, torch.device("cpu"), epochs=[3, 4, 5, 6], steps=10, where="cpu (test)",
                     diagnostics_due=lambda epoch: epoch % 2 == 0, diagnostics_each=7.0)
    assert clock.remaining(10) is None  # nothing measured yet
    for step in range(10):
        clock.after_step(step)
    # 4 epochs x 10 steps x 0.1 s + diagnostics after epochs 4 and 6 x 7 s
    assert said == ["0.100 s/step on cpu (test): about 18 s for 4 epoch(s) of 10 steps, diagnostics after 2 of "
                    "them (about 7 s each)"]
    assert clock.remaining(4) == "17 s"  # 4 steps of epoch 3, then 3 epochs and 2 diagnostics
    # epoch 3 took 2 s of search (no diagnostics): 3 epochs x 2 s + 2 x 7 s left
    assert clock.after_epoch(2.0, None) == "eta 20 s"
    # epoch 4 took 2 s and its diagnostics 1 s: 2 epochs x 2 s + 1 x 1 s left
    assert clock.after_epoch(2.0, 1.0) == "eta 5 s"
    for step in range(10):
        clock.after_step(step)  # only the session's first epoch is timed step by step
    assert len(said) == 1
    clock.after_epoch(2.0, None)
    assert clock.after_epoch(2.0, 1.0) == "done"


def test_a_short_epoch_is_estimated_from_the_steps_after_warm_up(monkeypatch):
    readings = iter([0.0, 0.3])  # smoke: 4 steps, 2 of them after warm-up
    monkeypatch.setattr(progress.time, "perf_counter", lambda: next(readings))
    said: list[str] = []
    clock = RunClock(said.append, torch.device("cpu"), epochs=[1, 2], steps=4, where="cpu",
                     diagnostics_due=lambda e: False, diagnostics_each=0.0)
    for step in range(4):
        clock.after_step(step)
    assert said == ["0.150 s/step on cpu: about 1 s for 2 epoch(s) of 4 steps"]
