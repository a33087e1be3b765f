"""The search of one configuration for a batch of seeds computed together: data, supernet and searcher, the
epochs, each seed's folder.

The parts: ``harness.run_folder`` (everything on disk, one folder per seed), ``harness.seed_run`` (resume
reconciliation and each seed's recorder), ``harness.epoch`` (one epoch's steps and records), ``harness.provenance``
(what ``config.json`` holds besides the configuration). Exact resume: everything random in an epoch is seeded by
(seed, epoch), and each seed's checkpoint holds its supernet (BN running statistics included), its optimiser state
and the searcher's extra state, sliced out of the batch; an epoch interrupted at any moment is redone from the last
checkpoints and yields the records it would have yielded. Seed s computes the same in any batch as alone
(``searchers.seeds``), so batching is an execution choice.
"""
from __future__ import annotations

import time
from contextlib import ExitStack
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import torch

from benchmarks.data_stream import DeviceImages, SearchData
from benchmarks.images import get_dataset, search_images
from foundation.errors import UserError
from foundation.records import Summary
from harness.config import Experiment
from harness.device import configure_backends, default_dtype, device_description
from harness.diagnostics import probe_seconds
from harness.epoch import EpochRunner
from harness.graphed import StepFn, search_step
from harness.log import Log, stderr_log
from harness.memory import check_fits, is_out_of_memory, out_of_memory
from harness.progress import RunClock
from harness.provenance import run_provenance
from harness.run_folder import RunFolder
from harness.seed_run import SeedRun, restore_together
from harness.threads import CpuThreads, pinned_threads
from harness.tracking import check_backends
from searchers.context import OptimConfig, SearchContext
from searchers.searcher import Searcher
from searchers.seeds import SeedStack, stack_seeds


def build_searcher(experiment: Experiment, device: torch.device, steps_per_epoch: int,
                   half_sizes: tuple[int, int], seeds: Sequence[int]) -> Searcher:
    """The configured searcher over one supernet per seed on ``device``, each initialised from its own seed
    (exactly the supernet that seed gets alone), stacked (``searchers.seeds``), convolution weights laid out per
    seed as ``channels_last`` when configured."""
    config = experiment.config
    supernets = []
    for seed in seeds:
        torch.manual_seed(seed)
        supernets.append(experiment.build_supernet())
    stack = SeedStack(supernets, config.channels_last).to(device)
    optim = OptimConfig(**{f: getattr(config, f) for f in OptimConfig.__dataclass_fields__})
    context = SearchContext(steps_per_epoch, half_sizes, experiment.dataset.num_classes)
    return experiment.searcher(stack, optim, context, dict(config.searcher_options))


@dataclass
class SearchInputs:
    data: SearchData
    heldout: DeviceImages  # images no searcher trains on (benchmarks.images): the diagnostics' default set
    data_provenance: dict[str, Any]


def device_data(data_dir: str, dataset_name: str, train_images: int, device: str, channels_last: bool,
                heldout_images: int) -> SearchInputs:
    """The search's images on the device, in the default dtype (kept for the next configuration of a sweep task
    on the same data)."""
    return _device_data(data_dir, dataset_name, train_images, device, channels_last, heldout_images,
                        torch.get_default_dtype())


@lru_cache(maxsize=2)
def _device_data(data_dir: str, dataset_name: str, train_images: int, device: str, channels_last: bool,
                 heldout_images: int, dtype: torch.dtype) -> SearchInputs:
    dataset = get_dataset(dataset_name)
    images = search_images(dataset, Path(data_dir), train_images, heldout_images)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    weight, arch, heldout = (DeviceImages(*part, torch.device(device), dataset.augmentation, fmt)
                             for part in (images.weight, images.arch, images.heldout))
    return SearchInputs(SearchData(weight, arch), heldout, images.provenance)


