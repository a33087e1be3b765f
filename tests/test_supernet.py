"""The fast supernet computes the textbook mixed-op function (Liu et al. 2019, Eq. 2) of NB201's cell."""
from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from benchmarks.nb201.space import EDGES, NUM_NODES, OPS
from benchmarks.nb201.supernet import NB201Supernet, ResidualReduction, SearchCell


def edge_conv(cell: SearchCell, name: str, edge: int, h: torch.Tensor) -> torch.Tensor:
    """The reference's ReLU-conv-BN of one edge (BN by batch statistics, no affine parameters), from the edge's
    slice of the stacked kernels."""
    kernel = cell.edge_kernel(cell.conv1 if name == "nor_conv_1x1" else cell.conv3, edge)
    return F.batch_norm(F.conv2d(F.relu(h), kernel, padding=kernel.shape[-1] // 2), None, None, training=True)


def straightforward_cell(cell: SearchCell, x: torch.Tensor, weights: torch.Tensor,
                         active: torch.Tensor | None = None) -> torch.Tensor:
    """Every op of every edge, evaluated separately and summed with its weight; ``none`` multiplies by zero. With
    ``active`` (one-hot rows): the NB201 reference's ``forward_gdas``, ``w[k] * op(h) if k == sampled else w[k]``."""
    def op(name: str, edge: int, h: torch.Tensor) -> torch.Tensor:
        if name == "none":
            return h.mul(0.0)
        if name == "skip_connect":
            return h
        if name in ("nor_conv_1x1", "nor_conv_3x3"):
            return edge_conv(cell, name, edge, h)
        return F.avg_pool2d(h, 3, 1, 1, count_include_pad=False)

    nodes = [x]
    for dst in range(1, NUM_NODES):
        nodes.append(sum(sum(weights[e, k] * op(name, e, nodes[src])
                             if active is None or active[e, k] else weights[e, k] for k, name in enumerate(OPS))
                         for e, (src, d) in enumerate(EDGES) if d == dst))
    return nodes[-1]


def straightforward_forward(net: NB201Supernet, x: torch.Tensor, weights: torch.Tensor,
                            active: torch.Tensor | None = None) -> torch.Tensor:
    x = net.stem(x)
    for layer in net.layers:
        x = straightforward_cell(layer, x, weights, active) if isinstance(layer, SearchCell) else layer(x)
    return net.classifier(net.head(x).mean(dim=(2, 3)))


@pytest.mark.parametrize("channels_last", [False, True])
def test_fast_forward_and_gradients_match_straightforward(channels_last):
    torch.manual_seed(0)
    net = NB201Supernet(channels=4, cells_per_stage=2).double()
    x = torch.randn(8, 3, 32, 32, dtype=torch.float64)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    labels = torch.randint(0, 10, (8,))
    results = []
    for forward in (lambda w: net(x, [w]), lambda w: straightforward_forward(net, x, w)):
        weights = F.softmax(net.alphas, dim=-1)
        loss = F.cross_entropy(forward(weights), labels)
        grads = torch.autograd.grad(loss, [net.alphas, *net.weight_parameters()])
        results.append((loss.detach(), grads))
    (loss_fast, grads_fast), (loss_ref, grads_ref) = results
    assert torch.allclose(loss_fast, loss_ref, atol=1e-10)
    for g_fast, g_ref in zip(grads_fast, grads_ref):
        assert torch.allclose(g_fast, g_ref, atol=1e-9, rtol=1e-7)


def test_sampled_forward_matches_the_reference_forward_gdas():
    """Active masks (GDAS): the forward value is the sampled ops' network, and each inactive op's weight gets the
    summed gradient of its edge's output, as the reference's ``w[k] * op(h) if k == sampled else w[k]``."""
    torch.manual_seed(0)
    net = NB201Supernet(channels=4, cells_per_stage=2).double()
    x = torch.randn(8, 3, 16, 16, dtype=torch.float64)
    labels = torch.randint(0, 10, (8,))
    active = F.one_hot(torch.tensor([0, 1, 2, 3, 4, 3]), 5).double()
    results = []
    for forward in (lambda w: net(x, [w], [active]), lambda w: straightforward_forward(net, x, w, active)):
        probs = F.softmax(net.alphas * 100, dim=-1)
        weights = active - probs.detach() + probs  # straight-through: one-hot in value
        loss = F.cross_entropy(forward(weights), labels)
        params = [net.alphas, *net.weight_parameters()]
        grads = torch.autograd.grad(loss, params, allow_unused=True)  # the reference leaves unsampled ops out
        results.append((loss.detach(), [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)]))
    (loss_fast, grads_fast), (loss_ref, grads_ref) = results
    one_path = torch.zeros_like(active)
    one_path[[0, 2, 5], OPS.index("skip_connect")] = 1  # not the sampled network: a different loss
    assert torch.allclose(loss_fast, loss_ref, atol=1e-10)
    assert not torch.allclose(loss_fast, F.cross_entropy(net(x, [one_path]), labels))
    assert torch.allclose(loss_fast, F.cross_entropy(net(x, [active]), labels), atol=1e-10)
    assert grads_fast[0].abs().min() > 0  # every architecture parameter has a gradient
    for g_fast, g_ref in zip(grads_fast, grads_ref):
        assert torch.allclose(g_fast, g_ref, atol=1e-9, rtol=1e-7)


def test_structure_matches_the_reference_search_network():
    net = NB201Supernet(channels=16, cells_per_stage=5)
    kinds = [type(layer).__name__ for layer in net.layers]
    assert kinds == (["SearchCell"] * 5 + ["ResidualReduction"] + ["SearchCell"] * 5 + ["ResidualReduction"]
                     + ["SearchCell"] * 5)
    assert net.alphas.shape == (6, 5) and net.alphas.abs().max() < 0.01  # 1e-3 * N(0, 1)
    # search cells: BN without affine parameters (the reference's search setting)
    cell_bns = [m for layer in net.layers if isinstance(layer, SearchCell) for m in layer.modules()
                if isinstance(m, torch.nn.BatchNorm2d)]
    assert cell_bns and all(not bn.affine and bn.track_running_stats for bn in cell_bns)
    # parameters: the reference has 1,692,826 weights incl. conv biases its cells carry before affine-free BN (a bias
    # right before BN without affine is cancelled exactly by the mean subtraction); ours omits them:
    # 6,720 = 5 cells x 6 edges x 2 convs x (16 + 32 + 64) biases.
    assert sum(p.numel() for p in net.weight_parameters()) == 1_692_826 - 6_720
    assert isinstance(net.layers[5], ResidualReduction)


def test_one_hot_weights_select_a_single_op_per_edge():
    torch.manual_seed(1)
    net = NB201Supernet(channels=4, cells_per_stage=1).double().eval()
    x = torch.randn(2, 4, 8, 8, dtype=torch.float64)
    cell = net.layers[0]
    chain = torch.zeros(6, 5, dtype=torch.float64)
    chain[:, OPS.index("none")] = 1
    for edge in (0, 2, 5):  # 1<-0, 2<-1, 3<-2 are skip connections: the cell is the identity
        chain[edge] = 0
        chain[edge, OPS.index("skip_connect")] = 1
    assert torch.allclose(cell(x, chain), x)
