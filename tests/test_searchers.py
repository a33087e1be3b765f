"""The maths of each searcher against a brute-force or hand computation, on tiny supernets."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.func import functional_call
from torch.nn import functional as F

from benchmarks.data_stream import Batch, DeviceImages, epoch_generator
from benchmarks.images import get_dataset
from benchmarks.nb201.supernet import NB201Supernet
from searchers import builtin_searchers, get_searcher
from searchers.context import EpochStats, OptimConfig, SearchContext
from searchers.darts import Darts
from searchers.sd_darts import distillation_kl
from searchers.seeds import SeedStack

OPTIM = OptimConfig(epochs=10, w_lr=0.05, w_lr_min=0.001, w_momentum=0.9, w_weight_decay=5e-4, w_nesterov=True,
                    grad_clip=5.0, a_lr=3e-4, a_beta1=0.5, a_beta2=0.999, a_weight_decay=1e-3,
                    lr_schedule="per_step", step_order="arch_first")


def make(name: str, options: dict | None = None, batch: int = 8, half: int = 16, grad_clip: float = 5.0):
    torch.manual_seed(0)
    net = NB201Supernet(channels=2, cells_per_stage=1, track_running_stats=False).double()
    cls = get_searcher(name)
    optim = OptimConfig(**{**OPTIM.__dict__, "grad_clip": grad_clip})
    return cls(SeedStack([net]), optim, SearchContext(4, (half, half), 10), options or {})


def batch(seed: int, size: int = 8, start: int = 0) -> Batch:
    """A batch of one seed (the seed dimension first, of size 1)."""
    gen = torch.Generator().manual_seed(seed)
    return Batch(torch.randn(1, size, 3, 8, 8, generator=gen, dtype=torch.float64),
                 torch.randint(0, 10, (1, size), generator=gen), torch.arange(start, start + size)[None])


def stats() -> EpochStats:
    return EpochStats(torch.device("cpu"), 1)


def test_the_built_in_searchers_are_registered_by_their_names_and_the_readme_names_each():
    from conftest import REPO

    registry = builtin_searchers()
    assert {"darts", "darts2", "sd_darts", "tse_darts", "drnas", "gdas", "spos"} <= set(registry)
    assert all(cls.name == name and cls.summary and cls.__module__.startswith("searchers.")
               for name, cls in registry.items())
    assert "searcher" not in registry  # the base class declares no name: it is the contract, not a searcher
    readme = (REPO / "README.md").read_text()
    assert [name for name in registry if f"`{name}`" not in readme] == []


def test_graph_capture_is_opt_in_for_each_class():
    assert Darts.graph_capturable
    assert not type("Derived", (Darts,), {"name": "derived"}).graph_capturable  # host logic may hide in a subclass
    assert type("Declared", (Darts,), {"name": "declared", "graph_capturable": True}).graph_capturable


def test_each_seed_draws_from_its_own_stream_whatever_its_batch_mates():
    torch.manual_seed(0)
    nets = [NB201Supernet(channels=2, cells_per_stage=1, track_running_stats=False) for _ in range(2)]
    pair = Darts(SeedStack(nets), OPTIM, SearchContext(4, (16, 16), 10), {})
    alone = Darts(SeedStack(nets[1:]), OPTIM, SearchContext(4, (16, 16), 10), {})
    pair.reseed([5, 6])
    alone.reseed([6])
    draws = pair.per_seed(lambda seed, generator: (torch.rand(3, generator=generator), torch.full((1,), seed)))
    assert draws[0].shape == (2, 3) and draws[1].flatten().tolist() == [0, 1]
    assert torch.equal(draws[0][1], alone.per_seed(lambda _, generator: torch.rand(3, generator=generator))[0])
    assert not torch.equal(draws[0][0], draws[0][1])


def test_a_searcher_may_override_only_the_hooks():
    with pytest.raises(TypeError, match="overrides set_learning_rate"):
        type("Bad", (Darts,), {"name": "bad", "set_learning_rate": lambda self, epoch, step: 0.0})
    allowed = type("Fine", (Darts,), {"name": "fine", "arch_weights": Darts.arch_weights, "helper": lambda self: 1})
    assert allowed.name == "fine"


def test_darts_arch_step_uses_only_the_validation_gradient():
    searcher = make("darts")
    arch = batch(1)
    loss = F.cross_entropy(searcher.supernet(arch.images, [F.softmax(searcher.alphas[0], -1)])[0], arch.labels[0])
    expected = torch.autograd.grad(loss, searcher.alphas)[0]
    grads, _, _ = searcher.arch_gradient(batch(0), arch)
    assert torch.allclose(grads[0], expected)


def test_darts2_finite_difference_hypergradient_matches_exact_unrolled_gradient():
    # DARTS's epsilon (0.01 / ||v||) is meant for a full-size supernet: on this 2-channel toy network a weight
    # perturbation of that size crosses ReLU kinks and the central difference is off by several times the
    # value (measured: 46 % to 460 % on C = 2..8 toys, converging below 1e-4). The maths under test — virtual
    # step with momentum and weight decay, Hessian-vector product, weight restore — is checked with a step
    # small enough for the difference quotient to be a derivative.
    searcher = make("darts2", {"fd_radius": 1e-5})
    searcher.set_learning_rate(1, 0)
    searcher.weight_step(batch(5), stats())  # creates momentum buffers, as mid-search
    train, val = batch(0), batch(1)
    net, weights, (alpha,) = searcher.supernet, searcher.weights, searcher.alphas
    group = searcher.w_opt.param_groups[0]
    lr, mom, wd = group["lr"], group["momentum"], group["weight_decay"]
    names = [n for n, p in net.named_parameters() if n != "net.alphas"]

    # exact: differentiate L_val(w'(alpha), alpha) through the virtual step
    probs = F.softmax(alpha, -1)
    train_loss = F.cross_entropy(net(train.images, [probs])[0], train.labels[0])
    grads = torch.autograd.grad(train_loss, weights, create_graph=True)
    unrolled = {n: w - lr * (mom * searcher.w_opt.state[w]["momentum_buffer"] + g + wd * w)
                for n, w, g in zip(names, weights, grads)}
    val_logits = functional_call(net, {**unrolled, "net.alphas": alpha}, (val.images, [F.softmax(alpha, -1)]))
    exact = torch.autograd.grad(F.cross_entropy(val_logits[0], val.labels[0]), alpha)[0]

    before = [w.detach().clone() for w in weights]
    approx = searcher.arch_gradient(train, val)[0][0]
    assert all(torch.equal(w, b) for w, b in zip(weights, before))  # weights restored
    assert (approx - exact).norm() / exact.norm() < 0.01
    first_order = searcher.arch_loss(val)[0]  # the second-order term is not negligible here
    assert not torch.allclose(exact, torch.autograd.grad(first_order.sum(), alpha)[0], rtol=1e-3)


def test_kl_term_value_and_gradient_by_hand():
    logits = torch.tensor([[1.0, 0.0, -1.0], [0.5, 0.5, 0.0]], dtype=torch.float64, requires_grad=True)
    teacher = torch.tensor([[0.2, 0.5, 0.3], [0.6, 0.3, 0.1]], dtype=torch.float64, requires_grad=True)
    kl = distillation_kl(logits, teacher, "student_teacher").mean()
    hand = 0.0
    for row_logits, row_teacher in zip(logits.tolist(), teacher.tolist()):
        z = sum(math.exp(v) for v in row_logits)
        s = [math.exp(v) / z for v in row_logits]
        hand += sum(si * math.log(si / ti) for si, ti in zip(s, row_teacher)) / 2
    assert kl.item() == pytest.approx(hand, rel=1e-12)
    # d/dz KL(s||t) = s * (log s - log t - KL_row): batch mean gives a factor 1/2
    (grad_logits,) = torch.autograd.grad(kl, logits, retain_graph=True)
    s = F.softmax(logits, 1).detach()
    log_ratio = s.log() - teacher.detach().log()
    row_kl = (s * log_ratio).sum(1, keepdim=True)
    assert torch.allclose(grad_logits, s * (log_ratio - row_kl) / 2)
    # the teacher receives no gradient
    assert torch.autograd.grad(kl, teacher, allow_unused=True)[0] is None
    reverse = distillation_kl(logits, teacher, "teacher_student").mean()
    t = teacher.detach()
    assert reverse.item() == pytest.approx(float((t * (t.log() - F.log_softmax(logits.detach(), 1))).sum(1).mean()))
    assert reverse.item() != pytest.approx(kl.item())


@pytest.mark.parametrize("name,window", [("sd_darts", 1), ("sd_darts_voted", 2)])
def test_teacher_is_the_mean_of_the_right_epochs(name, window):
    searcher = make(name, {"warmup_epochs": 3})
    stored = []
    for epoch in range(1, 5):
        searcher.begin_epoch(epoch)
        searcher.weight_loss(batch(epoch, size=16))
        stored.append(searcher.current["weight"][0].clone())
        searcher.end_epoch(epoch)
    assert len(searcher.previous) == window
    idx = torch.tensor([3, 0, 7])
    expected = torch.stack(stored[-window:])[:, idx].mean(0)  # epochs 4 (and 3)
    assert torch.allclose(searcher.teacher("weight", idx[None])[0], expected)
    student = F.softmax(searcher.supernet(batch(4, size=16).images, [F.softmax(searcher.alphas[0], -1)])[0], 1)
    assert torch.allclose(stored[-1][idx], student[idx].detach().float(), atol=1e-6)  # stored as float32


def test_kl_reduction_sum_is_the_batch_mean_times_the_samples_with_a_teacher():
    losses = {}
    for reduction in ("batch_mean", "sum"):
        searcher = make("sd_darts", {"warmup_epochs": 0, "kl_reduction": reduction})
        for epoch in (1, 2):
            searcher.begin_epoch(epoch)
            b = batch(epoch, size=16)
            loss, logits = searcher.weight_loss(b)
            searcher.end_epoch(epoch)
        losses[reduction] = (loss[0] - F.cross_entropy(logits[0], b.labels[0])).item()
    assert losses["batch_mean"] > 0 and losses["sum"] == pytest.approx(16 * losses["batch_mean"], rel=1e-9)


def test_clean_teacher_view_stores_the_output_on_the_unaugmented_images():
    augmented, clean = batch(1, size=16), batch(2, size=16).images  # stand-ins for a view and its clean image
    views = Batch(augmented.images, augmented.labels, augmented.indices, clean)
    stored = {}
    for view in ("augmented", "clean"):
        searcher = make("sd_darts", {"teacher_view": view})
        assert searcher.wants_clean_images == (view == "clean")
        searcher.begin_epoch(1)
        loss, _ = searcher.weight_loss(views)
        stored[view] = searcher.current["weight"][0].clone()
    mixing = [F.softmax(searcher.alphas[0], -1)]
    for view, images in (("augmented", augmented.images), ("clean", clean)):
        expected = F.softmax(searcher.supernet(images, mixing)[0], 1).detach().float()
        assert torch.allclose(stored[view], expected, atol=1e-6), view  # one row per sample of the half


def test_data_stream_gives_clean_images_only_when_asked():
    images = np.random.default_rng(0).integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    half = DeviceImages(images, np.arange(6), torch.device("cpu"), get_dataset("cifar10").augmentation)
    plain = next(half.batches(4, epoch_generator(0, 1, 0)))
    both = next(half.batches(4, epoch_generator(0, 1, 0), with_clean=True))
    assert plain.clean is None and torch.equal(plain.images, both.images)
    unaugmented = next(half.batches(4, epoch_generator(0, 1, 0), augment=False))
    assert torch.equal(both.clean, unaugmented.images) and not torch.equal(both.clean, both.images)


def test_distillation_starts_after_warmup_and_changes_both_losses():
    searcher = make("sd_darts", {"warmup_epochs": 1, "distill_weight": 1.0})
    plain = make("darts")
    for epoch in (1, 2):
        searcher.begin_epoch(epoch)
        b = batch(epoch, size=16)
        loss, logits = searcher.weight_loss(b)
        ce = F.cross_entropy(logits[0], b.labels[0])
        if epoch == 1:
            assert torch.allclose(loss[0], ce)  # warm-up: plain DARTS
        else:
            teacher = searcher.teacher("weight", b.indices)[0]
            assert torch.allclose(loss[0], ce + distillation_kl(logits[0], teacher, "student_teacher").mean())
            assert loss[0] > ce
        searcher.end_epoch(epoch)
    # plain DARTS keeps no teacher: its loss on the same batch and weights is the same in every epoch
    losses = []
    for epoch in (1, 2):
        plain.begin_epoch(epoch)
        losses.append(plain.weight_loss(batch(1, 16))[0])
        plain.end_epoch(epoch)
    assert torch.equal(losses[0], losses[1])


@pytest.mark.parametrize("restore", [False, True])
def test_tse_outer_step_sums_direct_gradients_and_retrains_from_saved_weights(restore):
    # no clipping so the replay below is the plain SGD rule
    searcher = make("tse_darts", {"unroll_steps": 3, "restore_optimizer": restore}, grad_clip=1e9)
    reference = make("darts", grad_clip=1e9)
    reference.supernet.load_state_dict(searcher.supernet.state_dict())
    searcher.set_learning_rate(1, 0)
    reference.set_learning_rate(1, 0)
    batches = [batch(i) for i in range(3)]

    # the TSE gradient: sum of direct dL_t/dalpha along the unrolled trajectory, replayed on a copy
    tse_sum = torch.zeros_like(reference.alphas[0])
    for b in batches:
        loss = F.cross_entropy(reference.supernet(b.images, reference.arch_weights())[0], b.labels[0])
        tse_sum += torch.autograd.grad(loss, reference.alphas, retain_graph=True)[0]
        reference.weight_step(b, stats())
    unrolled_optimizer = reference.w_opt.state_dict()
    expected_alpha = searcher.alphas[0].detach().clone()
    adam = torch.optim.Adam([expected_alpha.requires_grad_()], lr=OPTIM.a_lr, betas=(OPTIM.a_beta1, OPTIM.a_beta2),
                            weight_decay=OPTIM.a_weight_decay)
    expected_alpha.grad = tse_sum
    adam.step()

    saved = {k: v.clone() for k, v in searcher.supernet.state_dict().items()}
    searcher.step(batches[0], batches[1], stats(), stats())  # window 2 of 3: nothing yet
    assert torch.equal(searcher.alphas[0], saved["net.alphas"])
    searcher.window.append(batches[2])
    searcher.outer_step(searcher.window)
    assert torch.allclose(searcher.alphas[0], expected_alpha)

    # weights: T plain steps from the saved weights with the new alphas
    replay = make("darts", grad_clip=1e9)
    replay.supernet.load_state_dict({**saved, "net.alphas": expected_alpha.detach()})
    replay.set_learning_rate(1, 0)
    if not restore:  # Appendix D carries the momentum of the unrolled steps on
        replay.w_opt.load_state_dict(unrolled_optimizer)
    for b in batches:
        replay.weight_step(b, stats())
    for w, r in zip(searcher.weights, replay.weights):
        assert torch.allclose(w, r, atol=1e-10)


def test_drnas_samples_dirichlet_weights_with_pathwise_gradients():
    searcher = make("drnas")
    samples = searcher.arch_weights()[0]
    assert samples.shape == (1, 6, 5) and (samples > 0).all()
    assert torch.allclose(samples.sum(-1), torch.ones(1, 6, dtype=torch.float64))
    assert not torch.allclose(samples, searcher.arch_weights()[0])  # a fresh sample per forward
    (grad,) = torch.autograd.grad((samples * torch.arange(5.0, dtype=torch.float64)).sum(), searcher.alphas)
    assert grad.abs().sum() > 0
    with torch.no_grad():
        searcher.alphas[0].copy_(torch.tensor([[[-0.5, 2.0, 0.0, 1.0, -2.0]] * 6], dtype=torch.float64))
    beta = F.elu(searcher.alphas[0]) + 1
    assert torch.allclose(searcher.derivation_weights()[0], beta / beta.sum(-1, keepdim=True))
    assert searcher.derivation_weights()[0].argmax(-1).tolist() == [[1] * 6]


def test_paper_settings_per_searcher():
    from harness.config import build_config

    drnas = build_config("nb201", "drnas", "paper", [])
    assert (drnas.epochs, drnas.w_weight_decay, drnas.w_nesterov) == (100, 3e-4, False)
    assert build_config("nb201", "tse_drnas", "paper", []).epochs == 100
    sd = build_config("nb201", "sd_darts", "paper", [])
    assert sd.epochs == 50 and sd.searcher_options["warmup_epochs"] == 25
    assert sd.searcher_options["teacher_epochs"] == 1 and sd.searcher_options["distill_weight"] == 1.0
    assert build_config("nb201", "sd_darts_voted", "paper", []).searcher_options["teacher_epochs"] == 2
    assert build_config("nb201", "tse_darts", "paper", []).searcher_options["unroll_steps"] == 100
    # the order of the code behind each published row, declared per class (never inherited: sd_darts, darts_minus)
    assert {name: build_config("nb201", name, "paper", []).step_order
            for name in ("darts", "darts2", "gdas", "sd_darts", "darts_minus", "reinmax", "tse_darts")} == {
        "darts": "weights_first", "darts2": "weights_first", "gdas": "weights_first", "sd_darts": "arch_first",
        "darts_minus": "arch_first", "reinmax": "arch_first", "tse_darts": "arch_first"}
    assert build_config("nb201", "darts", "reduced", []).step_order == "arch_first"
    assert not build_config("nb201", "pc_darts", "paper", []).w_nesterov  # train_search.py: plain momentum
    assert build_config("nb201", "pc_darts", "reduced", []).w_nesterov
    assert build_config("nb201", "snas", "paper", []).searcher_options["anneal_epochs"] == 150  # the SNAS code's
    assert build_config("nb201", "snas", "reduced", []).searcher_options["anneal_epochs"] == 0  # the run's epochs
    assert build_config("nb201", "drnas", "smoke", []).epochs == 2  # presets win over paper settings
    assert build_config("nb201", "sd_darts", "smoke", ["warmup_epochs=0"]).searcher_options["warmup_epochs"] == 0


def test_the_reduced_preset_is_quick_longer_with_the_calibrated_architecture_step():
    """``reduced`` changes ``quick`` in its epochs and architecture learning rate only (docs/calibration.md);
    TSE windows of 16 batches keep the paper's 8 architecture steps an epoch (782 batches / T = 100; here 126 / 16);
    SD-DARTS and PC-DARTS keep their warm-ups' share of the epochs."""
    from harness.config import configure

    quick, reduced = (configure("nb201", "darts", preset, []).config for preset in ("quick", "reduced"))
    changed = {k for k, v in reduced.to_dict().items() if quick.to_dict()[k] != v}
    assert changed == {"preset", "epochs", "a_lr"} and reduced.epochs == 2 * quick.epochs
    assert reduced.a_lr == pytest.approx(77.58 * quick.a_lr, rel=1e-3)
    tse = configure("nb201", "tse_darts", "reduced", []).config
    windows = math.ceil(2 * math.ceil(tse.train_images / tse.batch_size) / tse.searcher_options["unroll_steps"])
    assert windows == math.ceil(2 * math.ceil(25_000 / 64) / 100) == 8
    assert configure("nb201", "sd_darts", "reduced", []).config.searcher_options["warmup_epochs"] == 8  # 25 of 50
    assert configure("nb201", "pc_darts", "reduced", []).config.searcher_options["warmup_epochs"] == 5  # 15 of 50


