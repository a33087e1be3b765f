"""The maths that makes each one-shot baseline of the published tables differ from DARTS (issue 20), on tiny
supernets in float64."""
from __future__ import annotations

import pytest
import torch
from test_searchers import batch, make, stats
from test_supernet import edge_conv
from torch.nn import functional as F

from benchmarks.data_stream import Batch
from benchmarks.nb201.supernet import NB201Supernet
from harness.config import build_config
from searchers.gdas import hard_gumbel_softmax
from searchers.seeds import SampledWeights


def schedule(searcher, attribute: str) -> list[float]:
    """A per-epoch value (temperature, auxiliary skip weight) over the 10 epochs of ``make``'s optimiser."""
    values = []
    for epoch in range(1, 11):
        searcher.begin_epoch(epoch)
        values.append(getattr(searcher, attribute))
    return values


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
    taus = schedule(make("gdas"), "tau")
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


# --- SPOS / RSPS ---------------------------------------------------------------------------------------------
def test_spos_trains_the_weights_on_uniform_single_paths_and_never_the_alphas():
    searcher = make("spos", {"candidates": 3})
    cells = torch.cat([searcher.uniform_cells()[0][0] for _ in range(2000)])
    assert torch.equal(cells.sum(-1), torch.ones(len(cells), dtype=torch.float64))
    assert torch.allclose(cells.mean(0), torch.full((5,), 0.2, dtype=torch.float64), atol=0.02)
    alphas = searcher.alphas[0].detach().clone()
    weights = [w.detach().clone() for w in searcher.weights]
    searcher.step(batch(1), batch(2), stats(), stats())
    assert torch.equal(searcher.alphas[0], alphas)
    assert any(not torch.equal(w, v) for w, v in zip(searcher.weights, weights))


def test_spos_scores_each_candidate_on_the_next_unaugmented_images_and_returns_the_best():
    """RANDOM-NAS.py's ``search_find_best``: each candidate on its own batch of ``selection_images`` clean
    (test-transform) architecture-half images, the loader restarting when the epoch's images run out."""
    searcher = make("spos", {"candidates": 6, "selection_images": 20})
    assert searcher.wants_clean_images
    kept = []
    for seed in (3, 4, 5):
        augmented, clean = batch(seed, size=16), batch(seed + 10, size=16)
        kept.append(Batch(augmented.images, clean.labels, clean.indices, clean.images))
        searcher.step(batch(1), kept[-1], stats(), stats())
    searcher.reseed([11])
    searcher.end_epoch(1)
    selected = searcher.derivation_weights()[0]
    searcher.reseed([11])  # the same draws again, scored by hand
    images = torch.cat([b.clean[0] for b in kept])  # 48 images: candidates 0-1 on 0-39, 2 on 40-47 and 0-11, ...
    labels = torch.cat([b.labels[0] for b in kept])
    searcher.supernet.eval()
    with torch.no_grad():
        scored = []
        for index in range(6):
            cell = searcher.uniform_cells()
            rows = [(index * 20 + i) % 48 for i in range(20)]
            logits = searcher.supernet(images[rows][None], cell)[0]
            scored.append(((logits.argmax(-1) == labels[rows]).double().mean().item(), cell[0]))
    best = max(score for score, _ in scored)
    assert torch.equal(selected, next(cell for score, cell in scored if score == best))
    assert len({score for score, _ in scored}) > 1  # the choice is not a tie
    assert searcher.extra_state()["selected"][0] is selected
    assert build_config("nb201", "spos", "paper", []).searcher_options["selection_images"] == 512


# --- SNAS / DSNAS --------------------------------------------------------------------------------------------
def test_snas_relaxed_sample_and_linear_temperature():
    searcher = make("snas")
    assert schedule(searcher, "tau") == pytest.approx([1 - 0.97 * e / 10 for e in range(1, 11)])
    assert make("snas", {"anneal_epochs": 150}).options.anneal_epochs == 150
    searcher.begin_epoch(1)
    sample = searcher.arch_weights()[0]
    assert torch.allclose(sample.sum(-1), torch.ones(1, 6, dtype=torch.float64))
    assert ((sample > 0) & (sample < 1)).all()  # relaxed: no one-hot, no straight-through