class SeedBatch:
    """The searches of one configuration with several seeds, computed together as one search vectorised over
    seeds (``searchers.seeds``; one seed is a batch of one). Each seed keeps its own run folder, lock, records,
    checkpoints and summary, exactly as a lone run's: finished seeds are skipped, a seed that diverges stops
    alone while the others go on."""

    def __init__(self, experiment: Experiment, seeds: Sequence[int], out_root: Path, data_dir: Path,
                 device: torch.device, log: Log = stderr_log, progress: bool = False, wait_for_lock: bool = False,
                 repair: bool = False, tracking: Sequence[str] = (), threads: int | None = None) -> None:
        check_backends(tracking)
        self.experiment, self.config, self.seeds, self.device = experiment, experiment.config, list(seeds), device
        self.tracking, self.threads = tuple(tracking), threads
        self.progress, self.wait_for_lock, self.log = progress, wait_for_lock, log
        self.data_dir = Path(data_dir)
        self.space = experiment.space(self.data_dir)  # its table first: a missing one is said before anything starts
        self.run_folders = [RunFolder(out_root, experiment.config, experiment.name, seed, experiment.classes(), log,
                                      repair)
                            for seed in seeds]

    @property
    def folders(self) -> list[Path]:
        return [folder.path for folder in self.run_folders]

    def execute(self) -> list[Summary]:
        """Run (or resume) every seed under its folder's lock; finished seeds are skipped. Summaries in seed order."""
        summaries = {folder.seed: folder.summary() for folder in self.run_folders}
        pending = [folder for folder in self.run_folders if summaries[folder.seed] is None]
        new = [folder for folder in pending if not folder.path.exists()]
        try:
            self._execute_pending(pending, summaries)
        except UserError:  # refused before its first epoch: no folder of this command's is left as a run
            for folder in new:
                folder.remove_if_unstarted()
            raise
        for folder in self.run_folders:
            if folder not in pending:
                folder.log(f"already finished, skipping ({folder.path})")
        return [summaries[seed] for seed in self.seeds]

    def _execute_pending(self, pending: list[RunFolder], summaries: dict[int, Summary | None]) -> None:
        if pending:
            self._check_data_size()
            with ExitStack() as held:
                held.enter_context(default_dtype(self.config.precision))
                threads = held.enter_context(CpuThreads(pinned_threads(self.threads), self.log))
                check_fits(self.experiment, self.device, len(pending))
                for folder in pending:
                    held.enter_context(folder.locked(self.wait_for_lock))
                still = []
                for folder in pending:  # another process may have finished some while we waited
                    summaries[folder.seed] = folder.summary()
                    if summaries[folder.seed] is None:
                        still.append(folder)
                if still:
                    summaries.update(self._execute(still, threads))

    def _execute(self, folders: list[RunFolder], threads: CpuThreads) -> dict[int, Summary]:
        cfg = self.config
        inputs = device_data(str(self.data_dir), cfg.dataset, cfg.train_images, str(self.device), cfg.channels_last,
                             cfg.eval_images)
        configure_backends(cfg.precision, self.device)
        eval_source = inputs.heldout if cfg.eval_set == "heldout" else inputs.data.arch_half
        for field in ("eval_images", "hessian_images"):
            if getattr(cfg, field) > len(eval_source):
                self.log(f"{field}={getattr(cfg, field)}: the {cfg.eval_set} evaluation set holds "
                         f"{len(eval_source)} images; all {len(eval_source)} are used")
        self.epoch_runner = EpochRunner(cfg, self.space, self.device, inputs.data,
                                        eval_source.fixed_batches(cfg.eval_images, cfg.batch_size),
                                        eval_source.fixed_batches(cfg.hessian_images, cfg.batch_size), threads,
                                        self.progress)
        provenance = run_provenance(self.experiment, self.space, self.device, inputs.data_provenance,
                                    [folder.seed for folder in folders], self.epoch_runner.eval_batches,
                                    self.epoch_runner.hessian_batches, threads.policy)
        for folder in folders:
            folder.write_config(provenance)
        restored = restore_together(folders, self.device, cfg.epochs)
        summaries = {}
        for done in sorted({len(seed.records) for seed in restored}):  # one batch unless a checkpoint was missing
            summaries.update(self._search([seed for seed in restored if len(seed.records) == done]))
        return summaries

    def _search(self, batch: list[SeedRun]) -> dict[int, Summary]:
        cfg, data = self.config, self.epoch_runner.data
        searcher = build_searcher(self.experiment, self.device, data.steps_per_epoch(cfg.batch_size),
                                  (len(data.weight_half), len(data.arch_half)), [seed.seed for seed in batch])
        if batch[0].state is not None:
            searcher.supernet.load_seed_state_dicts([seed.state["supernet"] for seed in batch])
            searcher.load_state_dict(stack_seeds([seed.state["searcher"] for seed in batch]))
        step = search_step(searcher, self.device, cfg.cuda_graphs)  # after the restore: it adapts the optimisers
        with ExitStack() as closing:
            for seed in batch:
                seed.open_trackers(self.tracking, cfg.to_dict(), closing)
            return self._epochs(searcher, step, batch)

    def _epochs(self, searcher: Searcher, step: StepFn, batch: list[SeedRun]) -> dict[int, Summary]:
        """The remaining epochs of the batch, each seed's record kept by its recorder; the summaries."""
        started = time.time()
        epochs = list(range(len(batch[0].records) + 1, self.config.epochs + 1))
        clock = self._clock(searcher, batch, epochs)
        for epoch in epochs:
            try:
                records = self.epoch_runner.run(searcher, step, batch, epoch, clock)
            except (MemoryError, RuntimeError) as exc:  # torch.OutOfMemoryError is a RuntimeError
                if not is_out_of_memory(exc):
                    raise
                raise out_of_memory(self.experiment, self.device, epoch, epoch - 1) from None
            eta = clock.after_epoch(records[0].epoch_seconds, max((r.diagnostics_seconds or 0.0) for r in records))
            for index, (seed, record) in enumerate(zip(batch, records)):
                if seed.status == "running":
                    seed.keep(record, searcher, index, self.config.epochs, eta, alone=len(batch) == 1)
            if all(seed.status != "running" for seed in batch):
                break
        return {seed.seed: seed.finish(self.config.epochs, started) for seed in batch}

    def _clock(self, searcher: Searcher, batch: list[SeedRun], epochs: list[int]) -> RunClock:
        """The run's time estimate, said in the batch's log (one seed's own when alone)."""
        cfg, runner = self.config, self.epoch_runner
        names = ", ".join(str(seed.seed) for seed in batch)
        where = f"{cfg.space}/{cfg.searcher}/{self.experiment.name} seeds {names}"
        log = batch[0].folder.log if len(batch) == 1 else (lambda message: self.log(f"[{where}] {message}"))
        probe = (probe_seconds(searcher, runner.eval_batches, runner.hessian_batches, cfg.hessian_method)
                 if any(map(runner.diagnostics_due, epochs)) else 0.0)
        described = device_description(self.device) + (f", {len(batch)} seeds batched" if len(batch) > 1 else "")
        return RunClock(log, self.device, epochs, runner.data.steps_per_epoch(cfg.batch_size), described,
                        runner.diagnostics_due, probe)

    def _check_data_size(self) -> None:
        """``train_images`` and ``batch_size`` against the images a half of the split has (read from the split
        alone: before any image is loaded)."""
        cfg, dataset = self.config, self.experiment.dataset
        split = dataset.split(self.data_dir, dataset.num_train)
        half = min(len(split.weight.indices), len(split.arch.indices))
        if cfg.train_images > half:
            raise UserError(f"bad value train_images={cfg.train_images}: a half of the split has {half} images")
        used = cfg.train_images or half
        if cfg.batch_size > used:
            raise UserError(f"bad value batch_size={cfg.batch_size}: larger than the {used} images of a half "
                            f"(train_images={cfg.train_images})")
