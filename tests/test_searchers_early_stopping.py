"""What makes DARTS-ES, DARTS-ADA and OLES differ from DARTS, on tiny supernets: the stopping criterion on given
eigenvalue sequences, the stop (frozen alphas) and the roll-back (restored state, raised weight decay), each per
seed, and OLES's scores and freezing."""
from __future__ import annotations

import pytest
import torch
from test_searchers_perturbation import batch, stats
from torch.nn import functional as F

from benchmarks.nb201.supernet import NB201Supernet
from searchers import get_searcher
from searchers.context import OptimConfig, SearchContext
from searchers.darts_es import EarlyStopOptions, stop_index
from searchers.hessian import dominant_eigenvalues
from searchers.oles import operation_cosines
from searchers.seeds import SeedStack, seed_cross_entropy, select_seed, stack_seeds

OPTIM = OptimConfig(epochs=30, w_lr=0.05, w_lr_min=0.001, w_momentum=0.9, w_weight_decay=5e-4, w_nesterov=True,
                    grad_clip=5.0, a_lr=3e-2, a_beta1=0.5, a_beta2=0.999, a_weight_decay=1e-3,
                    lr_schedule="per_step", step_order="arch_first")


def make(name: str, options: dict | None = None, seeds: int = 1):
    torch.manual_seed(0)
    nets = [NB201Supernet(channels=2, cells_per_stage=1, track_running_stats=False).double() for _ in range(seeds)]
    return get_searcher(name)(SeedStack(nets), OPTIM, SearchContext(2, (16, 16), 10), options or {})


def epoch(searcher, number: int, seeds: int = 1, steps: int = 2) -> None:
    searcher.begin_epoch(number)
    for step in range(steps):
        searcher.set_learning_rate(number, step)
        searcher.step(batch(100 * number + step, seeds), batch(100 * number + step + 50, seeds), stats(seeds),
                      stats(seeds))
    searcher.end_epoch(number)


# --- the criterion -----------------------------------------------------------------------------------------
def test_the_criterion_compares_local_averages_delta_eigenvalues_apart_and_returns_the_earlier_centre():
    options = EarlyStopOptions()  # every 2 epochs, window 5, delta 4, ratio 0.75, from epoch 10
    epochs = list(range(0, 50, 2))
    flat = [1.0] * 12
    assert stop_index(flat, epochs[:12], options) is None
    # 12 eigenvalues (epochs 0..22): current window = eigenvalues 7..11, previous = 3..7; centre of it: 5 (epoch 10)
    grown = [1.0] * 8 + [2.0] * 4  # current mean (1 + 4 * 2) / 5 = 1.8, previous 1: 1 / 1.8 < 0.75
    assert stop_index(grown, epochs[:12], options) == 5 and epochs[5] == 10
    mild = [1.0] * 8 + [1.3] * 4  # current 1.24: 1 / 1.24 = 0.806
    assert stop_index(mild, epochs[:12], options) is None
    assert stop_index(mild, epochs[:12], EarlyStopOptions(ratio=0.81)) == 5
    # the same growth one eigenvalue earlier would return epoch 8 < es_start_epoch 10: not acted on
    assert stop_index(grown[1:], epochs[:11], options) is None
    assert stop_index(grown[1:], epochs[:11], EarlyStopOptions(start_epoch=8)) == 4
    # a local average over fewer than `window` eigenvalues is the mean of all of them (EVLocalAvg.update)
    short = EarlyStopOptions(window=5, delta=1, start_epoch=0)
    assert stop_index([1.0, 1.0, 1.0, 4.0], [0, 1, 2, 3], short) == 0  # (1+1+1+4)/4 = 1.75 vs 1: stop at 3-2-1
    assert stop_index([1.0, -1.0, 1.0, -4.0], [0, 1, 2, 3], short) is None  # no positive curvature: no stop


def test_the_searcher_eigenvalue_is_the_exact_hessian_top_of_the_validation_loss_plus_the_arch_decay():
    searcher = make("darts_es")
    b = batch(7)
    value = searcher.top_eigenvalues(b)[0]
    loss = lambda _: seed_cross_entropy(searcher.supernet(b.images, [F.softmax(searcher.alphas[0], -1)]),  # noqa: E731
                                        b.labels)
    assert value == pytest.approx(dominant_eigenvalues(loss, searcher.alphas, 1, "exact")[0] + 1e-3, rel=1e-9)
    plain = make("darts_es", {"hessian_arch_weight_decay": False})
    assert plain.top_eigenvalues(b)[0] == pytest.approx(value - 1e-3, rel=1e-9)


def _scripted(searcher, sequences):
    """Eigenvalues from ``sequences`` (one list per seed), one per call, instead of the Hessian's."""
    calls = iter(zip(*sequences))
    searcher.top_eigenvalues = lambda _: list(next(calls))