def test_snas_updates_weights_and_alphas_from_the_same_training_loss():
    searcher = make("snas")
    searcher.reseed([5])
    weight_grads, alpha_grads, loss, _ = searcher.gradients(batch(1))
    searcher.reseed([5])  # the same Gumbel sample, by hand
    relaxed = F.softmax((searcher.alphas[0][0] + -torch.empty(6, 5, dtype=torch.float64).exponential_(
        generator=torch.Generator().manual_seed(5)).log()) / searcher.tau, dim=-1)
    by_hand = F.cross_entropy(searcher.supernet(batch(1).images, [relaxed[None]])[0], batch(1).labels[0])
    assert loss.item() == pytest.approx(by_hand.item())
    assert torch.allclose(alpha_grads[0], torch.autograd.grad(by_hand, searcher.alphas)[0])
    alphas, weights = searcher.alphas[0].detach().clone(), searcher.weights[0].detach().clone()
    searcher.step(batch(1), batch(2), stats(), stats())
    assert not torch.equal(searcher.alphas[0], alphas) and not torch.equal(searcher.weights[0], weights)


def test_dsnas_samples_categorically_and_scales_grad_log_p_by_the_sampled_ops_gradient():
    searcher = make("dsnas")
    with torch.no_grad():
        searcher.alphas[0].copy_(torch.tensor([[[1.0, 0.0, -1.0, 0.5, 2.0]] * 6], dtype=torch.float64))
    counts = sum(searcher.arch_weights()[0][0].detach().sum(0) for _ in range(800))
    assert torch.allclose(counts / 4800, F.softmax(searcher.alphas[0][0, 0].detach(), -1), atol=0.03)
    searcher.reseed([3])
    _, alpha_grads, _, _ = searcher.gradients(batch(1))
    searcher.reseed([3])
    z = searcher.arch_weights()[0].detach()
    b = batch(1)

    def loss(scale: float, edge: int) -> float:
        zz = z.clone()
        zz[0, edge] *= scale  # the sampled op's weight 1 -> scale
        return F.cross_entropy(searcher.supernet(b.images, [zz])[0], b.labels[0]).item()

    probs = F.softmax(searcher.alphas[0].detach(), dim=-1)
    for edge in range(6):
        reward = (loss(1 + 1e-6, edge) - loss(1 - 1e-6, edge)) / 2e-6  # dL/dZ_sampled, by finite difference
        assert torch.allclose(alpha_grads[0][0, edge], reward * (z[0, edge] - probs[0, edge]), atol=1e-7)
    assert alpha_grads[0].abs().sum() > 0


def test_baseline_paper_settings():
    gdas = build_config("nb201", "gdas", "paper", [])
    assert (gdas.epochs, gdas.w_lr, gdas.w_weight_decay, gdas.a_lr) == (250, 0.025, 5e-4, 3e-4)
    assert (gdas.searcher_options["tau_max"], gdas.searcher_options["tau_min"]) == (10.0, 0.1)
    assert build_config("nb201", "spos", "paper", []).epochs == 250
    pc = build_config("nb201", "pc_darts", "paper", [])
    assert (pc.batch_size, pc.w_lr, pc.a_lr, pc.epochs) == (256, 0.1, 6e-4, 50)
    assert pc.searcher_options == {"partial_channels": 4, "edge_normalisation": True, "warmup_epochs": 15}
    idarts = build_config("nb201", "idarts", "paper", [])
    assert (idarts.w_lr, idarts.epochs, idarts.searcher_options["neumann_terms"]) == (0.01, 30, 2)
    snas = build_config("nb201", "snas", "paper", []).searcher_options
    assert (snas["tau_init"], snas["tau_min"]) == (1.0, 0.03)
    assert build_config("nb201", "darts_minus", "paper", []).searcher_options["beta_init"] == 1.0


