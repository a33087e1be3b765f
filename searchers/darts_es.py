"""``darts_es``: DARTS stopped early when the dominant Hessian eigenvalue of the validation loss grows.

DARTS-ES (Zela, Elsken, Saikia, Marrakchi, Brox & Hutter, "Understanding and Robustifying Differentiable
Architecture Search", ICLR 2020, Section 4.3; reference ``automl/RobustDARTS``: ``EVLocalAvg`` in ``src/utils.py``,
``train`` / ``train_epochs`` in ``src/search/train_search.py``, ``Analyzer.compute_Hw`` in ``src/search/analyze.py``):
track lambda_max, the largest eigenvalue of the Hessian of the validation loss w.r.t. alpha, average it locally
over a window of eigenvalues, and stop when the current local average has grown too much over the one
``delta`` eigenvalues before: "stop if lambda-bar(i-k) / lambda-bar(i) < 0.75" and "return the architecture from
epoch i - k" (Section 4.3; the brief of this module paraphrases the paper's criterion, the reference's code is what
was read here).

Every hyper-parameter, with its source:

- ``hessian_every`` = 2: the eigenvalue is computed after every 2nd epoch (0-based epochs 0, 2, 4, ... and the
  last; ``scripts/DARTS-ADA_search.sh`` and ``DARTS_search.sh``: ``--report_freq_hessian 2``).
- ``window`` = 5 eigenvalues (``args.py`` ``--window`` 5): the local average is the mean of the last 5
  eigenvalues (of all of them while fewer than 5; none before ceil(5 / 2) = 3), centred ``hessian_every *
  floor(window / 2)`` epochs back (``EVLocalAvg.update``).
- ``delta`` = 4 local averages (``--delta`` 4): the previous local average is the one 4 eigenvalues earlier;
  the architecture returned is that of the centre of the previous window, the epoch of eigenvalue number
  ``n - 1 - floor(window / 2) - delta`` (``EVLocalAvg.early_stop``: ``stop_epoch = la_epochs[epoch] -
  ev_freq * delta``). With the defaults: checked at epoch e, it returns the architecture of epoch e - 12.
- ``ratio`` = 0.75 (the paper's criterion, Section 4.3). The code's ``--factor`` 1.3 (``current / previous >
  1.3``, i.e. a ratio of 0.769) is the same test with another constant; set ``ratio=0.769`` for it. A current
  local average that is not positive never stops the search (no growth of the curvature).
- ``start_epoch`` = 10 (``--es_start_epoch`` 10, 0-based): no stop that would return an architecture from before
  this epoch. The criterion is not checked in the last epoch (``epoch != args.epochs - 1``).
- ``hessian_method`` = ``exact``: the reference builds the full Hessian (``Analyzer._hessian``) and takes the
  largest eigenvalue (``max(LA.eigvals(H))``); ``lanczos`` gives the same value to 1e-4 in a third of the
  products (``searchers.hessian``).
- ``hessian_arch_weight_decay`` = True: ``Analyzer._hessian`` differentiates ``grad + arch_weight_decay *
  alpha``, i.e. adds the architecture weight decay to every eigenvalue (1e-3 here, as DARTS's Adam).

The Hessian is that of the cross-entropy on one architecture-half batch, the last of the epoch (the reference
uses ``input_search``, the last validation batch drawn in the epoch), at ``expected_arch_weights``, BN in
training mode, as in search; BN's running statistics are restored afterwards.

How a stopped search ends (per seed; the other seeds of a batch go on): at the stop, the seed's alphas are set
to the architecture of the stop point (the epoch i - k above) and frozen there (every later architecture step
of that seed is undone), so the record of the epoch that stopped and of every later epoch derives the
architecture of the stop point: the last record's genotype is the one that counts, as in ``early_stop == 1`` of
the reference, which breaks its epoch loop and returns ``stop_genotype``. The weights go on training (they no
longer change the derived cell; the diagnostics of later epochs see them). The stop shows in the records as
``arch_weights`` that, from the stopping epoch on, equal exactly those of the stop point's epoch. Settings
otherwise DARTS's NB201 protocol (the paper's search spaces S1-S4 and DARTS's use DARTS's optimiser settings).

Reduced presets (a choice of ours, not the paper's): an eigenvalue every epoch and ``start_epoch`` at the paper's
20 % of the epochs (reduced 3 of 16; quick and smoke 0: quick's one check, epoch 6, returns epoch 0), so that the
criterion can fire at all (with the defaults the earliest check is the 0-based epoch 22).
"""
from __future__ import annotations

