"""The step a CUDA graph replays is the eager step, for every searcher that declares itself capturable
(``graph_capturable``). Checked on the CPU through the static-buffer path (``GraphedStep(use_graph=False)``: the
same static batches, warm-up, state snapshot and per-epoch preparation, without the graph), so that a GPU only has
to confirm it (``.ci/gpu_check.py``). For each, 3 seeds batched over two epochs of three steps (SD-DARTS distils
in the second, PC-DARTS starts its architecture steps there, DrNAS and the samplers draw from each seed's stream):
- float64, free-running: per-step losses and the final state agree with the eager search to 1e-7;
- fp32, lock-step (real images): before each step the static searcher is set to the eager one's state (parameters,
  buffers, optimiser state, held tensors, generators); the step's per-seed losses and the gradients it applied
  agree to 1e-5 (the finite-difference searchers' tolerances are ``test_seed_batch``'s);
- no step reads a device value on the host (``.item()``, ``bool`` of a tensor, a data-dependent shape): a captured
  graph cannot (found by a dispatch mode that records those operators, with the searcher's line);
- no host value of the searcher changes inside a step (a counter, a growing list): a replay would not change it.
A searcher that is not capturable says why, in a comment on its ``graph_capturable = False``.
"""
from __future__ import annotations

import inspect
import re
import traceback
from contextlib import contextmanager, nullcontext
from typing import Iterator

import pytest
import torch
from test_seed_batch import LOCK_STEP_TOLERANCE, SEEDS, _as, _data, _flatten, _searcher, _steps
from torch.utils._python_dispatch import TorchDispatchMode

from harness.graphed import GraphedStep, copy_state, held_tensors
from searchers import builtin_searchers
from searchers.context import EpochStats
from searchers.darts import Darts
from searchers.searcher import Searcher

CAPTURABLE = sorted(name for name, cls in builtin_searchers().items() if cls.graph_capturable)
# every capturable searcher on NB201, and on a 1shot1 space (its own supernet) those of test_seed_batch's cases
CASES = [("nb201", name) for name in CAPTURABLE] + [("1shot1-s2", name) for name in ("darts", "drnas", "gdas")]
# operators whose result the host must wait for (a value read back, a shape that depends on the values), and a
# tensor made from host data (``torch.tensor``, a list used as an index), which a GPU step copies from the host
HOST_READS = {torch.ops.aten.lift_fresh.default, torch.ops.aten._local_scalar_dense.default,
              torch.ops.aten.is_nonzero.default,
              torch.ops.aten.equal.default, torch.ops.aten.nonzero.default, torch.ops.aten.masked_select.default,
              torch.ops.aten._unique2.default, torch.ops.aten.unique_dim.default}


class HostReads(TorchDispatchMode):
    """Records each host read of a device value, and each tensor made from host data, with the searcher's line
    that caused it. The optimisers' own on a CPU are allowed: ``capturable`` Adam and fused SGD, as a captured
    step runs them on a GPU, keep their step counts and learning rate on the device."""

    def __init__(self) -> None:
        super().__init__()
        self.found = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        if func in HOST_READS:
            stack = traceback.extract_stack()[:-1]
            if not any("/torch/optim/" in frame.filename for frame in stack):
                ours = [frame for frame in stack if "/torch/" not in frame.filename]
                self.found.append(f"{func} at " + " <- ".join(f"{frame.filename.rsplit('/', 1)[-1]}:{frame.lineno} "
                                                              f"({frame.name})" for frame in reversed(ours[-2:])))
        return func(*args, **(kwargs or {}))


def host_values(searcher: Searcher) -> dict[str, object]:
    """The searcher's host-side values: scalars as they are, containers by their length, tensors by identity (a
    tensor attribute rebound inside a step would leave a replay reading the old one)."""
    def value(item: object) -> object:
        if isinstance(item, torch.Tensor):
            return f"tensor {id(item)}"
        return len(item) if isinstance(item, (list, dict)) else item
    return {key: value(item) for key, item in vars(searcher).items()
            if isinstance(item, (bool, int, float, str, list, dict, torch.Tensor)) or item is None}


def _search(searcher: Searcher, graphed: bool) -> tuple[list[list[list[float]]], list[str], list[str]]:
    """Per step each seed's losses, with the eager step or the static-buffer one; host reads and host values
    changed inside a step (the static run only)."""
    data, cpu = _data(), torch.device("cpu")
    step = GraphedStep(searcher, cpu, use_graph=False).step if graphed else searcher.step
    losses, reads, changed = [], [], []
    for weight_batch, arch_batch in _steps(searcher, SEEDS, data):
        stats = EpochStats(cpu, len(SEEDS)), EpochStats(cpu, len(SEEDS))
        before, mode = host_values(searcher), HostReads()
        with mode if graphed else nullcontext():
            step(_as(torch.float64, weight_batch), _as(torch.float64, arch_batch), *stats)
        after = host_values(searcher)
        reads += mode.found
        changed += [f"{key}: {before.get(key)} -> {after.get(key)}" for key in before.keys() | after.keys()
                    if graphed and before.get(key) != after.get(key)]
        losses.append([[s["loss"] for s in part.read()] for part in stats])
    return losses, reads, changed


