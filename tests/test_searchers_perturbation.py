"""What makes SDARTS-RS, SDARTS-ADV, beta-DARTS and ReinMax differ from DARTS / GDAS, checked by hand on tiny
supernets."""
from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from benchmarks.data_stream import Batch
from benchmarks.nb201.supernet import NB201Supernet
from searchers import get_searcher
from searchers.beta_darts import beta_decay
from searchers.context import EpochStats, OptimConfig, SearchContext
from searchers.reinmax import ReinMaxSample, reinmax_sample
from searchers.sdarts_rs import project_to_simplex_rows
from searchers.seeds import SeedStack

OPTIM = OptimConfig(epochs=10, w_lr=0.05, w_lr_min=0.001, w_momentum=0.9, w_weight_decay=5e-4, w_nesterov=True,
                    grad_clip=5.0, a_lr=3e-4, a_beta1=0.5, a_beta2=0.999, a_weight_decay=1e-3,
                    lr_schedule="per_step", step_order="arch_first")


def make(name: str, options: dict | None = None, seeds: int = 1, track: bool = False, alpha_scale: float = 1.0):
    torch.manual_seed(0)
    nets = [NB201Supernet(channels=2, cells_per_stage=1, track_running_stats=track).double() for _ in range(seeds)]
    searcher = get_searcher(name)(SeedStack(nets), OPTIM, SearchContext(4, (16, 16), 10), options or {})
    with torch.no_grad():
        for alpha in searcher.alphas:  # spread the softmax, so that perturbations and samples are not all alike
            alpha.copy_(torch.randn(alpha.shape, generator=torch.Generator().manual_seed(1), dtype=alpha.dtype)
                        * alpha_scale)
    searcher.reseed(list(range(seeds)))
    return searcher


def batch(seed: int, seeds: int = 1, size: int = 8) -> Batch:
    gen = torch.Generator().manual_seed(seed)
    return Batch(torch.randn(seeds, size, 3, 8, 8, generator=gen, dtype=torch.float64),
                 torch.randint(0, 10, (seeds, size), generator=gen), torch.arange(size).repeat(seeds, 1))


def stats(seeds: int = 1) -> EpochStats:
    return EpochStats(torch.device("cpu"), seeds)


def recording(searcher) -> list[list[torch.Tensor]]:
    """The mixing weights of every supernet forward pass from now on."""
    seen, forward = [], searcher.supernet.forward

    def spy(images, arch_weights, *args):
        seen.append([weights.detach().clone() for weights in arch_weights])
        return forward(images, arch_weights, *args)

    searcher.supernet.forward = spy
    return seen


# --- SDARTS-RS ----------------------------------------------------------------------------------------------------
def test_simplex_projection_is_the_references_clip():
    rows = torch.tensor([[0.5, -0.2, 0.9, 0.1], [-0.3, -0.1, -0.5, -0.2], [1.4, 0.2, 0.0, 0.0]], dtype=torch.float64)
    projected = project_to_simplex_rows(rows)
    expected = torch.tensor([[0.5, 0.0, 0.9, 0.1], [0.0, 1.0, 0.0, 0.0], [1.0, 0.2, 0.0, 0.0]], dtype=torch.float64)
    assert torch.allclose(projected, expected / expected.sum(dim=-1, keepdim=True))


def test_sdarts_epsilon_rises_linearly_from_0_03_towards_0_3():
    searcher = make("sdarts_rs")
    searcher.begin_epoch(1)
    assert searcher.epsilon() == pytest.approx(0.03)
    searcher.begin_epoch(OPTIM.epochs)
    assert searcher.epsilon() == pytest.approx(0.03 + 0.27 * (OPTIM.epochs - 1) / OPTIM.epochs)


def test_sdarts_rs_noise_is_uniform_within_epsilon():
    searcher = make("sdarts_rs")
    searcher.begin_epoch(5)
    noise = searcher.noise(torch.zeros(1, 200, 50, dtype=torch.float64))
    epsilon = searcher.epsilon()
    assert noise.abs().max() <= epsilon and noise.min() < -0.9 * epsilon and noise.max() > 0.9 * epsilon
    assert abs(noise.mean()) < 0.02 * epsilon