def test_a_stopped_seed_keeps_the_architecture_of_the_stop_point_and_the_other_seed_goes_on():
    options = {"hessian_every": 1, "window": 2, "delta": 1, "start_epoch": 0}
    searcher = make("darts_es", options, seeds=2)
    _scripted(searcher, [[1.0, 1.0, 1.0, 3.0, 3.0, 3.0, 3.0], [1.0] * 7])
    alphas = {}
    for number in range(1, 5):
        before_end = searcher.alphas[0].detach().clone()
        epoch(searcher, number, seeds=2)
        alphas[number] = before_end if number == 4 else searcher.alphas[0].detach().clone()
    # epoch 4 (0-based 3): local averages (1 + 3) / 2 = 2 now, 1 one eigenvalue before: 1 / 2 < 0.75; the index
    # returned is 4 - 1 - 1 - 1 = 1, the architecture after epoch 2
    assert searcher.stopped.tolist() == [True, False]
    assert searcher.epoch_report() == [{"eigenvalue": 3.0, "stopped": True}, {"eigenvalue": 1.0, "stopped": False}]
    assert torch.equal(searcher.alphas[0][0], alphas[2][0])
    assert not torch.equal(searcher.alphas[0][1], alphas[2][1])
    for number in (5, 6):  # frozen from now on; seed 1 still searches
        moving = searcher.alphas[0][1].detach().clone()
        epoch(searcher, number, seeds=2)
        assert torch.equal(searcher.alphas[0][0], alphas[2][0])
        assert not torch.equal(searcher.alphas[0][1], moving)


def test_per_seed_stop_state_survives_per_seed_checkpoints():
    """A run checkpoints each seed's slice (``select_seed``) and a resume stacks them again (``stack_seeds``): seed
    0 stopped and seed 1 not, with their own eigenvalue counts and (DARTS-ADA) weight decays, stay so."""
    options = {"hessian_every": 1, "window": 2, "delta": 1, "start_epoch": 0}
    for name in ("darts_es", "darts_ada"):
        searcher = make(name, options, seeds=2)
        _scripted(searcher, [[1.0, 1.0, 1.0, 3.0], [1.0] * 4])
        for number in range(1, 5):
            epoch(searcher, number, seeds=2)
        state = searcher.state_dict()
        assert state["extra"]["counts"].shape == (2, 1)  # the per-seed column (checkpoints of runs going on hold it)
        restored = make(name, options, seeds=2)
        restored.load_state_dict(stack_seeds([select_seed(state, seed) for seed in range(2)]))
        report = searcher.epoch_report()
        assert report[0] != report[1] and restored.epoch_report() == report, name  # the seeds' states differ
        assert restored.counts.tolist() == searcher.counts.tolist()
        assert restored.stopped.tolist() == searcher.stopped.tolist()


def test_the_early_stopping_state_survives_a_checkpoint():
    options = {"hessian_every": 1, "window": 2, "delta": 1, "start_epoch": 0}
    searcher = make("darts_es", options)
    _scripted(searcher, [[1.0, 1.0, 1.0, 3.0]])
    for number in range(1, 5):
        epoch(searcher, number)
    restored = make("darts_es", options)
    restored.supernet.load_state_dict(searcher.supernet.state_dict())
    restored.load_state_dict(searcher.state_dict())
    assert restored.stopped.tolist() == [True] and torch.equal(restored.frozen[0], searcher.frozen[0])
    assert restored.counts.tolist() == searcher.counts.tolist() == [4]


# --- DARTS-ADA -----------------------------------------------------------------------------------------------
def test_ada_rolls_a_seed_back_to_the_stop_point_and_raises_only_its_weight_decay():
    options = {"hessian_every": 1, "window": 2, "delta": 1, "start_epoch": 0}
    searcher = make("darts_ada", options, seeds=2)
    _scripted(searcher, [[1.0, 1.0, 1.0, 3.0, 3.0], [1.0] * 5])
    states = {}
    for number in range(1, 5):
        epoch(searcher, number, seeds=2)
        states[number] = {k: v.clone() for k, v in searcher.supernet.state_dict().items()}
        if number == 2:
            momentum = [searcher.w_opt.state[w]["momentum_buffer"].clone() for w in searcher.weights]
    assert searcher.decay.tolist() == pytest.approx([5e-3, 5e-4])
    assert not searcher.stopped.any()
    report = searcher.epoch_report()  # seed 0's history as at the stop point: its last eigenvalue is epoch 2's
    assert report == [{"eigenvalue": 1.0, "weight_decay": pytest.approx(5e-3)},
                      {"eigenvalue": 1.0, "weight_decay": pytest.approx(5e-4)}]
    for key, value in states[4].items():  # seed 0: the state after epoch 2; seed 1: its own after epoch 4
        assert torch.equal(value[0], states[2][key][0]), key
    assert all(torch.equal(w.grad is not None and searcher.w_opt.state[w]["momentum_buffer"][0], m[0])
               for w, m in zip(searcher.weights, momentum))
    assert searcher.counts.tolist() == [2, 4]  # the eigenvalue history as it was at the stop point