# --- DARTS- --------------------------------------------------------------------------------------------------
def test_darts_minus_adds_a_decaying_identity_path_outside_the_softmax():
    searcher = make("darts_minus")
    assert schedule(searcher, "beta") == pytest.approx([1 - e / 10 for e in range(10)])
    net = NB201Supernet(channels=2, cells_per_stage=1).double()
    cell, x, beta = net.layers[0], torch.randn(1, 2, 8, 8, dtype=torch.float64), 0.7
    (only_skip,) = net.with_identity([torch.zeros(6, 5, dtype=torch.float64)], beta)
    n1 = beta * x  # every op's weight 0: each edge passes beta * x alone
    n2 = beta * x + beta * n1
    assert torch.allclose(cell(x, only_skip), beta * x + beta * n1 + beta * n2)
    plain = F.softmax(searcher.alphas[0][0], dim=-1)
    (mixed,) = net.with_identity([plain], beta)
    assert torch.allclose(mixed - plain, beta * F.one_hot(torch.tensor(1), 5).double().expand(6, 5))  # skip_connect
    searcher.begin_epoch(4)
    assert torch.allclose(searcher.arch_weights()[0], net.with_identity([plain[None]], 0.7)[0])
    assert torch.equal(searcher.derivation_weights()[0], F.softmax(searcher.alphas[0], dim=-1).detach())


def test_darts_minus_needs_an_identity_op():
    from test_searchers import OPTIM

    from benchmarks.oneshot1.space import DEFINITIONS
    from benchmarks.oneshot1.supernet import OneShot1Supernet
    from foundation.errors import UserError
    from searchers import get_searcher
    from searchers.context import SearchContext
    from searchers.seeds import SeedStack

    stack = SeedStack([OneShot1Supernet(DEFINITIONS[2], channels=2, cells_per_stage=1)])
    with pytest.raises(UserError, match="identity op"):
        get_searcher("darts_minus")(stack, OPTIM, SearchContext(4, (16, 16), 10), {})


# --- PC-DARTS ------------------------------------------------------------------------------------------------
def test_channel_shuffle_is_the_reference_view_transpose():
    from benchmarks.partial_channels import channel_shuffle

    x = torch.arange(2 * 8 * 2 * 2, dtype=torch.float64).view(2, 8, 2, 2)
    batch_size, channels, height, width = x.shape
    reference = x.view(batch_size, 4, channels // 4, height, width).transpose(1, 2).contiguous().view(
        batch_size, channels, height, width)  # PC-DARTS model_search.py: channel_shuffle(x, groups=4)
    assert torch.equal(channel_shuffle(x, 4), reference)
    assert (channel_shuffle(x, 4)[0, :, 0, 0] / 4).tolist() == [0, 2, 4, 6, 1, 3, 5, 7]
    assert torch.equal(channel_shuffle(x, 1), x)