def test_sdarts_rs_weight_step_sees_perturbed_weights_and_the_arch_step_the_softmax():
    searcher = make("sdarts_rs")
    searcher.begin_epoch(3)
    searcher.set_learning_rate(3, 0)
    alpha_before = searcher.alphas[0].detach().clone()
    seen = recording(searcher)
    searcher.step(batch(0), batch(1), stats(), stats())
    arch_weights, weight_weights = seen[0][0], seen[1][0]
    assert torch.equal(arch_weights, F.softmax(alpha_before, dim=-1))
    searcher.reseed([0])  # the weight step's draw again, by hand: softmax of alpha after the arch step, + noise
    expected = project_to_simplex_rows(F.softmax(searcher.alphas[0].detach(), -1) + searcher.noise(arch_weights))
    assert torch.allclose(weight_weights, expected)
    assert not torch.allclose(weight_weights, F.softmax(searcher.alphas[0].detach(), -1), atol=1e-3)
    assert torch.allclose(weight_weights.sum(-1), torch.ones(()).double()) and weight_weights.min() >= 0


# --- SDARTS-ADV ---------------------------------------------------------------------------------------------------
def test_sdarts_adv_one_pgd_step_by_hand():
    searcher = make("sdarts_adv", {"steps": 1, "random_start": False, "attack_mode": "train"})
    searcher.begin_epoch(8)
    epsilon = searcher.epsilon()
    train = batch(0)
    clean = F.softmax(searcher.alphas[0].detach(), -1).requires_grad_()
    loss = F.cross_entropy(searcher.supernet(train.images, [clean])[0], train.labels[0])
    grad = torch.autograd.grad(loss, clean)[0]
    attacked = project_to_simplex_rows(clean.detach() + epsilon * grad.sign())  # step 2 eps / 1, clamped to eps
    with torch.no_grad():
        attacked_loss = F.cross_entropy(searcher.supernet(train.images, [attacked])[0], train.labels[0])
    expected = attacked if attacked_loss >= loss else clean.detach()
    assert attacked_loss > loss  # the ascent step raised the loss here: the attack is kept
    assert torch.allclose(searcher.adversarial_weights(train)[0], expected)


def test_sdarts_adv_attack_never_lowers_the_loss_and_stays_on_the_simplex():
    searcher = make("sdarts_adv", seeds=2)
    searcher.begin_epoch(10)
    train = batch(0, seeds=2)
    with torch.no_grad():
        clean_loss = F.cross_entropy(searcher.supernet(train.images, searcher.expected_arch_weights()).flatten(0, 1),
                                     train.labels.flatten(), reduction="none").view(2, -1).mean(1)
    attacked = searcher.adversarial_weights(train)
    with torch.no_grad():
        attacked_loss = F.cross_entropy(searcher.supernet(train.images, attacked).flatten(0, 1),
                                        train.labels.flatten(), reduction="none").view(2, -1).mean(1)
    assert (attacked_loss >= clean_loss).all()
    assert torch.allclose(attacked[0].sum(-1), torch.ones(()).double()) and attacked[0].min() >= 0


def test_sdarts_adv_attacks_in_eval_mode_and_leaves_the_bn_statistics_and_mode_alone():
    searcher = make("sdarts_adv", track=True)
    searcher.begin_epoch(2)
    searcher.supernet.train()
    running = {name: buffer.clone() for name, buffer in searcher.supernet.named_buffers()}
    seen_modes, forward = [], searcher.supernet.forward
    searcher.supernet.forward = lambda *args: (seen_modes.append(searcher.supernet.training), forward(*args))[1]
    searcher.adversarial_weights(batch(0))
    assert seen_modes == [False] * (2 + searcher.options.steps) and searcher.supernet.training
    assert all(torch.equal(buffer, running[name]) for name, buffer in searcher.supernet.named_buffers())