def xautodl_cosine_lr(base: float, eta_min: float, epochs: int, epoch: int, fraction: float) -> float:
    """xautodl's ``CosineAnnealingLR.get_lr`` (``procedures/optimizers.py``) with no warm-up, written out: the
    0-based ``epoch`` alone sets the rate (``fraction``, what ``update(None, step / len(loader))`` passes, is read
    only in warm-up); at or past ``epochs`` it is ``eta_min``."""
    if epoch >= epochs:
        return eta_min
    return eta_min + (base - eta_min) * (1 + math.cos(math.pi * epoch / epochs)) / 2


@pytest.mark.parametrize("schedule", ["per_epoch", "per_step"])
def test_learning_rate_schedules_against_the_reference_formula(schedule):
    """per_epoch equals xautodl's scheduler at every step (float64); per_step agrees with it at each epoch's first
    step and anneals within the epoch; the paper preset uses per_epoch, the reduced presets per_step."""
    from harness.config import build_config

    searcher = make("darts")
    searcher.optim = OptimConfig(**{**OPTIM.__dict__, "lr_schedule": schedule})
    steps = searcher.context.steps_per_epoch
    for epoch in range(1, OPTIM.epochs + 1):
        rates = [searcher.set_learning_rate(epoch, step) for step in range(steps)]
        reference = [xautodl_cosine_lr(OPTIM.w_lr, OPTIM.w_lr_min, OPTIM.epochs, epoch - 1, step / steps)
                     for step in range(steps)]
        assert rates[0] == pytest.approx(reference[0], rel=1e-15, abs=0)
        if schedule == "per_epoch":
            assert rates == pytest.approx(reference, rel=1e-15, abs=0)
        else:
            assert all(later < earlier for earlier, later in zip(rates, rates[1:]))
        assert searcher.w_opt.param_groups[0]["lr"] == rates[-1]
    assert build_config("nb201", "darts", "paper", []).lr_schedule == "per_epoch"
    assert build_config("1shot1-s1", "darts", "paper", []).lr_schedule == "per_epoch"
    assert {build_config("nb201", "darts", preset, []).lr_schedule for preset in ("quick", "reduced", "smoke")} == {
        "per_step"}