def test_partial_channel_edges_mix_a_quarter_of_the_channels_and_scale_whole_edges():
    from benchmarks.nb201.space import EDGES
    from benchmarks.partial_channels import channel_shuffle

    torch.manual_seed(0)
    net = NB201Supernet(channels=8, cells_per_stage=1, partial_channels=4, edge_normalisation=True).double()
    cell, x = net.layers[0], torch.randn(2, 8, 6, 6, dtype=torch.float64)
    assert cell.edge_kernel(cell.conv3, 0).shape == (2, 2, 3, 3)  # the ops see C/K channels
    weights = F.softmax(torch.randn(6, 5, dtype=torch.float64), dim=-1)
    scales = net.normalised_edges(net.betas.detach() * 100)
    assert torch.allclose(scales[1:3].sum(), torch.tensor(1.0, dtype=torch.float64))  # node 2's two inputs
    assert torch.allclose(scales[3:].sum(), torch.tensor(1.0, dtype=torch.float64)) and scales[0] == 1
    nodes = [x]
    for dst in range(1, 4):
        total = 0
        for e, (src, d) in enumerate(EDGES):
            if d == dst:
                h, rest = nodes[src][:, :2], nodes[src][:, 2:]
                w = weights[e]
                mixed = (w[1] * h + w[2] * edge_conv(cell, "nor_conv_1x1", e, h)
                         + w[3] * edge_conv(cell, "nor_conv_3x3", e, h)
                         + w[4] * F.avg_pool2d(h, 3, 1, 1, count_include_pad=False))
                total = total + scales[e] * channel_shuffle(torch.cat([mixed, rest], 1), 4)
        nodes.append(total)
    assert torch.allclose(cell(x, weights, None, scales), nodes[-1])
    assert net.arch_parameters()[1] is net.betas and all(p is not net.betas for p in net.weight_parameters())


def test_pc_darts_warm_up_trains_only_the_weights_then_alpha_and_beta():
    from test_searchers import OPTIM

    from searchers import get_searcher
    from searchers.context import SearchContext
    from searchers.seeds import SeedStack

    torch.manual_seed(0)
    net = NB201Supernet(channels=4, cells_per_stage=1, track_running_stats=False, partial_channels=2,
                        edge_normalisation=True).double()
    searcher = get_searcher("pc_darts")(SeedStack([net]), OPTIM, SearchContext(4, (16, 16), 10),
                                        {"partial_channels": 2, "warmup_epochs": 1})
    arch = [a.detach().clone() for a in searcher.alphas]
    searcher.begin_epoch(1)
    searcher.step(batch(1), batch(2), stats(), stats())
    assert all(torch.equal(a, b) for a, b in zip(searcher.alphas, arch))
    searcher.begin_epoch(2)
    searcher.step(batch(1), batch(2), stats(), stats())
    assert all(not torch.equal(a, b) for a, b in zip(searcher.alphas, arch))  # alpha and beta both trained
    weights = searcher.derivation_weights()
    assert len(weights) == 2 and torch.allclose(weights[1][0, 1:3].sum(), torch.tensor(1.0, dtype=torch.float64))


def test_a_searcher_asking_a_supernet_feature_the_space_lacks_is_a_bad_setting():
    from foundation.errors import UserError
    from harness.config import configure

    with pytest.raises(UserError, match="partial_channels"):
        configure("1shot1-s2", "pc_darts", "smoke", [])
    with pytest.raises(UserError, match="must divide"):
        configure("nb201", "pc_darts", "smoke", ["partial_channels=3"])


# --- iDARTS --------------------------------------------------------------------------------------------------
def test_idarts_neumann_series_and_hypergradient_match_finite_differences():
    searcher = make("idarts", {"neumann_terms": 2, "fd_radius": 1e-6})  # an accurate mixed finite difference
    lr = searcher.w_opt.param_groups[0]["lr"]
    train, val = batch(1), batch(2)
    weights = searcher.weights

    def grads_at(shift: list[torch.Tensor], of: list[torch.Tensor], b) -> list[torch.Tensor]:
        saved = [w.detach().clone() for w in weights]
        with torch.no_grad():
            for w, s in zip(weights, shift):
                w.add_(s)
        loss, _ = searcher.weight_loss(b)
        result = torch.autograd.grad(loss.sum(), of, allow_unused=True)
        with torch.no_grad():
            for w, s in zip(weights, saved):
                w.copy_(s)
        return [torch.zeros_like(t) if g is None else g for t, g in zip(of, result)]

    def directional(p: list[torch.Tensor], of: list[torch.Tensor]) -> list[torch.Tensor]:
        eps = 1e-6 / max(float(x.abs().max()) for x in p)  # a step that stays off the ReLU kinks
        plus = grads_at([eps * x for x in p], of, train)
        minus = grads_at([-eps * x for x in p], of, train)
        return [(a - b) / (2 * eps) for a, b in zip(plus, minus)]

    val_loss, _ = searcher.arch_loss(val)
    vector = list(torch.autograd.grad(val_loss.sum(), weights))
    term, expected = vector, list(vector)
    for _ in range(2):  # (I - lr H)^j v with H p by finite differences of the training gradient
        term = [t - lr * h for t, h in zip(term, directional(term, weights))]
        expected = [s + t for s, t in zip(expected, term)]
    series = searcher.neumann_series(vector, train, lr)
    for ours, theirs in zip(series, expected):
        assert torch.allclose(ours, theirs, atol=1e-6, rtol=1e-4)
    alpha_val = torch.autograd.grad(searcher.arch_loss(val)[0].sum(), searcher.alphas)[0]
    hypergradient = alpha_val - lr * directional(expected, searcher.alphas)[0]
    grads, _, _ = searcher.arch_gradient(train, val)
    assert torch.allclose(grads[0], hypergradient, atol=1e-6, rtol=1e-3)
    assert not torch.allclose(grads[0], alpha_val)  # the implicit term matters


