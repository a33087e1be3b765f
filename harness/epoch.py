"""One search epoch of a batch of seeds: the steps, then each seed's record (derived cell, look-ups,
diagnostics when due, decisiveness, optimisation statistics).

Everything random in an epoch is seeded by (seed, epoch) (``epoch_seed``: the searcher's per-seed generators;
data order and augmentation by ``data_stream.epoch_generator``), so an epoch redone after a kill yields the
records it would have yielded.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from benchmarks.data_stream import Batch, SearchData
from benchmarks.search_space import SearchSpace
from foundation.decisiveness import of_weights
from foundation.records import CellDescription, Diagnostics, EpochRecord
from foundation.run_config import RunConfig
from harness.device import kernels_description, precision_context
from harness.diagnostics import epoch_diagnostics
from harness.graphed import StepFn
from harness.progress import EpochBar, RunClock
from harness.seed_run import SeedRun
from harness.threads import CpuThreads
from searchers.context import EpochStats
from searchers.searcher import Searcher


def epoch_seed(seed: int, epoch: int) -> int:
    return (seed * 7919 + epoch * 104729) % (2**31)


@dataclass
class EpochRunner:
    """What every epoch of a batch shares: the configuration, the space that describes cells, the data and the
    diagnostics' fixed batches."""

    config: RunConfig
    space: SearchSpace
    device: torch.device
    data: SearchData
    eval_batches: list[Batch]
    hessian_batches: list[Batch]
    threads: CpuThreads
    progress: bool = False

    def diagnostics_due(self, epoch: int) -> bool:
        return bool(self.config.diagnostics_every) and epoch % self.config.diagnostics_every == 0

    def run(self, searcher: Searcher, step_fn: StepFn, batch: list[SeedRun], epoch: int,
            clock: RunClock) -> list[EpochRecord]:
        """One epoch of every seed of the batch (those that diverged earlier too: their records are dropped)."""
        started = time.time()
        weight_stats, arch_stats, lr = self._train(searcher, step_fn, [seed.seed for seed in batch], epoch, clock)
        return self._records(searcher, batch, epoch, weight_stats.read(), arch_stats.read(), lr,
                             round(time.time() - started, 3))

    def _train(self, searcher: Searcher, step_fn: StepFn, seeds: list[int], epoch: int,
               clock: RunClock) -> tuple[EpochStats, EpochStats, float]:
        """The epoch's search steps; the weight and architecture steps' statistics and the last learning rate."""
        cfg = self.config
        searcher.reseed([epoch_seed(seed, epoch) for seed in seeds])
        searcher.supernet.train()
        weight_stats, arch_stats = EpochStats(self.device, len(seeds)), EpochStats(self.device, len(seeds))
        bar = EpochBar(self.data.steps_per_epoch(cfg.batch_size), f"epoch {epoch}/{cfg.epochs}", self.progress, clock)
        lr = cfg.w_lr
        searcher.begin_epoch(epoch)
        for step, (weight_batch, arch_batch) in enumerate(
                self.data.seed_epochs(seeds, epoch, cfg.batch_size, searcher.wants_clean_images)):
            lr = searcher.set_learning_rate(epoch, step)
            with precision_context(cfg.precision, self.device):
                step_fn(weight_batch, arch_batch, weight_stats, arch_stats)
            bar.update()
            clock.after_step(step)
            self.threads.tick()
        searcher.end_epoch(epoch)
        bar.close()
        return weight_stats, arch_stats, lr

    def _records(self, searcher: Searcher, batch: list[SeedRun], epoch: int, trains: list[dict], archs: list[dict],
                 lr: float, search_seconds: float) -> list[EpochRecord]:
        """Each seed's record: ok when its losses and weights stayed finite, else diverged (and empty)."""
        cfg = self.config
        weights = searcher.derivation_weights()
        finite = [not train["nonfinite_steps"] and not arch["nonfinite_steps"]
                  and all(bool(torch.isfinite(w[index]).all()) for w in weights) and seed.status == "running"
                  for index, (seed, train, arch) in enumerate(zip(batch, trains, archs))]
        diagnostics = (epoch_diagnostics(searcher, self.eval_batches, self.hessian_batches, cfg.hessian_method,
                                         self.space.discrete_weights)
                       if any(finite) and self.diagnostics_due(epoch) else [Diagnostics()] * len(batch))
        records, used, reports = [], self.threads.take_used(), searcher.epoch_report()
        for index, (train, arch, ok, measured) in enumerate(zip(trains, archs, finite, diagnostics)):
            seed_weights = [w[index] for w in weights]
            cell = self.space.describe(self.space.derive(seed_weights)) if ok else CellDescription()
            stored = [w.detach().cpu().tolist() for w in seed_weights] if ok else None
            previous = batch[index].records[-1].arch_weights if batch[index].records else None
            records.append(EpochRecord.build(
                cell, measured if ok else Diagnostics(), epoch=epoch, status="ok" if ok else "diverged",
                arch_weights=stored, decisiveness=of_weights(self.space.decisions, stored, previous) if ok else None,
                train_loss=train["loss"], train_acc=train["acc"], arch_loss=arch["loss"], arch_acc=arch["acc"],
                w_lr=lr, a_lr=cfg.a_lr, epoch_seconds=search_seconds, threads=used,
                batch_seeds=[seed.seed for seed in batch], kernels=kernels_description(self.device),
                searcher_state=reports[index] or None))
        return records
