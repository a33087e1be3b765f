"""The NB201 DARTS supernet (the search network of the NB201 reference, ``TinyNetworkDarts``).

Macro structure: 3x3 conv stem + BN; N search cells at C channels, a residual reduction block to 2C, N cells,
a reduction block to 4C, N cells; BN + ReLU, global average pooling, linear classifier. Search cells use
BN with ``affine=False`` (the reference's search setting); the stem and reduction blocks keep affine BN.

Each edge mixes the five ops with weights supplied by the searcher (softmax for DARTS, a Dirichlet sample for
DrNAS, a one-hot row for the discrete network). The forward pass computes the same function as the reference
with less work: ``none`` outputs zero and is left out of the sum, and each node's ReLU (shared by the 1x1 and
3x3 convolutions of all its outgoing edges) and average pool (parameter-free at equal channels) are computed
once per node rather than once per edge.

A sampled forward (GDAS) also passes ``active``, a 0/1 mask per weight: an inactive op adds its weight itself,
not weight x output, to the edge (the reference's ``forward_gdas`` computes only the sampled op and adds the
others' weights, which are zero in value, so that every architecture parameter keeps a gradient).

PC-DARTS features (Xu et al., ICLR 2020, Section 3.1-3.2; ``MixedOp`` and ``Cell`` of the reference): with
``partial_channels`` K > 1 each edge runs its ops on the first 1/K of its input's channels, concatenates the
untouched rest and shuffles the channels in K groups; with ``edge_normalisation`` the supernet holds one more
architecture parameter, beta (one per edge, 1e-3 N(0, 1)), and ``arch_weights`` carries a second tensor, each
edge's scale (``normalised_edges``: a softmax over the edges entering the same node), multiplying the edge's
whole output.
"""
from __future__ import annotations

import math
from functools import lru_cache

import torch
from torch import nn
from torch.nn import functional as F

from benchmarks.nb201.space import EDGES, NUM_NODES, OPS
from benchmarks.partial_channels import rejoin
from foundation.errors import UserError

SKIP, CONV1, CONV3, POOL = (OPS.index(op) for op in ("skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"))