import math
from typing import Any, Literal

import torch
from pydantic import Field

from benchmarks.data_stream import Batch
from foundation.options import OptionSet
from searchers.context import EpochStats
from searchers.darts import Darts
from searchers.hessian import dominant_eigenvalues
from searchers.seeds import per_seed, seed_cross_entropy


class EarlyStopOptions(OptionSet):
    hessian_every: int = Field(2, ge=1, le=1000, description="epochs between eigenvalues (--report_freq_hessian 2)")
    window: int = Field(5, ge=1, le=1000, description="eigenvalues per local average (--window 5)")
    delta: int = Field(4, ge=1, le=1000, description="local averages between the compared ones (--delta 4)")
    ratio: float = Field(0.75, gt=0, le=1, description="stop when previous / current local average < ratio (4.3)")
    start_epoch: int = Field(10, ge=0, description="earliest (0-based) epoch returned (--es_start_epoch 10)")
    hessian_method: Literal["exact", "lanczos"] = Field("exact", description="full Hessian as the reference, or "
                                                                             "Lanczos (same value to 1e-4)")
    hessian_arch_weight_decay: bool = Field(True, description="add the architecture weight decay to the "
                                                              "eigenvalue (Analyzer._hessian)")


def stop_index(values: list[float], epochs: list[int], options: EarlyStopOptions) -> int | None:
    """One seed's criterion after its newest eigenvalue: the index of the eigenvalue whose epoch's architecture
    is returned, or None (go on). ``values`` and ``epochs``: its eigenvalues so far and their (0-based) epochs."""
    n, half = len(values), options.window // 2
    index = n - 1 - half - options.delta
    if index < 0 or n - options.delta < math.ceil(options.window / 2) or epochs[index] < options.start_epoch:
        return None
    current = sum(values[max(0, n - options.window):]) / min(n, options.window)
    before = n - options.delta
    previous = sum(values[max(0, before - options.window):before]) / min(before, options.window)
    return index if current > 0 and previous / current < options.ratio else None