# --- beta-DARTS ---------------------------------------------------------------------------------------------------
def test_beta_decay_term_and_its_weight_by_hand():
    searcher = make("beta_darts")
    alpha = searcher.alphas[0].detach()[0]  # (edges, ops) of the one seed
    by_hand = sum(torch.log(torch.exp(row).sum()) for row in alpha) / alpha.shape[0]
    assert torch.allclose(beta_decay(searcher.alphas)[0], by_hand)
    arch = batch(1)
    for epoch, weight in [(1, 0.0), (5, 50 * 4 / OPTIM.epochs), (OPTIM.epochs, 50 * (OPTIM.epochs - 1) / OPTIM.epochs)]:
        searcher.begin_epoch(epoch)
        loss, logits = searcher.arch_loss(arch)
        cross_entropy = F.cross_entropy(logits[0], arch.labels[0])
        assert searcher.beta_weight() == pytest.approx(weight)
        assert torch.allclose(loss[0], cross_entropy + weight * by_hand)


def test_beta_decay_gradient_is_lambda_softmax_over_edges():
    searcher, darts = make("beta_darts"), make("darts")
    searcher.begin_epoch(6)
    arch = batch(1)
    grads = searcher.arch_gradient(batch(0), arch)[0][0]
    plain = darts.arch_gradient(batch(0), arch)[0][0]
    alpha = searcher.alphas[0].detach()
    expected = searcher.beta_weight() * F.softmax(alpha, -1) / alpha.shape[1]
    assert torch.allclose(grads - plain, expected)


# --- ReinMax ------------------------------------------------------------------------------------------------------
def jacobian(probs: torch.Tensor) -> torch.Tensor:
    return torch.diag(probs) - torch.outer(probs, probs)


def test_reinmax_gradient_matches_heuns_formula_by_hand():
    gen = torch.Generator().manual_seed(3)
    alpha = torch.randn(4, 5, generator=gen, dtype=torch.float64, requires_grad=True)
    upstream = torch.randn(4, 5, generator=gen, dtype=torch.float64)
    sample = F.one_hot(torch.tensor([0, 3, 4, 1]), 5).double()
    tau = 2.5
    (ReinMaxSample.apply(alpha, sample, tau) * upstream).sum().backward()
    for row in range(4):
        pi_0 = F.softmax(alpha[row].detach(), -1)
        pi_1 = (F.softmax(alpha[row].detach() / tau, -1) + sample[row]) / 2
        expected = 2 * jacobian(pi_1) @ upstream[row] - 0.5 * jacobian(pi_0) @ upstream[row]
        assert torch.allclose(alpha.grad[row], expected - expected.mean())


def test_reinmax_samples_follow_softmax_alpha_whatever_the_temperature():
    alpha = torch.tensor([[1.0, 0.0, -1.0, 2.0, 0.5]], dtype=torch.float64)
    generator = torch.Generator().manual_seed(1)
    draws = torch.stack([reinmax_sample(alpha, 10.0, generator)[1] for _ in range(4000)])
    assert torch.allclose(draws.mean(0)[0], F.softmax(alpha, -1)[0], atol=0.025)


def test_reinmax_arch_gradient_through_the_supernet_is_reinmax_of_the_weights_gradient():
    searcher = make("reinmax")
    searcher.begin_epoch(4)
    arch = batch(1)
    weights = searcher.arch_weights()
    sample = weights.active[0][0]
    assert torch.equal(weights[0][0].detach(), sample) and torch.equal(sample.sum(-1), torch.ones(6).double())
    loss = F.cross_entropy(searcher.supernet(arch.images, weights)[0], arch.labels[0])
    alpha_grad, weight_grad = torch.autograd.grad(loss, [searcher.alphas[0], weights[0]])
    alpha = searcher.alphas[0].detach()[0]
    for edge in range(alpha.shape[0]):
        g = weight_grad[0, edge]
        pi_1 = (F.softmax(alpha[edge] / searcher.tau, -1) + sample[edge]) / 2
        expected = 2 * jacobian(pi_1) @ g - 0.5 * jacobian(F.softmax(alpha[edge], -1)) @ g
        assert torch.allclose(alpha_grad[0, edge], expected - expected.mean())


def test_reinmax_temperature_falls_from_10_to_1_and_refuses_below_1():
    searcher = make("reinmax")
    searcher.begin_epoch(1)
    assert searcher.tau == pytest.approx(10.0)
    searcher.begin_epoch(OPTIM.epochs)
    assert searcher.tau == pytest.approx(1.0)
    with pytest.raises(ValueError):
        make("reinmax", {"tau_min": 0.5})