# --- the NAS-Bench-1shot1 supernet's features (GDAS, PC-DARTS ran there in Zela et al.) -----------------------
def _oneshot1_searcher(name: str, options: dict | None = None, **features):
    from test_searchers import OPTIM

    from benchmarks.oneshot1.space import DEFINITIONS
    from benchmarks.oneshot1.supernet import OneShot1Supernet
    from searchers import get_searcher
    from searchers.context import SearchContext
    from searchers.seeds import SeedStack

    torch.manual_seed(0)
    net = OneShot1Supernet(DEFINITIONS[2], channels=4, cells_per_stage=1, **features).double()
    return get_searcher(name)(SeedStack([net]), OPTIM, SearchContext(4, (16, 16), 10), options or {})


def test_oneshot1_gdas_samples_ops_hard_and_parents_relaxed_and_leaves_unsampled_ops_out():
    searcher = _oneshot1_searcher("gdas")
    weights = searcher.arch_weights()
    ops, *mixtures = weights
    assert torch.equal(ops.detach(), weights.active[0]) and torch.equal(ops.detach().sum(-1), torch.ones(1, 4,
                                                                                                         dtype=ops.dtype))
    assert all(((m > 0) & (m < 1)).all() and torch.equal(mask, torch.ones_like(mask))
               for m, mask in zip(mixtures, weights.active[1:]))
    b = batch(1)
    loss = F.cross_entropy(searcher.supernet(b.images, weights)[0], b.labels[0])
    (op_grad,) = torch.autograd.grad(loss, [ops])
    assert torch.equal(op_grad[weights.active[0] == 0], torch.zeros_like(op_grad[weights.active[0] == 0]))
    assert (op_grad[weights.active[0] == 1] != 0).all()  # only the sampled ops pass a gradient


def test_oneshot1_partial_channels_and_pc_darts_without_edge_normalisation():
    searcher = _oneshot1_searcher("pc_darts", {"partial_channels": 2, "edge_normalisation": False,
                                               "warmup_epochs": 0}, partial_channels=2)
    cell = searcher.supernet.net.cells[0]
    assert cell.conv3[0][0].weight.shape[-4:] == (2, 2, 3, 3)  # C/K of the node's 4 channels
    assert len(searcher.derivation_weights()) == len(searcher.alphas)  # DARTS's softmaxes, no edge scales
    alphas = [a.detach().clone() for a in searcher.alphas]
    searcher.begin_epoch(1)
    searcher.step(batch(1), batch(2), stats(), stats())
    assert any(not torch.equal(a, b) for a, b in zip(searcher.alphas, alphas))


def test_spos_refuses_a_space_whose_parameters_also_mix_inputs():
    from foundation.errors import UserError

    with pytest.raises(UserError, match="k of n parents"):
        _oneshot1_searcher("spos")