def conv_bn(c_in: int, c_out: int, kernel: int, stride: int, affine: bool, track: bool) -> nn.Sequential:
    """Conv + BN; the reference's ReLU in front is applied by the caller (shared per node)."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, bias=False),
                         nn.BatchNorm2d(c_out, affine=affine, track_running_stats=track))


class ResidualReduction(nn.Module):
    """NB201's ResNet basic block with stride 2: relu-conv-bn x2 plus avg-pool + 1x1 conv shortcut."""

    def __init__(self, c_in: int, c_out: int, track: bool) -> None:
        super().__init__()
        self.conv_a = conv_bn(c_in, c_out, 3, 2, affine=True, track=track)
        self.conv_b = conv_bn(c_out, c_out, 3, 1, affine=True, track=track)
        self.shortcut = nn.Sequential(nn.AvgPool2d(2, 2), nn.Conv2d(c_in, c_out, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.conv_b(torch.relu(self.conv_a(torch.relu(x))))


# The edges leaving each node (in EDGES order) and entering it (consecutive in EDGES order: a slice).
OUT_EDGES = tuple(tuple(e for e, (src, _) in enumerate(EDGES) if src == node) for node in range(NUM_NODES))
IN_EDGES = tuple(tuple(e for e, (_, dst) in enumerate(EDGES) if dst == node) for node in range(NUM_NODES))
assert all(list(edges) == list(range(edges[0], edges[-1] + 1)) for edges in IN_EDGES[1:])


class ScaledBatchNorm(nn.BatchNorm2d):
    """BatchNorm without affine parameters whose output is multiplied per channel by ``scale`` (an op's mixing
    weight): ``F.batch_norm``'s weight argument, so the product costs no pass of its own."""

    def __init__(self, channels: int, track: bool) -> None:
        super().__init__(channels, affine=False, track_running_stats=track)

    def forward(self, x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        if self.training and self.track_running_stats:
            self.num_batches_tracked.add_(1)
        return F.batch_norm(x, self.running_mean, self.running_var, scale, None,
                            self.training or not self.track_running_stats, self.momentum, self.eps)


@lru_cache(maxsize=None)
def _window_sizes(height: int, width: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """The number of in-image positions of each 3x3 window (4 at a corner, 6 on a side, 9 inside)."""
    ones = torch.ones(1, 1, height + 2, width + 2, dtype=dtype, device=device)
    ones[..., 0, :] = ones[..., -1, :] = ones[..., :, 0] = ones[..., :, -1] = 0
    return F.avg_pool2d(ones, 3, 1, 0, divisor_override=1)


def _window_sums(x: torch.Tensor) -> torch.Tensor:
    """Each 3x3 window's sum (zero padding): three shifted columns, then three shifted rows."""
    padded = F.pad(x, (1, 1, 1, 1))
    rows = padded[..., :-2] + padded[..., 1:-1] + padded[..., 2:]
    return rows[..., :-2, :] + rows[..., 1:-1, :] + rows[..., 2:, :]


class _WindowMean(torch.autograd.Function):
    """The windows' means; the gradient is again a mean of windows (the zero-padded 3x3 sum is its own adjoint),
    so the backward costs a forward instead of six slice gradients, each a zero-filled padded copy."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x: torch.Tensor, sizes: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return _window_sums(x) / sizes

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:  # type: ignore[override]
        ctx.save_for_backward(inputs[1])

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        (sizes,) = ctx.saved_tensors
        return _window_sums(grad / sizes), None


def mean_pool3x3(x: torch.Tensor) -> torch.Tensor:
    """NB201's ``avg_pool_3x3``: stride 1, padding 1, the mean over each window's in-image positions
    (``count_include_pad=False``). A channels-last input takes torch's pooling kernel (vectorised over the
    channels); any other sums each window as three shifted columns then three shifted rows and divides by the
    window's size, where torch's kernel for that layout works position by position. Same maths, the additions
    in another order."""
    if x.shape[-3] > 1 and x.stride(-3) == 1:  # channels last
        return F.avg_pool2d(x, 3, 1, 1, count_include_pad=False)
    return _WindowMean.apply(x, _window_sizes(x.shape[-2], x.shape[-1], x.dtype, x.device))


class SearchCell(nn.Module):
    """Four nodes; node j is the weighted sum over i < j of the mixed op on edge (i, j).

    The convolutions of the edges leaving a node share their input (the node's ReLU), so they run as one: node
    i's 1x1 kernels of all its outgoing edges are stacked along the output channels (``conv1[i]``, edges in
    ``EDGES`` order), likewise its 3x3 kernels (``conv3[i]``), each followed by one BatchNorm (per channel, so
    stacking changes nothing) scaled by the ops' mixing weights. Every edge's kernels are drawn as the
    reference's per-edge convolutions draw them (Kaiming uniform, all 1x1 kernels edge by edge, then all 3x3)."""

    def __init__(self, channels: int, track: bool, partial_channels: int = 1) -> None:
        super().__init__()
        self.partial_channels = partial_channels
        part = channels // partial_channels
        leaving = [len(OUT_EDGES[node]) * part for node in range(NUM_NODES - 1)]
        self.conv1 = nn.ParameterList(nn.Parameter(torch.empty(n, part, 1, 1)) for n in leaving)
        self.conv3 = nn.ParameterList(nn.Parameter(torch.empty(n, part, 3, 3)) for n in leaving)
        self.bn1 = nn.ModuleList(ScaledBatchNorm(n, track) for n in leaving)
        self.bn3 = nn.ModuleList(ScaledBatchNorm(n, track) for n in leaving)
        with torch.no_grad():
            for kernels in (self.conv1, self.conv3):
                for e in range(len(EDGES)):
                    nn.init.kaiming_uniform_(self.edge_kernel(kernels, e), a=math.sqrt(5))  # nn.Conv2d's init

    def edge_kernel(self, kernels: nn.ParameterList, edge: int) -> torch.Tensor:
        """Edge ``edge``'s slice of its source node's stacked kernels (``conv1`` or ``conv3``)."""
        src = EDGES[edge][0]
        part = kernels[src].shape[-3]
        position = OUT_EDGES[src].index(edge)
        return kernels[src][position * part:(position + 1) * part]

    def forward(self, x: torch.Tensor, weights: torch.Tensor, offsets: torch.Tensor | None = None,
                edge_scales: torch.Tensor | None = None) -> torch.Tensor:
        part = x.shape[1] // self.partial_channels
        nodes, pools, convs = [x], [], {}
        for dst in range(1, NUM_NODES):
            newest = dst - 1  # its outgoing edges' convolutions, now that it is complete
            mixed_in = nodes[newest][:, :part]
            pools.append(mean_pool3x3(mixed_in))
            relu, leaving = torch.relu(mixed_in), OUT_EDGES[newest]
            # stacked from single entries: an index list would be made into a tensor on the host and copied to
            # the device, which a CUDA graph's capture cannot do
            scale1, scale3 = (torch.stack([weights[e, op] for e in leaving]).repeat_interleave(part)
                              for op in (CONV1, CONV3))
            both = (self.bn1[newest](F.conv2d(relu, self.conv1[newest]), scale1)
                    + self.bn3[newest](F.conv2d(relu, self.conv3[newest], padding=1), scale3))
            convs.update(zip(leaving, both.unflatten(1, (len(leaving), part)).unbind(1)))
            total = None
            for e in IN_EDGES[dst]:
                src, w = EDGES[e][0], weights[e]
                out = convs[e].addcmul(w[SKIP], nodes[src][:, :part]).addcmul(w[POOL], pools[src])
                if offsets is not None:
                    out = out + offsets[e]
                out = rejoin(out, nodes[src][:, part:], self.partial_channels)
                if edge_scales is not None:
                    out = edge_scales[e] * out
                total = out if total is None else total + out
            nodes.append(total)
        return nodes[-1]


class NB201Supernet(nn.Module):
    op_choice_parameters = (0,)  # which of ``arch_parameters()`` choose ops (GDAS samples them hard)

    def __init__(self, channels: int = 16, cells_per_stage: int = 5, num_classes: int = 10,
                 track_running_stats: bool = True, partial_channels: int = 1, edge_normalisation: bool = False) -> None:
        super().__init__()
        if channels % partial_channels:
            raise UserError(f"bad value partial_channels={partial_channels}: it must divide channels={channels}")
        self.stem = nn.Sequential(nn.Conv2d(3, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels))
        layers: list[nn.Module] = []
        c = channels
        for stage in range(3):
            if stage > 0:
                layers.append(ResidualReduction(c, 2 * c, track_running_stats))
                c *= 2
            layers.extend(SearchCell(c, track_running_stats, partial_channels) for _ in range(cells_per_stage))
        self.layers = nn.ModuleList(layers)
        self.head = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU())
        self.classifier = nn.Linear(c, num_classes)
        # The reference initialises the architecture parameters as 1e-3 * N(0, 1), one row per edge.
        self.alphas = nn.Parameter(1e-3 * torch.randn(len(EDGES), len(OPS)))
        self.betas = nn.Parameter(1e-3 * torch.randn(len(EDGES))) if edge_normalisation else None

    def arch_parameters(self) -> list[nn.Parameter]:
        return [self.alphas] if self.betas is None else [self.alphas, self.betas]

    def weight_parameters(self) -> list[nn.Parameter]:
        return [p for name, p in self.named_parameters() if name not in ("alphas", "betas")]

    @staticmethod
    def normalised_edges(betas: torch.Tensor) -> torch.Tensor:
        """Edge scales: a softmax of beta over the edges entering each node (any leading dimensions)."""
        return torch.cat([torch.softmax(betas[..., entering[0]:entering[-1] + 1], dim=-1)  # slices: no host index
                          for entering in IN_EDGES[1:]], dim=-1)

    @staticmethod
    def with_identity(arch_weights: list[torch.Tensor], coefficient: float) -> list[torch.Tensor]:
        """Mixing weights whose edges also pass ``coefficient * x`` (DARTS-'s auxiliary skip, outside the
        softmax): every NB201 search edge's ``skip_connect`` is the identity (stride 1, equal channels), so this is
        ``coefficient`` added to its weight. Works on any leading (seed) dimensions."""
        edge_weights, *edge_scales = arch_weights
        shifted = edge_weights.clone()  # on the device: no index tensor made on the host (capturable)
        shifted[..., SKIP] += coefficient
        return [shifted, *edge_scales]

    def per_cell_weights(self) -> int:
        """The number of search cells L: ``forward`` also takes the op-mixing weights with a cell dimension,
        (L, edges, ops), search cell l mixing with row l (Lambda-DARTS's per-cell copies)."""
        return sum(isinstance(layer, SearchCell) for layer in self.layers)

    def forward(self, x: torch.Tensor, arch_weights: list[torch.Tensor],
                active: list[torch.Tensor] | None = None) -> torch.Tensor:
        edge_weights, *edge_scales = arch_weights  # edge scales: with edge normalisation
        edge_scales = edge_scales[0] if edge_scales else None
        offsets = None
        if active is not None:  # inactive ops: their weight, summed per edge, instead of weight x output
            mask = active[0]
            offsets, edge_weights = ((1 - mask) * edge_weights).sum(dim=-1), mask * edge_weights
        x = self.stem(x)
        cells = iter(edge_weights if edge_weights.dim() == 3 else [edge_weights] * self.per_cell_weights())
        for layer in self.layers:
            x = layer(x, next(cells), offsets, edge_scales) if isinstance(layer, SearchCell) else layer(x)
        x = self.head(x).mean(dim=(2, 3))
        return self.classifier(x)
