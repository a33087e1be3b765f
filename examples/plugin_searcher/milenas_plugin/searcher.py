"""MiLeNAS (He, Ye, Shen & Annavaram, "MiLeNAS: Efficient Neural Architecture Search via Mixed-Level
Reformulation", CVPR 2020) as a dnas-harness plug-in: how it differs from DARTS, and nothing else.

The architecture descends a mixed-level objective, ``lambda_train * L_train + lambda_valid * L_val``, both at the
current weights (first order): the training loss of the weight-half batch joins the validation loss of the
architecture-half batch. Both coefficients default to 1 (``--lambda_train_regularizer`` and
``--lambda_valid_regularizer`` of the authors' search scripts, ``architect.step_v2``). Everything else (weight
step, optimisers, schedule, derivation) is DARTS's.
"""
from __future__ import annotations

import torch
from pydantic import Field

from searchers import Darts, OptionSet


class Milenas(Darts):
    name = "milenas"
    summary = "MiLeNAS: alphas descend the training plus the validation loss (He et al., CVPR 2020) [example plug-in]"

    class Options(OptionSet):
        lambda_train: float = Field(1.0, ge=0, le=1e6, description="weight of the training loss in the alpha step")
        lambda_valid: float = Field(1.0, ge=0, le=1e6, description="weight of the validation loss in the alpha step")

    def arch_gradient(self, weight_batch, arch_batch) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
        """Per seed (every tensor has the seed dimension first); the recorded loss is the validation loss."""
        valid_loss, logits = self.arch_loss(arch_batch)
        train_loss, _ = self.weight_loss(weight_batch)
        objective = self.options.lambda_valid * valid_loss.sum() + self.options.lambda_train * train_loss.sum()
        return list(torch.autograd.grad(objective, self.alphas)), valid_loss, logits
