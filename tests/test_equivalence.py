"""Faster paths change no maths. Our DARTS step is compared over 20 steps of a fixed-seed search with (a) the
straightforward supernet (every op of every edge evaluated and summed, ``none`` multiplied by zero, one ReLU per
convolution) and (b) the static-buffer step that a CUDA graph replays (warm-up, in-place state restore, device
learning rate read by fused SGD), which on a CPU runs without a graph.

Two checks each, because two correct fp32 implementations do not stay within 1e-5 of each other for 20 steps.
Measured here: their losses part by 2e-7 at step 1 and by 1e-3 to 1e-2 by step 10, while in float64 the same 20
steps agree to 1e-15 (straightforward supernet) and 2e-9 (fused SGD rounds differently in the last bit). The
amplifier is the optimisation, not either implementation: the weight and architecture gradients of one step agree
to 2e-6 (as close to the float64 truth as the straightforward supernet's), but Adam's first steps divide each
alpha gradient by its own magnitude, so a rounding difference in a near-zero component becomes an update
difference of the order of the learning rate (1e-4 in the weights one step later), and training dynamics grow
differences about 3x per step. So:
- fp32, lock-step: before each phase (architecture step, weight step) of each of the 20 steps the second
  implementation is set (in place) to the first one's state; the phase's loss and gradient (architecture
  gradient; clipped weight gradients) agree to 1e-5 — against the straightforward supernet in 36 of 40 phases,
  the others being ReLU kinks met within rounding distance (see that test). The static-buffer step replays both
  phases at once, so it is locked per step;
- float64, free-running: the whole 20-step trajectories agree to 1e-7 (no drift anywhere in the maths).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import pytest
import torch
from test_supernet import straightforward_forward
from torch import nn

from benchmarks.data_stream import Batch
from benchmarks.nb201.supernet import NB201Supernet
from harness.config import build_config
from harness.graphed import GraphedStep, state_tensors
from searchers.context import EpochStats, OptimConfig, SearchContext
from searchers.darts import Darts
from searchers.seeds import SeedStack

pytestmark = pytest.mark.data

STEPS = 20
TOLERANCE = 1e-5
FLOAT64_TOLERANCE = 1e-7
BATCH = 16


class StraightforwardSupernet(nn.Module):
    """The same modules as an ``NB201Supernet``, computed the textbook way."""

    def __init__(self, net: NB201Supernet) -> None:
        super().__init__()
        self.net = net

    def forward(self, images: torch.Tensor, arch_weights: list[torch.Tensor]) -> torch.Tensor:
        return straightforward_forward(self.net, images, arch_weights[0])

    def arch_parameters(self):
        return self.net.arch_parameters()

    def weight_parameters(self):
        return self.net.weight_parameters()


def _searcher(supernet: nn.Module) -> Darts:
    config = build_config("nb201", "darts", "paper", [])
    optim = OptimConfig(**{f: getattr(config, f) for f in OptimConfig.__dataclass_fields__})
    return Darts(SeedStack([supernet]), optim, SearchContext(391, (25_000, 25_000), 10), {})


@pytest.fixture(scope="module")
def batches(data_dir) -> list[tuple[Batch, Batch]]:
    """20 (weight, architecture) batch pairs of CIFAR-10 search images as a run draws them (augmented), the last
    pair partial (8 images). Real images: Gaussian noise makes BN's backward ill-conditioned in fp32 (a stem
    gradient off by 1 % in one step), a property of the input, not of either implementation."""
    from benchmarks.data_stream import DeviceImages, SearchData
    from benchmarks.images.cifar10 import DATASET, load_cifar10

    if not (data_dir / "cifar10").is_dir():
        pytest.skip(f"CIFAR-10 not found under {data_dir}")
    cifar = load_cifar10(data_dir)
    count = BATCH * (STEPS - 1) + BATCH // 2
    halves = [DeviceImages(cifar.x_train[i * count:(i + 1) * count], cifar.y_train[i * count:(i + 1) * count],
                           torch.device("cpu"), DATASET.augmentation) for i in range(2)]
    pairs = list(SearchData(*halves).seed_epochs([0], epoch=1, batch_size=BATCH))
    assert len(pairs) == STEPS and pairs[-1][0].labels.shape == (1, BATCH // 2)
    return pairs


def _parameters(searcher: Darts) -> list[torch.Tensor]:
    return [t.detach().clone() for t in (*searcher.alphas, *searcher.weights)]


def _gradients(searcher: Darts) -> list[torch.Tensor]:
    """The step's architecture gradient and (clipped) weight gradients."""
    return [t.grad.detach().clone() for t in (*searcher.alphas, *searcher.weights)]


@dataclass
class Trajectory:
    losses: list[tuple[float, float]] = field(default_factory=list)  # per step: weight loss, architecture loss
    before: list[list[torch.Tensor]] = field(default_factory=list)  # state before each step
    after: list[list[torch.Tensor]] = field(default_factory=list)  # parameters after each step
    gradients: list[list[torch.Tensor]] = field(default_factory=list)  # gradients each step applied


