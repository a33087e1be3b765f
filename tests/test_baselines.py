"""The maths that makes each one-shot baseline of the published tables differ from DARTS (issue 20), on tiny
supernets in float64."""
from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F
from test_searchers import batch, make, stats

from harness.config import build_config
from searchers.gdas import hard_gumbel_softmax
from searchers.seeds import SampledWeights


# --- GDAS ----------------------------------------------------------------------------------------------------
def test_gdas_sample_is_one_hot_with_the_gumbel_max_frequencies_and_a_straight_through_gradient():
    alpha = torch.tensor([[0.5, -1.0, 2.0, 0.0, 1.0]], dtype=torch.float64, requires_grad=True)
    generator = torch.Generator().manual_seed(0)
    counts = torch.zeros(5, dtype=torch.float64)
    for _ in range(4000):
        hard, one_hot = hard_gumbel_softmax(alpha, 1.0, generator)
        assert torch.equal(hard.detach(), one_hot) and one_hot.sum() == 1
        counts += one_hot[0]
    # Gumbel-max: the argmax of log_softmax(alpha) + g is a draw from softmax(alpha), at any temperature
    assert torch.allclose(counts / 4000, F.softmax(alpha.detach(), dim=-1)[0], atol=0.025)
    # the backward pass is the relaxed sample's: softmax((log_softmax(alpha) + g) / tau) with the same noise
    hard, _ = hard_gumbel_softmax(alpha, 0.5, torch.Generator().manual_seed(7))
    noise = -torch.empty_like(alpha).exponential_(generator=torch.Generator().manual_seed(7)).log()
    relaxed = F.softmax((F.log_softmax(alpha, dim=-1) + noise) / 0.5, dim=-1)
    upstream = torch.arange(5.0, dtype=torch.float64)
    (ours,) = torch.autograd.grad((hard * upstream).sum(), alpha)
    (theirs,) = torch.autograd.grad((relaxed * upstream).sum(), alpha)
    assert torch.allclose(ours, theirs) and ours.abs().sum() > 0


def test_gdas_temperature_falls_linearly_from_tau_max_to_tau_min_over_the_epochs():
    searcher = make("gdas")  # 10 epochs
    taus = []
    for epoch in range(1, 11):
        searcher.begin_epoch(epoch)
        taus.append(searcher.tau)
    assert taus == pytest.approx([10 - 9.9 * e / 9 for e in range(10)]) and taus[-1] == pytest.approx(0.1)


def test_gdas_forward_is_the_sampled_network_and_draws_afresh_each_time():
    searcher = make("gdas")
    weights = searcher.arch_weights()
    assert isinstance(weights, SampledWeights) and torch.equal(weights[0].detach(), weights.active[0])
    images = batch(0).images
    assert torch.allclose(searcher.supernet(images, weights), searcher.supernet(images, weights.active))
    draws = {tuple(searcher.arch_weights().active[0].argmax(-1).flatten().tolist()) for _ in range(5)}
    assert len(draws) > 1
    grads, _, _ = searcher.arch_gradient(batch(1), batch(2))
    assert grads[0].abs().min() > 0  # every op of every edge gets a gradient, sampled or not
    searcher.step(batch(1), batch(2), stats(), stats())


def test_baseline_paper_settings():
    gdas = build_config("nb201", "gdas", "paper", [])
    assert (gdas.epochs, gdas.w_lr, gdas.w_weight_decay, gdas.a_lr) == (250, 0.025, 5e-4, 3e-4)
    assert (gdas.searcher_options["tau_max"], gdas.searcher_options["tau_min"]) == (10.0, 0.1)
