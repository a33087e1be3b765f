"""``sdarts_rs``: SDARTS with random smoothing of the architecture weights in the weight step.

SDARTS-RS (Chen & Hsieh, "Stabilizing Differentiable Architecture Search via Perturbation-based Regularization",
ICML 2020, Section 3, random smoothing): the weight step minimises the training loss at a randomly perturbed
architecture, ``min_w E_{delta ~ U[-epsilon, epsilon]} L_train(w, A + delta)``, while the architecture step is
DARTS's, on the unperturbed weights. A is the architecture weight after the softmax: the perturbation is added to
the mixing weights, not to alpha (the first author, ``SmoothDARTS`` issue #1: "We perform perturbation after softmax
and then we use the perturbed weight directly"; "When updating alpha in the architecture, we set the parameter as
'alpha'", i.e. the softmax, unperturbed). In the reference (``xiangning-chen/SmoothDARTS``,
``nasbench201/train_search.py``: ``model.softmax_arch_parameters()`` then ``Random_alpha`` of
``attacker/perturb.py``, then the forward with ``updateType='weight'``, which mixes with the stored values without a
softmax), each weight step draws fresh uniform noise in [-epsilon, epsilon] for every entry, adds it to
softmax(alpha) and projects each row back onto the simplex with ``Network.clip`` (``nasbench201/model.py``): clamp
to [0, 1]; a row that is then all zero gets 1 at the argmax of the perturbed row; divide by the row sum. The
perturbed weights are constants of the weight step (no gradient reaches alpha), and alpha is restored afterwards
(here: never changed).

Epsilon (an interpretation; the reference code's schedule, which the paper's text does not spell out for NB201):
``nasbench201/train_search.py`` anneals it per epoch, ``epsilon = 0.03 + (epsilon_alpha - 0.03) * epoch / epochs``
with 0-based epochs and ``--epsilon_alpha`` 0.3 ("max epsilon for alpha"): 0.03 in the first epoch, rising linearly
towards 0.3 (0.03 + 0.27 * (epochs - 1) / epochs in the last); the author treats it as a knob (issue #7, on skip
connections still dominating: "You may increase the perturbation strength: --epsilon_alpha"). Options
``epsilon_min`` (0.03) and ``epsilon_max`` (0.3); set them equal for a constant epsilon.

NB201 settings of the reference search (the defaults of ``nasbench201/train_search.py``; the README gives no NB201
command, only ``--perturb_alpha=random`` / ``pgd_linf`` for the other spaces), where they differ from DARTS's here:
100 epochs, weight decay 3e-4, momentum without Nesterov; batch 64, SGD 0.025 -> 0.001 cosine, clip 5, Adam 3e-4 /
(0.5, 0.999) / 1e-3 are DARTS's already. Interpretations, documented: the learning rate is annealed per step as for
DARTS (the reference steps its cosine per epoch); the data split is NB201's; noise comes from each seed's own stream
(``per_seed``), drawn in the dtype of the weights.
"""
from __future__ import annotations

import torch
from pydantic import Field, model_validator

from benchmarks.data_stream import Batch
from foundation.options import OptionSet
from searchers.darts import Darts
from searchers.seeds import seed_cross_entropy

SDARTS_PAPER = {"epochs": 100, "w_weight_decay": 3e-4, "w_nesterov": False}  # nasbench201/train_search.py


def project_to_simplex_rows(weights: torch.Tensor) -> torch.Tensor:
    """The reference's ``Network.clip`` on every row (last dimension): clamp to [0, 1]; an all-zero row gets 1
    at the argmax of the row before clamping; divide by the row sum."""
    clamped = weights.clamp(0, 1)
    empty = clamped.sum(dim=-1, keepdim=True) == 0
    argmax = torch.zeros_like(weights).scatter_(-1, weights.argmax(dim=-1, keepdim=True), 1.0)
    clamped = torch.where(empty, argmax, clamped)
    return clamped / clamped.sum(dim=-1, keepdim=True)


class SdartsRs(Darts):
    name = "sdarts_rs"
    summary = "SDARTS-RS: weight step at softmax(alpha) + U[-eps, eps] noise (Chen & Hsieh, ICML 2020)"
    graph_capturable = True
    paper_overrides = SDARTS_PAPER

    class Options(OptionSet):
        epsilon_min: float = Field(0.03, ge=0, le=1, description="epsilon of the first epoch (train_search.py: 0.03)")
        epsilon_max: float = Field(0.3, ge=0, le=1, description="epsilon approached in the last epoch "
                                                                "(--epsilon_alpha 0.3)")

        @model_validator(mode="after")
        def _rises(self) -> "SdartsRs.Options":
            if self.epsilon_min > self.epsilon_max:
                raise ValueError(f"epsilon_min={self.epsilon_min} must be <= epsilon_max={self.epsilon_max}")
            return self

    def epsilon(self) -> float:
        """This epoch's radius: epsilon_min + (epsilon_max - epsilon_min) * (epoch - 1) / epochs."""
        return self.per_epoch_linear(self.options.epsilon_min, self.options.epsilon_max)

    def noise(self, like: torch.Tensor) -> torch.Tensor:
        """U[-epsilon, epsilon] noise shaped like the (K, ...) tensor ``like``, seed k's from seed k's stream."""
        uniform = self.per_seed(lambda seed, generator: torch.rand(like.shape[1:], generator=generator,
                                                                   dtype=like.dtype, device=like.device))
        return (2 * uniform - 1) * self.epsilon()

    def perturbed_weights(self) -> list[torch.Tensor]:
        """softmax(alpha) plus fresh noise, projected back row-wise (constants: no gradient to alpha)."""
        with torch.no_grad():
            return [project_to_simplex_rows(weights + self.noise(weights)) for weights in self.expected_arch_weights()]

    def weight_loss(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """The training loss at the perturbed mixing weights (the architecture step keeps DARTS's)."""
        logits = self.supernet(batch.images, self.perturbed_weights())
        return seed_cross_entropy(logits, batch.labels), logits