def test_the_reference_scheduler_itself_when_installed():
    """The written-out formula above against xautodl's own class (installed by ``make install``, read from its
    file: its package imports torchvision)."""
    import importlib.util

    found = importlib.util.find_spec("xautodl")
    assert found is not None, "xautodl is installed by make install (the speed reference)"
    spec = importlib.util.spec_from_file_location(
        "xautodl_optimizers", Path(found.submodule_search_locations[0]) / "procedures" / "optimizers.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.025)
    scheduler = module.CosineAnnealingLR(optimizer, 0, 50, 50, 0.001)
    for epoch in range(52):
        scheduler.update(epoch, 0.0)
        for fraction in (0.0, 0.5, 0.99):
            scheduler.update(None, fraction)
            assert optimizer.param_groups[0]["lr"] == pytest.approx(
                xautodl_cosine_lr(0.025, 0.001, 50, epoch, fraction), rel=1e-15, abs=0)


def test_idarts_reference_weight_rule_by_hand():
    """``weight_rule=reference`` (iDARTS_V2.ipynb): the architecture gradient with R = 0.01 / ||v|| and the only
    weight change w - R (s - v), the weight optimiser never stepped; written out with autograd, float64."""
    searcher = make("idarts", {"weight_rule": "reference"})
    searcher.set_learning_rate(1, 0)
    lr = searcher.w_opt.param_groups[0]["lr"]
    train, val = batch(0), batch(1)
    net, weights, (alpha,) = searcher.supernet, searcher.weights, searcher.alphas
    start = [w.detach().clone() for w in weights]

    def loss(data: Batch) -> torch.Tensor:
        return F.cross_entropy(net(data.images, [F.softmax(alpha, -1)])[0], data.labels[0])

    *vector, direct = torch.autograd.grad(loss(val), [*weights, alpha])

    def minus_lr_hessian_times(p: list[torch.Tensor]) -> list[torch.Tensor]:
        gradient = torch.autograd.grad(loss(train), weights, create_graph=True)
        return [x - lr * h for x, h in zip(p, torch.autograd.grad(gradient, weights, grad_outputs=p))]

    first = minus_lr_hessian_times(vector)
    second = minus_lr_hessian_times(first)
    series = [a + b + c for a, b, c in zip(vector, first, second)]
    radius = 0.01 / torch.sqrt(sum((v ** 2).sum() for v in vector))

    def alpha_gradient_at(sign: float) -> torch.Tensor:
        with torch.no_grad():
            for w, w0, s in zip(weights, start, series):
                w.copy_(w0 + sign * radius * s)
        return torch.autograd.grad(loss(train), alpha)[0]

    expected = direct - lr * (alpha_gradient_at(1.0) - alpha_gradient_at(-1.0)) / (2 * radius)
    with torch.no_grad():
        for w, w0 in zip(weights, start):
            w.copy_(w0)
    searcher.step(train, val, stats(), stats())
    assert torch.allclose(alpha.grad, expected, rtol=1e-9, atol=1e-12)
    for w, w0, s, v in zip(weights, start, series, vector):
        assert torch.allclose(w, w0 - radius * (s - v), rtol=1e-12, atol=1e-14)
    assert not searcher.w_opt.state  # no SGD step: no momentum buffer was ever made
    from harness.config import build_config

    assert build_config("nb201", "idarts", "paper", []).searcher_options["weight_rule"] == "reference"
    assert build_config("nb201", "idarts", "reduced", []).searcher_options["weight_rule"] == "darts"


@pytest.mark.parametrize("name", ["darts", "pc_darts", "darts_ada", "lambda_darts", "oles"])
def test_step_order_weights_first_takes_the_weight_step_before_the_architecture_step(name):
    """``step_order=weights_first`` (xautodl's NB201 DARTS-V1/V2 and GDAS) is the two updates swapped, also for
    searchers that change one of them; searchers whose step is not that alternation refuse it."""
    from foundation.errors import UserError
    from harness.config import build_config

    options = {"warmup_epochs": 0, "edge_normalisation": False} if name == "pc_darts" else {}  # make: a plain supernet
    swapped, by_hand = make(name, options), make(name, options)
    swapped.optim = OptimConfig(**{**OPTIM.__dict__, "step_order": "weights_first"})
    for searcher in (swapped, by_hand):
        searcher.set_learning_rate(1, 0)
        searcher.begin_epoch(2)
    for step in range(3):
        swapped.step(batch(2 * step), batch(2 * step + 1), stats(), stats())
        by_hand.weight_step(batch(2 * step), stats())
        by_hand.arch_step(batch(2 * step), batch(2 * step + 1), stats())
    assert all(torch.equal(a, b) for a, b in zip(swapped.alphas + swapped.weights, by_hand.alphas + by_hand.weights))
    arch_first = make(name, options)
    arch_first.set_learning_rate(1, 0)
    arch_first.begin_epoch(2)
    for step in range(3):
        arch_first.step(batch(2 * step), batch(2 * step + 1), stats(), stats())
    assert not all(torch.equal(a, b) for a, b in zip(arch_first.alphas, swapped.alphas))
    assert build_config("nb201", name, "smoke", ["step_order=weights_first"]).step_order == "weights_first"
    for other in ("snas", "tse_darts", "spos"):
        with pytest.raises(UserError, match="is not an architecture step and a weight step"):
            build_config("nb201", other, "smoke", ["step_order=weights_first"])