@contextmanager
def float64() -> Iterator[None]:
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(torch.float32)


def _state(searcher: Searcher) -> list:
    optimiser_state = [optimizer.state_dict()["state"] for optimizer in (searcher.w_opt, searcher.a_opt)]
    return _flatten([searcher.supernet.state_dict(), optimiser_state, held_tensors(searcher)])


@pytest.mark.parametrize("space,name", CASES)
def test_the_static_buffer_step_is_the_eager_step_and_stays_on_the_device(space, name):
    with float64():
        eager, static = _searcher(space, name, SEEDS), _searcher(space, name, SEEDS)
        eager_losses, _, _ = _search(eager, graphed=False)
        static_losses, reads, changed = _search(static, graphed=True)
    assert reads == [], f"{name}'s step reads device values on the host: {sorted(set(reads))}"
    assert changed == [], f"{name}'s step changes host values a replay would not: {sorted(set(changed))}"
    assert _flatten(static_losses) == pytest.approx(_flatten(eager_losses), rel=1e-7, abs=1e-7)
    for ours, theirs in zip(_state(static), _state(eager), strict=True):
        if isinstance(ours, torch.Tensor) and ours.is_floating_point():
            torch.testing.assert_close(ours, theirs, rtol=1e-7, atol=1e-7, equal_nan=True)
        else:
            assert torch.equal(ours, theirs) if isinstance(ours, torch.Tensor) else ours == theirs
    assert len({tuple(part[i] for step in eager_losses for part in step) for i in range(len(SEEDS))}) == 3


def _applied(searcher: Searcher) -> list[torch.Tensor]:
    return [t.grad.clone() for t in (*searcher.alphas, *searcher.weights) if t.grad is not None]


@pytest.mark.parametrize("name", CAPTURABLE)
@pytest.mark.data
def test_the_static_buffer_step_is_the_eager_step_in_fp32_lock_step(name, data_dir):
    data, cpu = _data(data_dir), torch.device("cpu")
    tolerance = LOCK_STEP_TOLERANCE.get(name, 1e-5)
    eager, static = _searcher("nb201", name, SEEDS), _searcher("nb201", name, SEEDS)
    graphed = GraphedStep(static, cpu, use_graph=False).step
    for step, (eager_batches, static_batches) in enumerate(zip(_steps(eager, SEEDS, data), _steps(static, SEEDS, data),
                                                               strict=True)):
        copy_state(static, eager)
        losses, applied = [], []
        for searcher, step_fn, batches in ((eager, eager.step, eager_batches), (static, graphed, static_batches)):
            stats = EpochStats(cpu, len(SEEDS)), EpochStats(cpu, len(SEEDS))
            step_fn(*batches, *stats)
            losses.append(_flatten([[s["loss"] for s in part.read()] for part in stats]))
            applied.append(_applied(searcher))
        assert losses[1] == pytest.approx(losses[0], rel=tolerance, abs=tolerance), step
        assert len(applied[0]) == len(applied[1]), step
        for ours, theirs in zip(*applied):
            assert (ours - theirs).abs().max() <= tolerance * max(1.0, theirs.abs().max().item()), step


class Syncing(Darts):
    """DARTS with two faults a graph cannot replay: a branch on a device value and a host counter."""

    name, graph_capturable = "syncing", True

    def arch_step(self, weight_batch, arch_batch, stats) -> None:  # noqa: ANN001
        if bool(self.alphas[0].sum() > -1e9):
            super().arch_step(weight_batch, arch_batch, stats)
        self.calls = getattr(self, "calls", 0) + 1


def test_the_checks_find_a_host_read_and_a_host_counter():
    with float64():
        searcher = _searcher("nb201", "darts", SEEDS)
        searcher.__class__ = Syncing
        _, reads, changed = _search(searcher, graphed=True)
    assert reads and "(arch_step)" in reads[0]  # at the searcher's line
    assert any(item.startswith("calls:") for item in changed)


@pytest.mark.parametrize("name", sorted(set(builtin_searchers()) - set(CAPTURABLE)))
def test_a_searcher_that_is_not_captured_says_why(name):
    source = inspect.getsource(builtin_searchers()[name])
    assert re.search(r"graph_capturable = False  # \S.{20,}", source), name
