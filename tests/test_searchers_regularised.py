"""What makes Fair DARTS and Lambda-DARTS differ from DARTS, checked by hand on tiny supernets; and the NB201
supernet's per-cell mixing weights that Lambda-DARTS needs."""
from __future__ import annotations

import dataclasses

import pytest
import torch
from test_searchers_perturbation import OPTIM, batch, make, stats
from torch.nn import functional as F

from benchmarks.nb201.supernet import NB201Supernet
from foundation.errors import UserError
from searchers import get_searcher
from searchers.context import SearchContext
from searchers.lambda_darts import alignment_perturbations, layer_alignment
from searchers.seeds import SeedStack, seed_cross_entropy


# --- Fair DARTS ---------------------------------------------------------------------------------------------------
def test_fair_darts_mixes_with_sigmoids_and_adds_the_weighted_zero_one_loss():
    searcher = make("fair_darts", {"zero_one_weight": 3.0})
    (alpha,) = searcher.alphas
    (weights,) = searcher.arch_weights()
    assert torch.equal(weights, torch.sigmoid(alpha))
    data = batch(1)
    loss, logits = searcher.arch_loss(data)
    by_hand = (F.cross_entropy(logits[0], data.labels[0]) - 3.0 * ((torch.sigmoid(alpha) - 0.5) ** 2).mean())
    assert loss.item() == pytest.approx(by_hand.item(), rel=1e-12)


# --- per-cell mixing weights (the supernet feature) --------------------------------------------------------------
def test_per_cell_weights_give_each_search_cell_its_own_row():
    torch.manual_seed(0)
    net = NB201Supernet(channels=2, cells_per_stage=2, track_running_stats=False).double().eval()
    cells = net.per_cell_weights()
    assert cells == 6
    images = torch.randn(4, 3, 8, 8, dtype=torch.float64)
    shared = torch.softmax(torch.randn(6, 5, dtype=torch.float64), dim=-1)
    logits = net(images, [shared])
    assert torch.equal(net(images, [shared.expand(cells, 6, 5)]), logits)
    for cell in range(cells):  # changing one cell's row changes the output
        rows = shared.expand(cells, 6, 5).clone()
        rows[cell] = torch.softmax(torch.randn(6, 5, dtype=torch.float64), dim=-1)
        assert not torch.allclose(net(images, [rows]), logits)


def test_a_supernet_without_per_cell_weights_is_refused_in_one_line():
    class Plain(NB201Supernet):
        per_cell_weights = None

    with pytest.raises(UserError, match="lambda_darts needs a supernet with op-mixing weights per search cell"):
        get_searcher("lambda_darts")(SeedStack([Plain(channels=2, cells_per_stage=1)]), OPTIM,
                                     SearchContext(4, (16, 16), 10), {})


# --- Lambda-DARTS -------------------------------------------------------------------------------------------------
def test_layer_alignment_is_the_mean_pairwise_cosine_and_the_perturbation_its_gradient_scaled_to_epsilon():
    grads = torch.tensor([[[3.0, 4.0], [4.0, 3.0], [1.0, 0.0]],
                          [[1.0, 0.0], [0.0, 2.0], [-1.0, 0.0]]], dtype=torch.float64)  # K=2 seeds, L=3 cells
    by_hand = [(24 / 25 + 3 / 5 + 4 / 5) / 3, (0.0 - 1.0 + 0.0) / 3]
    assert layer_alignment(grads).tolist() == pytest.approx(by_hand)
    variable = grads.clone().requires_grad_()
    (gradient,) = torch.autograd.grad(layer_alignment(variable).sum(), variable)
    shift, epsilon = alignment_perturbations(grads, 1e-4)
    for seed in range(2):
        assert torch.allclose(shift[seed], epsilon[seed] * gradient[seed], atol=1e-12)
        assert shift[seed].norm().item() == pytest.approx(1e-4)


def _applied_weight_gradients(searcher, data) -> list[torch.Tensor]:
    """The weight gradients the weight step hands its optimiser (no clipping: a huge clip norm)."""
    searcher.w_opt.step = lambda: None
    searcher.a_opt.step = lambda: None
    searcher.step(data, batch(9), stats(), stats())
    return [weight.grad.clone() for weight in searcher.weights]


def test_lambda_darts_descends_the_training_loss_minus_lambda_times_the_exact_alignment():
    """The central difference along the alignment's gradient agrees with the exact gradient of
    ``L_train - lambda_t * Lambda`` (double backward through the cells' mixing-weight gradients), and with the
    strength at 0 the step is DARTS's."""
    optim = dataclasses.replace(OPTIM, grad_clip=1e9)
    searcher = make("lambda_darts", {"lambda_": 0.5, "epsilon_0": 1e-6})
    searcher.optim = optim
    searcher.begin_epoch(OPTIM.epochs)  # the last epoch: lambda_t = lambda_
    assert searcher.strength == 0.5
    data = batch(2)
    net, weights = searcher.supernet, searcher.weights
    (mixing,) = searcher.arch_weights()
    per_cell = mixing.detach()[:, None].repeat(1, net.feature("per_cell_weights", "test")(), 1, 1).requires_grad_()
    loss = seed_cross_entropy(net(data.images, [per_cell]), data.labels).sum()
    (cell_grads,) = torch.autograd.grad(loss, per_cell, create_graph=True)
    objective = loss - 0.5 * layer_alignment(cell_grads).sum()
    exact = torch.autograd.grad(objective, weights)
    applied = _applied_weight_gradients(searcher, data)
    for ours, theirs in zip(applied, exact, strict=True):
        torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-7)

    darts, lam = make("darts"), make("lambda_darts")
    lam.begin_epoch(1)  # the first epoch: lambda_t = 0
    assert lam.strength == 0.0
    for ours, theirs in zip(_applied_weight_gradients(lam, data), _applied_weight_gradients(darts, data),
                            strict=True):
        torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)