class DartsEs(Darts):
    name = "darts_es"
    summary = "DARTS-ES: stop when the Hessian's top eigenvalue in alpha grows (Zela et al., ICLR 2020)"
    graph_capturable = True

    class Options(EarlyStopOptions):
        pass

    # reduced presets: an eigenvalue every epoch and the paper's 20 % of the epochs before the first stop
    preset_options = {"quick": {"hessian_every": 1, "start_epoch": 0},
                      "reduced": {"hessian_every": 1, "start_epoch": 3},
                      "smoke": {"hessian_every": 1, "start_epoch": 0}}

    kept_state: tuple[str, ...] = ("alphas",)  # what ``on_stop`` may need of the stop point
    checkpointed = ("values", "value_epochs", "counts", "stopped", "snapshots", "frozen")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        opts = self.options
        self.kept = opts.window // 2 + opts.delta + 1  # eigenvalues back to the oldest architecture a stop returns
        slots = math.ceil(self.optim.epochs / opts.hessian_every) + 1
        self.values = torch.zeros(self.seeds, slots, dtype=torch.float64, device=self.device)
        self.value_epochs = torch.zeros(self.seeds, slots, dtype=torch.long, device=self.device)
        self.counts = torch.zeros(self.seeds, dtype=torch.long, device=self.device)
        self.stopped = torch.zeros(self.seeds, dtype=torch.bool, device=self.device)
        self.snapshots: dict[str, list[torch.Tensor]] = {}  # per kind of state: (K, kept, ...) ring buffers
        self.frozen = [a.detach().clone() for a in self.alphas]
        self.last_arch_batch: Batch | None = None

    # --- hooks ----------------------------------------------------------------------------------------------
    def step(self, weight_batch: Batch, arch_batch: Batch, weight_stats: EpochStats, arch_stats: EpochStats) -> None:
        self.last_arch_batch = arch_batch
        super().step(weight_batch, arch_batch, weight_stats, arch_stats)
        self.hold_frozen()

    def end_epoch(self, epoch: int) -> None:
        first = epoch - 1  # the reference's 0-based epoch
        last = first == self.optim.epochs - 1
        if self.last_arch_batch is None or not (first % self.options.hessian_every == 0 or last):
            return
        watching = ~self.stopped
        if not watching.any():
            return
        values = torch.tensor(self.top_eigenvalues(self.last_arch_batch), dtype=torch.float64, device=self.device)
        slot = self.counts % self.kept
        rows = torch.arange(self.seeds, device=self.device)
        for name in self.kept_state:
            tensors = self.state_to_keep(name)
            stored = self.snapshots.setdefault(name, [t.new_zeros(t.shape[0], self.kept, *t.shape[1:])
                                                      for t in tensors])
            for store, now in zip(stored, tensors):
                store[rows, slot] = torch.where(per_seed(watching, now), now.detach(), store[rows, slot])
        self.values[rows, self.counts] = torch.where(watching, values, self.values[rows, self.counts])
        self.value_epochs[rows, self.counts] = first
        self.counts += watching.long()
        if last:
            return
        for seed in range(self.seeds):
            if not watching[seed] or not self.may_stop(seed):
                continue
            count = int(self.counts[seed])
            index = stop_index(self.values[seed, :count].tolist(), self.value_epochs[seed, :count].tolist(),
                               self.options)
            if index is not None:
                self.on_stop(seed, index)

    def epoch_report(self) -> list[dict[str, float | int | bool]]:
        """Per seed: the stopping rule's last eigenvalue and whether the seed has stopped (its alphas frozen)."""
        return [{**self.last_eigenvalue(seed), "stopped": bool(self.stopped[seed])} for seed in range(self.seeds)]

    # --- helpers --------------------------------------------------------------------------------------------
    def top_eigenvalues(self, batch: Batch) -> list[float]:
        """Each seed's largest eigenvalue of the Hessian of its validation loss on ``batch`` w.r.t. alpha."""
        saved = {name: buf.clone() for name, buf in self.supernet.named_buffers()}
        try:
            def loss(_: int) -> torch.Tensor:
                return seed_cross_entropy(self.supernet(batch.images, self.expected_arch_weights()), batch.labels)

            values = dominant_eigenvalues(loss, self.alphas, 1, self.options.hessian_method)
        finally:
            with torch.no_grad():
                for name, buf in self.supernet.named_buffers():
                    buf.copy_(saved[name])
        shift = self.optim.a_weight_decay if self.options.hessian_arch_weight_decay else 0.0
        return [value + shift for value in values]

    def last_eigenvalue(self, seed: int) -> dict[str, float]:
        """The seed's latest eigenvalue of the stopping rule (its own, on the epoch's last architecture batch, the
        weight decay added as the reference's ``Analyzer``), when it has one."""
        count = int(self.counts[seed])
        return {"eigenvalue": float(self.values[seed, count - 1])} if count else {}

    def state_to_keep(self, name: str) -> list[torch.Tensor]:
        return self.alphas

    def may_stop(self, seed: int) -> bool:
        return True

    def on_stop(self, seed: int, index: int) -> None:
        """DARTS-ES: the seed's alphas become those of eigenvalue ``index``'s epoch, frozen from now on."""
        self.stopped[seed] = True
        with torch.no_grad():
            for alpha, frozen, stored in zip(self.alphas, self.frozen, self.snapshots["alphas"]):
                frozen[seed] = stored[seed, index % self.kept]
                alpha[seed] = frozen[seed]

    def hold_frozen(self) -> None:
        """Stopped seeds' alphas back to their frozen values (on the device: no host check of who stopped)."""
        with torch.no_grad():
            for alpha, frozen in zip(self.alphas, self.frozen):
                alpha.copy_(torch.where(per_seed(self.stopped, alpha), frozen, alpha))