def _search(searcher: Darts, batches, step=None, lock_to: Trajectory | None = None) -> Trajectory:
    """Run the steps; with ``lock_to``, first set the searcher (in place) to that trajectory's state before
    each step, and check the step's losses and gradients against it."""
    step = step or searcher.step
    trajectory = Trajectory()
    for i, (weight_batch, arch_batch) in enumerate(batches):
        if lock_to is not None:
            with torch.no_grad():
                for ours, theirs in zip(state_tensors(searcher), lock_to.before[i], strict=True):
                    ours.copy_(theirs)
        trajectory.before.append([t.detach().clone() for t in state_tensors(searcher)])
        searcher.set_learning_rate(1, i)
        weight_stats, arch_stats = EpochStats(torch.device("cpu"), 1), EpochStats(torch.device("cpu"), 1)
        step(weight_batch, arch_batch, weight_stats, arch_stats)
        trajectory.losses.append((weight_stats.read()[0]["loss"], arch_stats.read()[0]["loss"]))
        trajectory.after.append(_parameters(searcher))
        trajectory.gradients.append(_gradients(searcher))
        if lock_to is not None:
            assert trajectory.losses[i] == pytest.approx(lock_to.losses[i], rel=TOLERANCE, abs=TOLERANCE), i
            for ours, theirs in zip(trajectory.gradients[i], lock_to.gradients[i], strict=True):
                torch.testing.assert_close(ours, theirs, rtol=TOLERANCE, atol=TOLERANCE,
                                           msg=lambda m, i=i: f"step {i}: {m}")
    assert searcher.alphas[0].abs().max() > 1e-3  # the alphas moved: not a comparison of two untouched inits
    return trajectory


def _assert_same_trajectory(a: Trajectory, b: Trajectory, tolerance: float) -> None:
    assert [x for pair in a.losses for x in pair] == pytest.approx([x for pair in b.losses for x in pair],
                                                                   rel=tolerance, abs=tolerance)
    for ours, theirs in zip(a.after[-1], b.after[-1], strict=True):
        torch.testing.assert_close(ours, theirs, rtol=tolerance, atol=tolerance)


def _double(batches):
    return [tuple(Batch(b.images.double(), b.labels, b.indices) for b in pair) for pair in batches]


def _straightforward_pair(dtype: torch.dtype) -> tuple[Darts, Darts]:
    torch.manual_seed(0)
    fast_net = NB201Supernet(channels=4, cells_per_stage=2).to(dtype)
    return _searcher(fast_net), _searcher(StraightforwardSupernet(copy.deepcopy(fast_net)))


def _static_pair(dtype: torch.dtype, batches) -> tuple[Darts, Darts, GraphedStep]:
    torch.manual_seed(0)
    net = NB201Supernet(channels=4, cells_per_stage=2).to(dtype)
    plain, static = _searcher(net), _searcher(copy.deepcopy(net))
    return plain, static, GraphedStep(static, torch.device("cpu"), use_graph=False)


def test_every_step_matches_the_straightforward_supernet_in_fp32(batches):
    """Lock-step per phase: before the architecture step and before the weight step of each of the 20 steps,
    the straightforward supernet is set to our state; the phase's loss agrees to 1e-5 and its gradient to 1e-5
    in at least 90 % of the 40 phases, and within 5 % of the largest gradient entry in all of them.

    Why not all 40: ReLU kinks. Measured here, 4 phases differ by up to 2e-3: in step 0's weight phase a
    pre-activation inside the first reduction block is 2.5e-7 in exact (float64) arithmetic, and our fp32
    rounding puts it below zero while the straightforward supernet's keeps it above, so one ReLU unit is off in
    one path and on in the other (one mask flip, 0.16 % of the stem gradient). That is the non-differentiable
    point of ReLU met within rounding distance, not a less accurate computation: the other phases agree to 1e-5
    and the float64 trajectories (below) agree to 1e-7 over all 20 steps."""
    fast, slow = _straightforward_pair(torch.float32)
    cpu = torch.device("cpu")
    agreeing, phases = 0, 0
    for i, (weight_batch, arch_batch) in enumerate(batches):
        for searcher in (fast, slow):
            searcher.set_learning_rate(1, i)
        phases_of_step = ((lambda s, stats: s.arch_step(weight_batch, arch_batch, stats), lambda s: s.alphas),
                          (lambda s, stats: s.weight_step(weight_batch, stats), lambda s: s.weights))
        for run_phase, updated in phases_of_step:
            with torch.no_grad():
                for theirs, ours in zip(state_tensors(slow), state_tensors(fast), strict=True):
                    theirs.copy_(ours)
            losses = []
            for searcher in (fast, slow):
                stats = EpochStats(cpu, 1)
                run_phase(searcher, stats)
                losses.append(stats.read()[0]["loss"])
            assert losses[0] == pytest.approx(losses[1], rel=TOLERANCE, abs=TOLERANCE), i
            pairs = [(ours.grad, theirs.grad) for ours, theirs in zip(updated(fast), updated(slow), strict=True)]
            largest = max(theirs.abs().max().item() for _, theirs in pairs)
            difference = max((ours - theirs).abs().max().item() for ours, theirs in pairs)
            assert difference <= 0.05 * largest, (i, difference, largest)
            agreeing += difference <= TOLERANCE
            phases += 1
    assert agreeing >= 0.9 * phases, f"{agreeing} of {phases} phases agree to {TOLERANCE}"
    assert fast.alphas[0].abs().max() > 1e-3


def test_trajectory_matches_the_straightforward_supernet_in_float64(batches):
    batches = _double(batches)
    fast, slow = _straightforward_pair(torch.float64)
    _assert_same_trajectory(_search(fast, batches), _search(slow, batches), FLOAT64_TOLERANCE)


def test_static_buffer_step_matches_the_plain_step(batches):
    """fp32 lock-step and float64 trajectory; the last step has a partial batch (run eagerly beside the
    static path)."""
    plain, static, graphed = _static_pair(torch.float32, batches)
    _search(static, batches, graphed.step, lock_to=_search(plain, batches))
    assert isinstance(static.w_opt.param_groups[0]["lr"], torch.Tensor) and static.w_opt.param_groups[0]["fused"]
    batches = _double(batches)
    plain, static, graphed = _static_pair(torch.float64, batches)
    _assert_same_trajectory(_search(plain, batches), _search(static, batches, graphed.step), FLOAT64_TOLERANCE)
