"""``sdarts_adv``: SDARTS with an adversarial (PGD) perturbation of the architecture weights in the weight step.

SDARTS-ADV (Chen & Hsieh, "Stabilizing Differentiable Architecture Search via Perturbation-based Regularization",
ICML 2020, Section 3, adversarial attack): the weight step minimises the training loss at the worst architecture
within an L-infinity ball around the current one, ``min_w max_{||delta||_inf <= epsilon} L_train(w, A + delta)``,
the inner maximisation approximated by projected gradient ascent (PGD); the architecture step is DARTS's. As for
``sdarts_rs`` (whose epsilon schedule, NB201 settings and simplex projection this searcher shares), A is the mixing
weight after the softmax.

The attack, as ``Linf_PGD_alpha`` of the reference (``xiangning-chen/SmoothDARTS``, ``attacker/perturb.py``, called
from ``nasbench201/train_search.py`` with its defaults), on the weight step's own batch: a random start ``A +
U[-epsilon, epsilon]`` projected onto the simplex (``random_start=True``); then ``steps`` = 7 ascent steps of size
``2 * epsilon / steps`` along the sign of the loss's gradient w.r.t. the mixing weights (``Linf_SGD``, an SGD whose
update is ``lr * sign(grad)``, run on the negated loss), each followed by the projection onto the epsilon ball
around A (``clamp_(-epsilon, epsilon)`` of the difference) and onto the simplex (``Network.clip``). If the loss at
the final perturbation is below the loss at A, the attack is dropped and A is used (``if loss_before > loss_after``:
restore), per seed here. The weights are then trained at the perturbation found, which is a constant of the weight
step (no gradient to alpha).

Interpretation, an option (``attack_mode``): the reference runs the attack's forward passes with the supernet in
evaluation mode (``model.eval()`` in ``Linf_PGD_alpha``), so that BatchNorm normalises by its running statistics
(its NB201 search cells track them) and the attack does not update them; default ``eval`` follows it, ``train``
attacks the network the weight step then trains (batch statistics, running averages updated by every pass).
"""
from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from benchmarks.data_stream import Batch
from searchers.sdarts_rs import SdartsRs, project_to_simplex_rows
from searchers.seeds import per_seed, seed_cross_entropy

AttackMode = Literal["eval", "train"]


class SdartsAdv(SdartsRs):
    name = "sdarts_adv"
    summary = "SDARTS-ADV: weight step at a 7-step PGD perturbation of softmax(alpha) (Chen & Hsieh, ICML 2020)"
    graph_capturable = True

    class Options(SdartsRs.Options):
        steps: int = Field(7, ge=1, le=100, description="PGD steps (Linf_PGD_alpha: steps=7), step size 2 eps / steps")
        random_start: bool = Field(True, description="start from a uniform perturbation (random_start=True)")
        attack_mode: AttackMode = Field("eval", description="supernet mode during the attack (reference: eval)")

    def weight_loss(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """The training loss at the PGD perturbation of the mixing weights (the architecture step keeps DARTS's)."""
        logits = self.supernet(batch.images, self.adversarial_weights(batch))
        return seed_cross_entropy(logits, batch.labels), logits

    def adversarial_weights(self, batch: Batch) -> list[torch.Tensor]:
        epsilon, steps = self.epsilon(), self.options.steps
        training = self.supernet.training
        self.supernet.train(self.options.attack_mode == "train")

        def loss(weights: list[torch.Tensor]) -> torch.Tensor:
            return seed_cross_entropy(self.supernet(batch.images, weights), batch.labels)

        try:
            with torch.no_grad():
                clean = [weights.detach() for weights in self.expected_arch_weights()]
                loss_before = loss(clean)
                attacked = [project_to_simplex_rows(weights + self.noise(weights)) if self.options.random_start
                            else weights.clone() for weights in clean]
            for _ in range(steps):
                attacked = [weights.requires_grad_() for weights in attacked]
                grads = torch.autograd.grad(loss(attacked).sum(), attacked)
                with torch.no_grad():
                    attacked = [project_to_simplex_rows(base + (weights + 2 * epsilon / steps * grad.sign() - base)
                                                        .clamp(-epsilon, epsilon))
                                for base, weights, grad in zip(clean, attacked, grads)]
            with torch.no_grad():
                dropped = loss_before > loss(attacked)  # (K,): the attack lowered this seed's loss
                return [torch.where(per_seed(dropped, base), base, weights) for base, weights in zip(clean, attacked)]
        finally:
            self.supernet.train(training)
