"""Fair DARTS (Chu et al., "Fair DARTS: Eliminating Unfair Advantages in Differentiable Architecture Search",
ECCV 2020; reference: the authors' ``FairDARTS`` code): how it differs from DARTS, and nothing else.

1. Ops cooperate instead of competing: each op's mixing weight is an independent sigmoid of its alpha, not a
   softmax over the edge, so one op's weight no longer has to fall for another's to rise (the paper's remedy for
   the "unfair advantage" of skip connections).
2. The architecture loss adds the zero-one loss, ``-w * mean((sigmoid(alpha) - 0.5) ** 2)``, which pushes every
   weight towards 0 or 1 so that the derived cell matches the supernet (the paper's zero-one loss, L_{0-1} =
   -1/N sum (sigma(alpha_i) - 0.5)^2); ``w = 10`` is the default of the authors' search script
   (``aux_loss_weight``, L2 form).

The genotype is the argmax per edge of the sigmoid weights, as for DARTS (the sigmoid is monotone), so the
search space's own derivation applies unchanged. Everything else (optimisers, schedule, data) is DARTS's.

Interpretations (the authors searched only the DARTS space): their derivation is a threshold on the sigmoids
(README: "we select architecture by barring with threshold sigma, and |edge| <= 2 per node"), but an NB201 edge
holds exactly one op, so the argmax is ours; and their search command's ``--learning_rate 0.005 --batch_size 128``
belong to that space, so the NB201 protocol stays DARTS's. Because the sigmoids are independent, the zero-one loss
can drive two ops of one edge to near 1 together; the argmax between them is then a near-tie, and the report's
decisiveness (margins of the weights normalised per edge) says so.
"""
from __future__ import annotations

import torch
from pydantic import Field

from foundation.options import OptionSet
from searchers.darts import Darts
from searchers.seeds import seed_cross_entropy


class FairDarts(Darts):
    name = "fair_darts"
    summary = "Fair DARTS: sigmoid op weights and a zero-one loss (Chu et al., ECCV 2020)"
    graph_capturable = True

    class Options(OptionSet):
        zero_one_weight: float = Field(10.0, ge=0, le=1e6, description="w_{0-1}, weight of the zero-one loss")

    def expected_arch_weights(self) -> list[torch.Tensor]:
        return [torch.sigmoid(alpha) for alpha in self.alphas]

    def arch_weights(self) -> list[torch.Tensor]:
        return self.expected_arch_weights()

    def arch_loss(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Per seed (every tensor has the seed dimension first): cross-entropy plus the weighted zero-one loss."""
        logits = self.supernet(batch.images, self.arch_weights())
        weights = torch.cat([w.flatten(1) for w in self.expected_arch_weights()], dim=1)
        zero_one = -((weights - 0.5) ** 2).mean(dim=1)
        return seed_cross_entropy(logits, batch.labels) + self.options.zero_one_weight * zero_one, logits
