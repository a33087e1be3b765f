"""The NAS-Bench-1shot1 DARTS supernet (Zela et al. 2020, Section 3; the reference ``optimizers/darts``).

Macro structure of NB101: a 3x3 conv-BN-ReLU stem with C channels, 3 stacks of ``cells_per_stage`` cells, a 2x2
max-pool (stride 2, padding 1) and doubled channels before the second and third stacks, then a 1x1 ReLU-conv-BN
post-processing back to the last width, global average pooling and a linear classifier.

A cell of n choice nodes: each node gets its own 1x1 conv-BN-ReLU projection of the cell input (NB101 projects
edges leaving the input); its input is the parent-weighted sum of [projected input, earlier nodes] (a plain sum
where the space leaves no choice); its output mixes conv3x3-bn-relu, conv1x1-bn-relu and maxpool3x3. The cell
output is the output-weighted concatenation of the node outputs plus the weighted projection of the cell input
to the concatenated width.

Architecture parameters, each 1e-3 * N(0, 1) and mixed by a softmax over its last dimension: the op mixture
(n x 3), the output's parent mixture (n + 1), and one parent mixture per node that has a choice.

Searcher features, as the nasbench-1shot1 reference's optimisers have them: a sampled forward (GDAS) passes
``active`` masks and an inactive op is left out, contributing nothing and getting no gradient (``MixedOpGDAS``
sums only the ops whose sampled weight is non-zero); ``partial_channels`` K (PC-DARTS) runs each node's ops on
the first 1/K of its input's channels, concatenates the rest and shuffles the channels in K groups (no edge
normalisation there: parents already have their own softmax mixtures).
"""
from __future__ import annotations

import torch
from torch import nn

from benchmarks.oneshot1.space import OneShot1Definition
from benchmarks.partial_channels import rejoin
from foundation.errors import UserError


def conv_bn_relu(c_in: int, c_out: int, kernel: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU())


class OneShot1Cell(nn.Module):
    def __init__(self, definition: OneShot1Definition, c_in: int, channels: int, partial_channels: int = 1) -> None:
        super().__init__()
        n = definition.num_nodes
        self.has_choice = definition.nodes_with_parent_choice()
        self.partial_channels = partial_channels
        part = channels // partial_channels
        self.projections = nn.ModuleList(conv_bn_relu(c_in, channels, 1) for _ in range(n))
        self.output_projection = conv_bn_relu(c_in, channels * n, 1)
        self.conv3 = nn.ModuleList(conv_bn_relu(part, part, 3) for _ in range(n))
        self.conv1 = nn.ModuleList(conv_bn_relu(part, part, 1) for _ in range(n))
        self.pool = nn.MaxPool2d(3, stride=1, padding=1)

    def forward(self, x: torch.Tensor, arch_weights: list[torch.Tensor]) -> torch.Tensor:
        op_weights, output_weights, *parent_weights = arch_weights
        parent_weights = iter(parent_weights)
        states: list[torch.Tensor] = []
        for node, projection in enumerate(self.projections):
            candidates = [projection(x), *states]
            if self.has_choice[node]:
                mix = next(parent_weights)
                h = sum(w * c for w, c in zip(mix, candidates))
            else:
                h = sum(candidates)
            w, part = op_weights[node], h.shape[1] // self.partial_channels
            mixed = w[0] * self.conv3[node](h[:, :part]) + w[1] * self.conv1[node](h[:, :part]) + w[2] * self.pool(
                h[:, :part])
            states.append(rejoin(mixed, h[:, part:], self.partial_channels))
        concatenated = torch.cat([w * s for w, s in zip(output_weights[1:], states)], dim=1)
        return output_weights[0] * self.output_projection(x) + concatenated


class OneShot1Supernet(nn.Module):
    op_choice_parameters = (0,)  # which of ``arch_parameters()`` choose ops (GDAS samples them hard, the rest soft)

    def __init__(self, definition: OneShot1Definition, channels: int = 16, cells_per_stage: int = 3,
                 num_classes: int = 10, partial_channels: int = 1) -> None:
        super().__init__()
        if channels % partial_channels:
            raise UserError(f"bad value partial_channels={partial_channels}: it must divide channels={channels}")
        n = definition.num_nodes
        self.stem = conv_bn_relu(3, channels, 3)
        self.downsample_before = {cells_per_stage, 2 * cells_per_stage}
        cells, c_in, c = [], channels, channels
        for index in range(3 * cells_per_stage):
            if index in self.downsample_before:
                c *= 2
            cells.append(OneShot1Cell(definition, c_in, c, partial_channels))
            c_in = c * n
        self.cells = nn.ModuleList(cells)
        self.downsample = nn.MaxPool2d(2, stride=2, padding=1)
        self.postprocess = nn.Sequential(nn.ReLU(), nn.Conv2d(c * n, c, 1, bias=False), nn.BatchNorm2d(c, affine=False))
        self.classifier = nn.Linear(c, num_classes)
        shapes = [(n, 3), (n + 1,)] + [(vertex,) for vertex, choice in enumerate(definition.nodes_with_parent_choice(),
                                                                                  start=1) if choice]
        self.alphas = nn.ParameterList(nn.Parameter(1e-3 * torch.randn(*shape)) for shape in shapes)

    def arch_parameters(self) -> list[nn.Parameter]:
        return list(self.alphas)

    def weight_parameters(self) -> list[nn.Parameter]:
        return [p for name, p in self.named_parameters() if not name.startswith("alphas.")]

    def forward(self, x: torch.Tensor, arch_weights: list[torch.Tensor],
                active: list[torch.Tensor] | None = None) -> torch.Tensor:
        if active is not None:  # inactive ops and parents: left out
            arch_weights = [weights * mask for weights, mask in zip(arch_weights, active)]
        x = self.stem(x)
        for index, cell in enumerate(self.cells):
            if index in self.downsample_before:
                x = self.downsample(x)
            x = cell(x, arch_weights)
        return self.classifier(self.postprocess(x).mean(dim=(2, 3)))
