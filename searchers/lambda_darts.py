"""``lambda_darts``: the weight step also aligns the gradients of the cells' mixing weights.

Lambda-DARTS (Movahedi, Adabinejad, Imani, Keshavarz, Dehghani, Shakery & Araabi, "Lambda-DARTS: Mitigating
Performance Collapse by Harmonizing Operation Selection among Cells", ICLR 2023; reference
``dr-faustus/Lambda-DARTS``, NB201 code ``NAS-Bench201/exps/algos/DARTS-V1.py`` and
``lib/models/cell_searchs/search_model_darts_v1.py``): every search cell l uses its own copy W_l of the mixing
weights softmax(alpha), and g_l = dL_train/dW_l is that cell's gradient. The regulariser is the cells' gradient
alignment, ``Lambda = 2 / (L (L - 1)) * sum_{i<j} cos(g_i, g_j)`` (``get_corr``), maximised by the weight step:
the weights descend ``L_train - lambda_t * Lambda``. Its weight gradient is a central difference along the
direction ``p_l = 2 / (L (L - 1)) * (I - u_l u_l^T) sum_m u_m / ||g_l||`` (u_l = g_l / ||g_l||, the derivative of
Lambda in g_l; ``get_perturbations``), scaled to ``epsilon = epsilon_0 / ||p||``: ``grad_w Lambda ~ (grad_w
L(W + eps p) - grad_w L(W - eps p)) / (2 eps)`` (forward and backward perturbations, ``get_full_grads``, which adds
``lambda_t * (grad_w L(W - eps p) - grad_w L(W + eps p)) / (2 eps)`` to the weights' gradient before clipping).

Hyper-parameters, from the reference's NB201 search script for DARTS (``scripts-search/algos/DARTS-V1.sh``, seeds
0-7): ``lambda_`` = 0.25 (the script's; the ``--lambda_`` default of ``DARTS-V1.py`` and the PC-DARTS script's is
0.125), annealed linearly, ``lambda_t = lambda_ * epoch / (epochs - 1)`` with 0-based epochs (``network.lambda_
= args.lambda_ * epoch / (total_epoch - 1)``); ``epsilon_0`` = 1e-4 (``--epsilon_0``); and, where the script
differs from DARTS's NB201 protocol (``paper_overrides``), 100 epochs and an architecture learning rate of 1e-4.
The architecture step is DARTS's (no regulariser). Interpretation: the harness's step order (architecture, then
weights) is kept; the reference's NB201 loop updates the weights first.

It needs the supernet feature ``per_cell_weights`` (``benchmarks.supernet``): the number L of search cells, and a
forward that takes the op-mixing weights with a cell dimension, (K, L, edges, ops), search cell l mixing with row l.
"""
from __future__ import annotations

from typing import Any

import torch
from pydantic import Field

from benchmarks.data_stream import Batch
from foundation.options import OptionSet
from searchers.context import EpochStats
from searchers.darts import Darts
from searchers.seeds import assign_gradients, clip_grad_norm_per_seed, per_seed, seed_cross_entropy


def layer_alignment(grads: torch.Tensor) -> torch.Tensor:
    """Lambda (K,): the mean cosine over pairs of cells of their gradients, ``grads`` (K, L, ...)."""
    units = grads.flatten(2) / grads.flatten(2).norm(dim=-1, keepdim=True)
    cells = grads.shape[1]
    gram = units @ units.transpose(1, 2)
    return (gram.sum(dim=(1, 2)) - gram.diagonal(dim1=1, dim2=2).sum(-1)) / (cells * (cells - 1))


def alignment_perturbations(grads: torch.Tensor, epsilon_0: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The perturbations ``epsilon * p`` (K, L, ...) of the cells' mixing weights and epsilon (K,): p_l the
    derivative of Lambda in g_l, epsilon = epsilon_0 / ||p|| per seed."""
    flat = grads.flatten(2)
    norms = flat.norm(dim=-1, keepdim=True)
    units = flat / norms
    total = units.sum(dim=1, keepdim=True)
    cells = grads.shape[1]
    projected = total - units * (units * total).sum(-1, keepdim=True)  # (I - u u^T) sum_m u_m
    directions = 2.0 / (cells * (cells - 1)) * projected / norms
    epsilon = epsilon_0 / directions.flatten(1).norm(dim=-1)
    return (per_seed(epsilon, directions) * directions).reshape(grads.shape), epsilon


class LambdaDarts(Darts):
    name = "lambda_darts"
    summary = "Lambda-DARTS: align the cells' mixing-weight gradients in the weight step (Movahedi et al., ICLR 2023)"
    graph_capturable = True
    supernet_needs = ("per_cell_weights",)
    paper_overrides = {"epochs": 100, "a_lr": 1e-4}  # DARTS-V1.sh of the reference's NB201 searches

    class Options(OptionSet):
        lambda_: float = Field(0.25, ge=0, le=1e6, description="regularisation strength, reached in the last "
                                                                "epoch (DARTS-V1.sh: --lambda_ 0.25)")
        epsilon_0: float = Field(1e-4, gt=0, le=1.0, description="finite-difference radius (--epsilon_0 1e-4)")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cells = self.supernet.feature("per_cell_weights", "lambda_darts")()
        self.strength = 0.0

    def begin_epoch(self, epoch: int) -> None:
        super().begin_epoch(epoch)
        self.strength = self.options.lambda_ * (epoch - 1) / max(self.optim.epochs - 1, 1)

    def weight_step(self, batch: Batch, stats: EpochStats) -> None:
        mixing, *rest = self.arch_weights()
        per_cell = mixing.detach()[:, None].repeat(1, self.cells, *[1] * (mixing.dim() - 1)).requires_grad_()
        self.w_opt.zero_grad(set_to_none=True)
        logits = self.supernet(batch.images, [per_cell, *rest])
        loss = seed_cross_entropy(logits, batch.labels)
        *weight_grads, cell_grads = torch.autograd.grad(loss.sum(), [*self.weights, per_cell])
        if self.strength:
            shift, epsilon = alignment_perturbations(cell_grads, self.options.epsilon_0)
            sides = []
            for sign in (-1.0, 1.0):  # the reference's forward (W - eps p) and backward (W + eps p) passes
                shifted = seed_cross_entropy(self.supernet(batch.images, [per_cell + sign * shift, *rest]),
                                             batch.labels)
                sides.append(torch.autograd.grad(shifted.sum(), self.weights))
            weight_grads = [g + self.strength * (f - b) / (2 * per_seed(epsilon, g).to(g.dtype))
                            for g, f, b in zip(weight_grads, *sides)]
        assign_gradients(self.weights, weight_grads)
        clip_grad_norm_per_seed(self.weights, self.optim.grad_clip)
        self.w_opt.step()
        stats.add(loss, logits, batch.labels)