def test_ada_weight_decay_is_per_seed_and_capped():
    searcher = make("darts_ada", {"hessian_every": 1}, seeds=2)
    reference = make("darts", seeds=2)
    reference.supernet.load_state_dict(searcher.supernet.state_dict())
    searcher.decay = torch.tensor([5e-4, 0.03], dtype=torch.float64)
    searcher.set_learning_rate(1, 0)
    reference.set_learning_rate(1, 0)
    weights_before = [w.detach().clone() for w in searcher.weights]
    searcher.step(batch(1, 2), batch(2, 2), stats(2), stats(2))
    reference.step(batch(1, 2), batch(2, 2), stats(2), stats(2))
    assert all(torch.allclose(a[0], b[0]) for a, b in zip(searcher.weights, reference.weights))  # seed 0: DARTS
    moved = [(a[1] - b[1]).abs().max() for a, b in zip(searcher.weights, reference.weights)]
    assert max(moved) > 0
    # the extra decay of seed 1 is lr * (0.03 - 5e-4) * w on the first step (no momentum yet)
    lr = searcher.w_opt.param_groups[0]["lr"]
    for a, b, w0 in zip(searcher.weights, reference.weights, weights_before):
        assert torch.allclose(a[1] - b[1], -lr * (0.03 - 5e-4) * w0[1] * (1 + 0.9), atol=1e-12)  # Nesterov: 1 + m
    assert not searcher.may_stop(1) and searcher.may_stop(0)


# --- OLES ----------------------------------------------------------------------------------------------------
def test_operation_cosines_by_hand():
    a = torch.tensor([[[[1.0, 0.0]], [[0.0, 1.0]], [[1.0, 1.0]], [[2.0, 0.0]]]], dtype=torch.float64)  # K=1, out 4
    b = torch.tensor([[[[1.0, 0.0]], [[1.0, 0.0]], [[1.0, -1.0]], [[1.0, 1.0]]]], dtype=torch.float64)
    # two operations of 2 output channels each, flattened
    cos = operation_cosines([a], [b], [2], "flattened")
    first = (1.0) / (2 ** 0.5 * 2 ** 0.5)
    second = (1.0 - 1.0 + 2.0 + 0.0) / (6 ** 0.5 * 4 ** 0.5)
    assert cos.tolist()[0] == pytest.approx([first, second])
    # per column: the cosine over the output channels at each input position, then the mean
    columns = operation_cosines([a], [b], [1], "columns")
    left = (1 + 0 + 1 + 2) / ((1 + 0 + 1 + 4) ** 0.5 * (1 + 1 + 1 + 1) ** 0.5)
    right = (0 + 0 - 1 + 0) / ((0 + 1 + 1 + 0) ** 0.5 * (0 + 0 + 1 + 1) ** 0.5)
    assert columns.tolist()[0] == pytest.approx([(left + right) / 2])


def test_oles_freezes_operations_whose_mean_score_is_below_the_threshold_at_the_window_end():
    searcher = make("oles", {"window": 2, "threshold": 1.0}, seeds=2)  # every cosine < 1: all freeze
    operations = searcher.frozen.shape[1]
    assert operations == 3 * 6 * 2  # three search cells, six edges, a 1x1 and a 3x3 convolution each
    searcher.set_learning_rate(1, 0)
    for step in range(2):  # the first step has no training gradient to compare with: one cosine so far
        searcher.step(batch(step, 2), batch(step + 9, 2), stats(2), stats(2))
    assert not searcher.frozen.any() and searcher.counted == 1
    searcher.step(batch(3, 2), batch(12, 2), stats(2), stats(2))
    assert searcher.frozen.all() and searcher.counted == 0
    ops = [searcher.weights[i].detach().clone() for i in searcher.op_index]
    others = [w.detach().clone() for i, w in enumerate(searcher.weights) if i not in searcher.op_index]
    searcher.step(batch(4, 2), batch(13, 2), stats(2), stats(2))
    assert all(torch.equal(w, before) for w, before in zip([searcher.weights[i] for i in searcher.op_index], ops))
    assert any(not torch.equal(w, before) for w, before in
               zip([w for i, w in enumerate(searcher.weights) if i not in searcher.op_index], others))


def test_oles_freezing_is_per_seed_and_per_operation():
    searcher = make("oles", {"window": 2, "threshold": 0.0}, seeds=2)
    searcher.last_train = [torch.ones_like(searcher.weights[i]) for i in searcher.op_index]
    searcher.val_grads = [g.clone() for g in searcher.last_train]
    searcher.val_grads[0][0] = -1.0  # seed 0: every operation of the first tensor points the other way
    searcher.score()
    assert searcher.counted == 1 and not searcher.frozen.any()
    searcher.score()  # window end: mean -1 for those, 1 for the rest
    count = searcher.groups[0]
    expected = torch.zeros_like(searcher.frozen)
    expected[0, :count] = True
    assert torch.equal(searcher.frozen, expected) and searcher.counted == 0
    for mask, start in zip(searcher.masks()[:1], [0]):
        assert torch.equal(mask.flatten(1), expected[:, start:start + count])
    # frozen operations are not scored again: their cosine no longer counts
    searcher.score()
    assert searcher.scores[0, :count].tolist() == [0.0] * count and searcher.scores[1, 0] == 1.0
