"""``darts_ada``: DARTS with adaptive L2 regularisation of the weights, raised when DARTS-ES's criterion fires.

DARTS-ADA (Zela et al., ICLR 2020, Section 5, "DARTS-ADA"; reference ``automl/RobustDARTS``,
``src/search/train_search.py`` with ``--early_stop 3``): the search starts with the usual weight decay; whenever
the early-stopping criterion of DARTS-ES fires (``searchers.darts_es``: same eigenvalues, windows, ratio, start),
the search is rolled back to the stop point (``stop_epoch - extra_rollback_epochs``, the latter 0) — weights,
alphas, both optimisers' states and the eigenvalue history as they were at the end of that epoch — and goes on
with the weight decay multiplied by a factor, until it reaches its maximum; from then on the criterion is not
acted on (``final_iteration``) and the search runs to its end. The architecture that counts is the last one.

Hyper-parameters, with their sources: ``decay_factor`` = 10 and ``max_weight_decay`` = 0.03
(``scripts/DARTS-ADA_search.sh``: ``--mul_factor 10 --max_weight_decay 0.03``, starting from ``--weight_decay
0.0003``, i.e. 3e-4, 3e-3, 3e-2: two raises at most; ``args.py``'s defaults, 3 and 243e-4, are not the
script's); the criterion's options are DARTS-ES's (``--report_freq_hessian 2``, window 5, delta 4, es_start_epoch
10, ratio 0.75). The initial weight decay is the run's (``w_weight_decay``: DARTS's NB201 5e-4; the script's 3e-4 is
the DARTS space's default): an interpretation. A raise never passes ``max_weight_decay`` (the reference's
``final_iteration`` test, ``round(log(max) / log(wd), 1) == 1``, presumes a start that reaches the maximum
exactly by the factor).

Deviations, forced by a harness whose epochs run once from 1 to E (stated precisely):

- The reference re-runs the epochs after the stop point (``train_epochs(args.epochs, ..., start_epoch=
  start_again_epoch)``): a roll-back at epoch i to the stop point s replays epochs s + 1 .. E, so the search
  lasts longer. Here the state is restored to that of the end of epoch s, but the search goes on with epoch
  i + 1 of the run (its learning rate, its data order): the epochs s + 1 .. i are spent, not replayed, and the
  search after a roll-back is i - s epochs shorter (12 with the defaults) than the reference's.
- Adam's step count is shared by the seeds of a batch (a 0-d tensor) and is not rolled back: only its moment
  estimates are (after 10 epochs its bias corrections are 1 to within 1e-3).
- The weight decay is per seed (a seed's roll-back raises only its own): the optimiser keeps the run's decay and
  the difference is added to each seed's gradient after clipping, as SGD adds its decay (the same update).

Memory: the state of the last ``floor(window / 2) + delta + 1`` eigenvalue epochs (7: weights, BN statistics,
alphas, momentum, Adam moments) is kept per seed, in the checkpoints too (so that a resume is exact).
"""
from __future__ import annotations

from typing import Any

import torch
from pydantic import Field

from benchmarks.data_stream import Batch
from searchers.context import EpochStats
from searchers.darts_es import DartsEs
from searchers.seeds import clip_grad_norm_per_seed, per_seed


class DartsAda(DartsEs):
    name = "darts_ada"
    summary = "DARTS-ADA: weight decay x10 and a roll-back whenever DARTS-ES would stop (Zela et al., ICLR 2020)"
    graph_capturable = True

    kept_state = ("alphas", "state", "optim")
    checkpointed = (*DartsEs.checkpointed, "decay")

    class Options(DartsEs.Options):
        decay_factor: float = Field(10.0, gt=1, le=1e6, description="weight decay multiplier (--mul_factor 10)")
        max_weight_decay: float = Field(0.03, gt=0, le=1e3, description="largest weight decay "
                                                                        "(--max_weight_decay 0.03)")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.decay = torch.full((self.seeds,), self.optim.w_weight_decay, dtype=torch.float64, device=self.device)

    # --- hooks ----------------------------------------------------------------------------------------------
    def weight_step(self, batch: Batch, stats: EpochStats) -> None:
        """DARTS's weight step, adding each seed's decay beyond the optimiser's after clipping."""
        self.w_opt.zero_grad(set_to_none=True)
        loss, logits = self.weight_loss(batch)
        loss.sum().backward(inputs=self.weights)
        clip_grad_norm_per_seed(self.weights, self.optim.grad_clip)
        extra = self.decay - self.optim.w_weight_decay  # zero until a roll-back: adds exactly nothing
        with torch.no_grad():
            for weight in self.weights:
                weight.grad.add_(per_seed(extra.to(weight.dtype), weight) * weight)
        self.w_opt.step()
        stats.add(loss, logits, batch.labels)

    def epoch_report(self) -> list[dict[str, float | int | bool]]:
        """Per seed: the stopping rule's last eigenvalue and the weight decay, raised at each roll-back (DARTS-ADA
        never stops)."""
        return [{**self.last_eigenvalue(seed), "weight_decay": float(self.decay[seed])} for seed in range(self.seeds)]

    # --- helpers --------------------------------------------------------------------------------------------
    def state_to_keep(self, name: str) -> list[torch.Tensor]:
        """What a roll-back restores: alphas; the supernet's other parameters and buffers; the optimisers'
        per-seed state (momentum; Adam's moments)."""
        if name == "alphas":
            return self.alphas
        if name == "state":
            alpha_ids = {id(alpha) for alpha in self.alphas}
            return [t for t in [*self.supernet.parameters(), *self.supernet.buffers()] if id(t) not in alpha_ids]
        return [self.w_opt.state[w]["momentum_buffer"] for w in self.weights] + [
            self.a_opt.state[a][key] for a in self.alphas for key in ("exp_avg", "exp_avg_sq")]

    def may_stop(self, seed: int) -> bool:
        return float(self.decay[seed]) < self.options.max_weight_decay * (1 - 1e-9)

    def on_stop(self, seed: int, index: int) -> None:
        """Roll seed ``seed`` back to eigenvalue ``index``'s epoch and raise its weight decay."""
        slot = index % self.kept
        with torch.no_grad():
            for name, stored in self.snapshots.items():
                for now, kept in zip(self.state_to_keep(name), stored):
                    now[seed] = kept[seed, slot]
        self.counts[seed] = index + 1  # the eigenvalue history as it was then
        self.decay[seed] = min(float(self.decay[seed]) * self.options.decay_factor, self.options.max_weight_decay)
