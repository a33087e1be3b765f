"""``oles``: DARTS with operation-level early stopping by gradient matching.

OLES (Jiang, Ji, Zhu, Yuan & Huang, "Operation-Level Early Stopping for Robustifying Differentiable NAS",
NeurIPS 2023, Section 3, Algorithm 1; reference ``PasaLab/oles``, ``train_search.py``: ``preserve_grads``,
``check_grads_cosine``, ``freeze``): parametric operations overfit the training data while alpha is fitted on the
validation data; so each operation's parameters stop training ("freeze") once its training and validation
gradients no longer match. The gradient-matching score of an operation o is the cosine similarity of the
gradients of its parameters, ``GM(g_train, g_val) = sum_m COS(g_train^m, g_val^m) / M`` over the M last
iterations (Section 3), and o is frozen, for the rest of the search, when its score falls below the threshold.

Schedule, as the reference's loop: step t = DARTS's architecture step (whose backward also gives the validation
gradient of every operation, as DARTS's ``loss.backward()`` does: no extra pass in the reference), then each
operation's cosine between that validation gradient and its training gradient of step t - 1 (``pre_grads``,
after clipping), then the weight step. The cosines of an operation are averaged over windows of M steps
(consecutive, never reset at epochs; the first step has no training gradient yet and is not counted); at the end
of a window an operation whose mean is below the threshold is frozen. A frozen operation's parameters get no
gradient (``requires_grad_(False)``: they leave the gradient-norm clipping too) and no update; it is not scored
again. Parameter-free operations (skip, pooling, none) have no gradient and are never frozen.

Hyper-parameters: ``threshold`` = 0.4 and ``window`` = M = 20 iterations (``train_search.py``: ``--patience``
0.4, ``--count`` 20, the DARTS space's search; the NB201 value of the paper's experiments was not found in
the code nor read in the paper: an interpretation, to be checked against the paper's NB201 section). The
search otherwise is DARTS's NB201 protocol (first order, as the reference's default).

Interpretations, each an option:
- ``cosine``: the paper's COS is that of the flattened gradients (``flattened``, default); the code takes
  ``torch.cosine_similarity(g, pre, dim=0).mean()`` per parameter tensor, the mean of cosines over the output
  channels' columns (``columns``).
- ``validation_gradient``: the paper's g_val (``validation``, default); in the code the validation backward adds
  to the gradients the weight step left (zeroed only before the next weight step), so its "validation
  gradient" is g_train(t - 1) + g_val(t) (``accumulated``).
The reference counts 21 cosines in its first window and divides by 20 (``m.count == 20`` after the update);
here every window holds M cosines.

Operations are NB201's parametric ones: each edge's 1x1 and 3x3 convolutions of every search cell (their BN has
no parameters in search). They are found by parameter name in the NB201 supernet (stacked per source node:
``conv1.<node>`` / ``conv3.<node>``, the edges' kernels along the output channels; or one tensor per edge,
``conv1.<edge>.0.weight``); a space without such parameters is refused. A supernet feature naming each
operation's parameters (``op_parameters``) would replace this look-up by name (see the report).
"""
from __future__ import annotations

import re
from typing import Any, Literal

import torch
from pydantic import Field

from benchmarks.data_stream import Batch
from foundation.errors import UserError
from foundation.options import OptionSet
from searchers.context import EpochStats
from searchers.darts import Darts
from searchers.seeds import clip_grad_norm_per_seed

OP_PARAMETER = re.compile(r"layers\.\d+\.conv[13]\.\d+(\.0\.weight)?$")


def operation_cosines(train: list[torch.Tensor], val: list[torch.Tensor], groups: list[int],
                      how: str) -> torch.Tensor:
    """(K, operations): each seed's cosine between the training and validation gradients of every operation;
    tensor i holds ``groups[i]`` operations along its dimension 1 (after the seed dimension)."""
    cosines = []
    for g_train, g_val, count in zip(train, val, groups):
        a, b = (g.reshape(g.shape[0], count, g.shape[1] // count, -1) for g in (g_train, g_val))  # K, ops, out, rest
        if how == "columns":  # cosine over the output channels, per input position, then their mean
            cos = (a * b).sum(2) / (a.norm(dim=2) * b.norm(dim=2)).clamp_min(1e-8)
            cosines.append(cos.mean(-1))
        else:
            a, b = a.flatten(2), b.flatten(2)
            cosines.append((a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1)).clamp_min(1e-8))
    return torch.cat(cosines, dim=1)


class Oles(Darts):
    name = "oles"
    summary = "OLES: freeze an operation's weights when its train/validation gradients stop matching (NeurIPS 2023)"

    class Options(OptionSet):
        threshold: float = Field(0.4, ge=-1, le=1, description="freeze below this mean cosine (--patience 0.4)")
        window: int = Field(20, ge=1, le=1_000_000, description="M, iterations per score (--count 20)")
        cosine: Literal["flattened", "columns"] = Field("flattened", description="COS of the flattened gradients "
                                                                                 "(paper) or per column (code)")
        validation_gradient: Literal["validation", "accumulated"] = Field(
            "validation", description="g_val (paper) or g_val plus the last training gradient (code)")

    graph_capturable = False  # host-side windows and freezing
    checkpointed = ("frozen", "scores", "counted", "last_train")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        names = {id(p): name for name, p in self.supernet.named_parameters()}
        self.op_index = [i for i, w in enumerate(self.weights) if OP_PARAMETER.search(names[id(w)])]
        if not self.op_index:
            raise UserError(f"{self.name} needs a supernet whose operations' parameters it can name (NB201's)")
        self.groups = [self.weights[i].shape[1] // self.weights[i].shape[2] for i in self.op_index]
        operations = sum(self.groups)
        self.frozen = torch.zeros(self.seeds, operations, dtype=torch.bool, device=self.device)
        self.scores = torch.zeros(self.seeds, operations, dtype=torch.float64, device=self.device)
        self.counted = 0
        self.last_train: list[torch.Tensor] | None = None  # each operation tensor's clipped training gradient
        self.val_grads: list[torch.Tensor] = []

    # --- hooks ----------------------------------------------------------------------------------------------
    def arch_gradient(self, weight_batch: Batch,
                      arch_batch: Batch) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
        """DARTS's architecture gradient; the same backward gives the operations' validation gradients."""
        loss, logits = self.arch_loss(arch_batch)
        ops = [self.weights[i] for i in self.op_index]
        grads = torch.autograd.grad(loss.sum(), [*self.alphas, *ops])
        self.val_grads = [g.detach() for g in grads[len(self.alphas):]]
        return list(grads[:len(self.alphas)]), loss, logits

    def weight_step(self, batch: Batch, stats: EpochStats) -> None:
        """Score the operations (the last weight step's training gradients against the last architecture step's
        validation gradients), then the weight step with the frozen operations held."""
        if self.last_train is not None:
            self.score()
        self.frozen_weight_step(batch, stats)

    # --- helpers --------------------------------------------------------------------------------------------
    def masks(self) -> list[torch.Tensor]:
        """Per operation tensor, (K, groups, 1, ...): True where the operation is frozen."""
        masks, start = [], 0
        for i, count in zip(self.op_index, self.groups):
            shape = self.weights[i].shape
            masks.append(self.frozen[:, start:start + count].reshape(shape[0], count, *[1] * (len(shape) - 1)))
            start += count
        return masks

    def score(self) -> None:
        """Add this step's cosines to the window; at its end, freeze the operations whose mean is below the
        threshold (a frozen operation is not scored: its cosine counts as nothing)."""
        val = self.val_grads
        if self.options.validation_gradient == "accumulated":
            val = [v + t for v, t in zip(val, self.last_train)]
        cosines = operation_cosines(self.last_train, val, self.groups, self.options.cosine)
        self.scores += torch.where(self.frozen, 0.0, cosines.double())
        self.counted += 1
        if self.counted == self.options.window:
            self.frozen |= self.scores / self.options.window < self.options.threshold
            self.scores.zero_()
            self.counted = 0

    def frozen_weight_step(self, batch: Batch, stats: EpochStats) -> None:
        """DARTS's weight step where frozen operations get no gradient (nor a place in the clipping norm) and
        keep their values (no momentum or decay moves them)."""
        self.w_opt.zero_grad(set_to_none=True)
        loss, logits = self.weight_loss(batch)
        loss.sum().backward(inputs=self.weights)
        masks = self.masks() if bool(self.frozen.any()) else []
        ops = [self.weights[i] for i in self.op_index]
        kept = []
        for w, mask in zip(ops, masks):
            grouped = w.grad.unflatten(1, (mask.shape[1], -1))
            grouped.masked_fill_(mask, 0.0)  # a view: zeroes the frozen operations' gradients in place
            kept.append(w.detach().clone())
        clip_grad_norm_per_seed(self.weights, self.optim.grad_clip)
        self.last_train = [w.grad.detach().clone() for w in ops]
        self.w_opt.step()
        with torch.no_grad():
            for w, mask, before in zip(ops, masks, kept):
                w.unflatten(1, (mask.shape[1], -1)).copy_(
                    torch.where(mask, before.unflatten(1, (mask.shape[1], -1)), w.unflatten(1, (mask.shape[1], -1))))
        stats.add(loss, logits, batch.labels)
