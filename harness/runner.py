"""The search loop of one configuration and a batch of seeds computed together: data, supernet and searcher,
the epochs, each seed's records.

Everything on disk goes through ``harness.run_folder``, one folder per seed. Exact resume: everything random in
an epoch is seeded by (seed, epoch) — data order and augmentation by ``data_stream.epoch_generator``, the
searcher's per-seed generators at the start of each epoch — and each seed's checkpoint holds its supernet (BN
running statistics included), its optimiser state and the searcher's extra state, sliced out of the batch. An
epoch interrupted at any moment is redone from the last checkpoints and yields the records it would have yielded.
Seed s computes the same in any batch as alone (``searchers.seeds``), so batching is an execution choice.
"""
from __future__ import annotations

import platform
import subprocess
import sys
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

import harness
from benchmarks.data_stream import DeviceImages, SearchData
from benchmarks.images import get_dataset, search_images
from foundation.errors import UserError
from foundation.decisiveness import of_weights
from foundation.records import CellDescription, Diagnostics, EpochRecord, Summary
from harness.config import Experiment
from harness.device import configure_backends, device_description, precision_context
from harness.diagnostics import epoch_diagnostics, probe_seconds
from harness.graphed import StepFn, search_step
from harness.memory import check_fits, is_out_of_memory, out_of_memory
from harness.progress import EpochBar, RunClock
from harness.run_folder import RunFolder
from harness.tracking import BACKENDS, Tracker, open_trackers
from searchers.context import EpochStats, OptimConfig, SearchContext
from searchers.darts import Darts
from searchers.seeds import SeedStack, select_seed, stack_seeds

Log = Callable[[str], None]
# Seeds computed together by default. CPU: 4 seeds batched are 1.31-1.37x the throughput of 4 sequential seeds at
# the quick preset (README: Timings). CUDA: 4, the GPU check's batch (.ci/gpu_seed_batch.sh); not yet measured.
SEED_BATCH_DEFAULTS = {"cpu": 4, "cuda": 4}


def stderr_log(message: str) -> None:
    """A line on stderr, above the progress bar when one is drawn (``tqdm.write`` clears and redraws it)."""
    tqdm.write(message, file=sys.stderr)
    sys.stderr.flush()


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(harness.__file__).parent, capture_output=True,
                             text=True, timeout=5)
        commit = out.stdout.strip()
        return commit if len(commit) == 40 else None
    except (OSError, subprocess.SubprocessError):
        return None


def epoch_seed(seed: int, epoch: int) -> int:
    return (seed * 7919 + epoch * 104729) % (2**31)


def build_searcher(experiment: Experiment, device: torch.device, steps_per_epoch: int,
                   half_sizes: tuple[int, int], seeds: Sequence[int]) -> Darts:
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


@lru_cache(maxsize=2)
def _device_data(data_dir: str, dataset_name: str, train_images: int, device: str, channels_last: bool,
                 heldout_images: int) -> SearchInputs:
    dataset = get_dataset(dataset_name)
    images = search_images(dataset, Path(data_dir), train_images, heldout_images)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    weight, arch, heldout = (DeviceImages(*part, torch.device(device), dataset.augmentation, fmt)
                             for part in (images.weight, images.arch, images.heldout))
    return SearchInputs(SearchData(weight, arch), heldout, images.provenance)


def batch_norm_settings(supernet: nn.Module) -> list[dict[str, Any]]:
    """The supernet's distinct BatchNorm configurations and how many layers have each (recorded in
    ``config.json``: affine parameters and running statistics in search cells are a known source of disagreement
    between published DARTS numbers). During search and diagnostics BN normalises by batch statistics."""
    counts = Counter((m.affine, m.track_running_stats, m.momentum, m.eps) for m in supernet.modules()
                     if isinstance(m, nn.modules.batchnorm._BatchNorm))
    return [{"affine": affine, "track_running_stats": track, "momentum": momentum, "eps": eps, "layers": layers}
            for (affine, track, momentum, eps), layers in counts.items()]


def default_seed_batch(device: torch.device) -> int:
    """Seeds computed together when ``--seed-batch`` is not given (README: Timings, measured by
    ``harness bench --seeds``)."""
    return SEED_BATCH_DEFAULTS.get(device.type, 1)


@dataclass
class SeedState:
    """One seed of a batch: its folder, what it resumes from, its records so far, whether it still searches."""

    seed: int
    folder: RunFolder
    state: dict[str, Any] | None
    records: list[EpochRecord]
    status: str = "running"
    trackers: list[Tracker] = field(default_factory=list)

    def track(self, record: EpochRecord) -> None:
        for tracker in self.trackers:
            tracker.log(record)


class SeedBatch:
    """The searches of one configuration with several seeds, computed together as one search vectorised over
    seeds (``searchers.seeds``; one seed is a batch of one). Each seed keeps its own run folder, lock, records,
    checkpoints and summary, exactly as a lone run's: finished seeds are skipped, a seed that diverges stops
    alone while the others go on. Seeds resumed from different epochs (a kill between their checkpoints) go back
    to the earliest one's epoch, so the batch computes what the uninterrupted batch did (a seed without a
    checkpoint there runs in a batch of its own)."""

    def __init__(self, experiment: Experiment, seeds: Sequence[int], out_root: Path, data_dir: Path,
                 device: torch.device, log: Log = stderr_log, progress: bool = False, wait_for_lock: bool = False,
                 repair: bool = False, tracking: Sequence[str] = ()) -> None:
        unknown = sorted(set(tracking) - set(BACKENDS))
        if unknown:
            raise UserError(f"bad value --log {unknown[0]}: known: {', '.join(BACKENDS)}")
        self.experiment, self.config, self.seeds, self.device = experiment, experiment.config, list(seeds), device
        self.tracking = tuple(tracking)
        self.progress, self.wait_for_lock, self.log = progress, wait_for_lock, log
        self.data_dir = Path(data_dir)
        self.space = experiment.space(self.data_dir)  # its table first: a missing one is said before anything starts
        self.run_folders = [RunFolder(out_root, experiment.config, experiment.name, seed, log, repair) for seed in seeds]

    @property
    def folders(self) -> list[Path]:
        return [folder.path for folder in self.run_folders]

    def execute(self) -> list[Summary]:
        """Run (or resume) every seed under its folder's lock; finished seeds are skipped. Summaries in seed order."""
        summaries = {folder.seed: folder.summary() for folder in self.run_folders}
        pending = [folder for folder in self.run_folders if summaries[folder.seed] is None]
        if pending:
            self._check_data_size()
            check_fits(self.experiment, self.device, len(pending))
            with ExitStack() as locks:
                for folder in pending:
                    locks.enter_context(folder.locked(self.wait_for_lock))
                still = []
                for folder in pending:  # another process may have finished some while we waited
                    summaries[folder.seed] = folder.summary()
                    if summaries[folder.seed] is None:
                        still.append(folder)
                if still:
                    summaries.update(self._execute(still))
        for folder in self.run_folders:
            if folder not in pending:
                folder.log(f"already finished, skipping ({folder.path})")
        return [summaries[seed] for seed in self.seeds]

    def _execute(self, folders: list[RunFolder]) -> dict[int, Summary]:
        cfg = self.config
        self.inputs = _device_data(str(self.data_dir), cfg.dataset, cfg.train_images, str(self.device),
                                   cfg.channels_last, cfg.eval_images)
        configure_backends(cfg.precision, self.device)
        eval_source = self.inputs.heldout if cfg.eval_set == "heldout" else self.inputs.data.arch_half
        self.eval_batches = eval_source.fixed_batches(cfg.eval_images, cfg.batch_size)
        self.hessian_batches = eval_source.fixed_batches(cfg.hessian_images, cfg.batch_size)
        restored = []
        for folder in folders:
            folder.write_config(self._provenance(self.inputs.data_provenance, [f.seed for f in folders]))
            state, records = folder.restore(self.device)
            if state is not None:
                folder.log(f"resuming after epoch {len(records)}/{cfg.epochs}")
            restored.append(SeedState(folder.seed, folder, state, records))
        behind = min(len(seed.records) for seed in restored)
        for seed in restored:  # a kill between two seeds' checkpoints: the ones ahead step back to the same epoch
            if len(seed.records) > behind:
                seed.state, seed.records = seed.folder.restore(self.device, at_most=behind)
                seed.folder.log(f"continuing with the batch from epoch {len(seed.records)}")
        summaries = {}
        for done in sorted({len(seed.records) for seed in restored}):  # one batch unless a checkpoint was missing
            summaries.update(self._search([seed for seed in restored if len(seed.records) == done]))
        return summaries

    def _search(self, batch: list[SeedState]) -> dict[int, Summary]:
        cfg, data = self.config, self.inputs.data
        steps = data.steps_per_epoch(cfg.batch_size)
        searcher = build_searcher(self.experiment, self.device, steps, (len(data.weight_half), len(data.arch_half)),
                                  [seed.seed for seed in batch])
        if batch[0].state is not None:
            searcher.supernet.load_seed_state_dicts([seed.state["supernet"] for seed in batch])
            searcher.load_state_dict(stack_seeds([seed.state["searcher"] for seed in batch]))
        step = search_step(searcher, self.device, cfg.cuda_graphs)  # after the restore: it adapts the optimisers
        with ExitStack() as closing:
            for seed in batch:
                seed.trackers = open_trackers(self.tracking, seed.folder.path, seed.folder.tag, cfg.to_dict(),
                                              seed.records)
                for tracker in seed.trackers:
                    closing.callback(tracker.close)
            return self._epochs(searcher, step, batch)

    def _epochs(self, searcher: Darts, step: StepFn, batch: list[SeedState]) -> dict[int, Summary]:
        """The remaining epochs of the batch, each seed's record saved, appended and tracked; the summaries."""
        cfg, steps = self.config, self.inputs.data.steps_per_epoch(self.config.batch_size)
        started = time.time()
        epochs = list(range(len(batch[0].records) + 1, cfg.epochs + 1))
        names = ", ".join(str(seed.seed) for seed in batch)
        where = f"{cfg.space}/{cfg.searcher}/{self.experiment.name} seeds {names}"
        log = batch[0].folder.log if len(batch) == 1 else (lambda message: self.log(f"[{where}] {message}"))
        clock = RunClock(log, self.device, epochs, steps,
                         device_description(self.device) + (f", {len(batch)} seeds batched" if len(batch) > 1 else ""),
                         self._diagnostics_due, probe_seconds(searcher, self.eval_batches, self.hessian_batches,
                                                              cfg.hessian_method)
                         if any(map(self._diagnostics_due, epochs)) else 0.0)
        for epoch in epochs:
            try:
                records = self._run_epoch(searcher, step, batch, epoch, clock)
            except (MemoryError, RuntimeError) as exc:  # torch.OutOfMemoryError is a RuntimeError
                if not is_out_of_memory(exc):
                    raise
                raise out_of_memory(self.experiment, self.device, epoch, epoch - 1) from None
            eta = clock.after_epoch(records[0].epoch_seconds, max((r.diagnostics_seconds or 0.0) for r in records))
            for index, (seed, record) in enumerate(zip(batch, records)):
                if seed.status != "running":
                    continue
                seed.records.append(record)
                if record.status == "diverged":
                    seed.folder.append(record)
                    seed.track(record)
                    seed.status = "diverged"
                    seed.folder.log(f"diverged in epoch {epoch}: non-finite loss or parameters; stopping, last good "
                                    "checkpoint kept" + ("; the other seeds go on" if len(batch) > 1 else ""))
                    continue
                seed.folder.save_checkpoint(epoch, record, searcher.supernet.seed_state_dict(index),
                                            select_seed(searcher.state_dict(), index))
                seed.folder.append(record)
                seed.track(record)
                self._log_epoch(seed.folder.log, record, eta)
            if all(seed.status != "running" for seed in batch):
                break
        summaries = {}
        for seed in batch:
            ok = [r for r in seed.records if r.status == "ok"]
            summary = Summary(status="diverged" if seed.status == "diverged" else "done", epochs_done=len(ok),
                              lookup_coverage=sum(r.in_table for r in ok) / len(ok) if ok else None,
                              epochs=cfg.epochs, final=seed.records[-1].to_json() if seed.records else None,
                              seconds_this_session=round(time.time() - started, 3),
                              search_seconds=round(sum(r.epoch_seconds or 0.0 for r in seed.records), 3))
            seed.folder.write_summary(summary)
            summaries[seed.seed] = summary
        return summaries

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

    def _provenance(self, data: dict[str, Any], batch: list[int]) -> dict[str, Any]:
        """Everything ``config.json`` holds besides the configuration: how it differs from its preset, the
        classes and versions that ran it, the device, the seeds computed with it, the data, the look-up table, the
        supernet's BatchNorm settings and the diagnostics' evaluation set."""
        count = lambda batches: sum(len(b.labels) for b in batches)  # noqa: E731
        return {
            "config_name": self.experiment.name, "overrides": self.experiment.overrides, **self.experiment.classes(),
            "harness_version": harness.__version__, "git_commit": git_commit(), "torch_version": torch.__version__,
            "python_version": platform.python_version(), "numpy_version": np.__version__,
            "device": device_description(self.device), "seed_batch": batch, "data": data,
            "table": self.space.table_provenance(), "batch_norm": batch_norm_settings(self.experiment.build_supernet()),
            "diagnostics": {"hessian_method": self.config.hessian_method, "every": self.config.diagnostics_every,
                            "eval_set": {"heldout": f"held out: the first {data['dataset']} {data['halves']['heldout']}-set images "
                                                    "that no searcher trains on (benchmarks.images)",
                                         "arch_half": "the first images of the architecture half"}[self.config.eval_set],
                            "eval_images": count(self.eval_batches), "hessian_images": count(self.hessian_batches)},
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }

    def _run_epoch(self, searcher: Darts, step_fn: StepFn, batch: list[SeedState], epoch: int,
                   clock: RunClock) -> list[EpochRecord]:
        """One epoch of every seed of the batch (those that diverged earlier too: their records are dropped)."""
        cfg, data, seeds = self.config, self.inputs.data, [seed.seed for seed in batch]
        searcher.reseed([epoch_seed(seed, epoch) for seed in seeds])
        searcher.supernet.train()
        weight_stats, arch_stats = EpochStats(self.device, len(batch)), EpochStats(self.device, len(batch))
        steps = data.steps_per_epoch(cfg.batch_size)
        bar = EpochBar(steps, f"epoch {epoch}/{cfg.epochs}", self.progress, clock)
        started = time.time()
        lr = cfg.w_lr
        searcher.begin_epoch(epoch)
        batches = data.seed_epochs(seeds, epoch, cfg.batch_size, searcher.wants_clean_images)
        for step, (weight_batch, arch_batch) in enumerate(batches):
            lr = searcher.set_learning_rate(epoch, step)
            with precision_context(cfg.precision, self.device):
                step_fn(weight_batch, arch_batch, weight_stats, arch_stats)
            bar.update()
            clock.after_step(step)
        searcher.end_epoch(epoch)
        bar.close()
        search_seconds = round(time.time() - started, 3)
        weights = searcher.derivation_weights()
        trains, archs = weight_stats.read(), arch_stats.read()
        finite = [not train["nonfinite_steps"] and not arch["nonfinite_steps"]
                  and all(bool(torch.isfinite(w[index]).all()) for w in weights) and seed.status == "running"
                  for index, (seed, train, arch) in enumerate(zip(batch, trains, archs))]
        diagnostics = (epoch_diagnostics(searcher, self.eval_batches, self.hessian_batches, cfg.hessian_method,
                                         self.space.discrete_weights)
                       if any(finite) and self._diagnostics_due(epoch) else [Diagnostics()] * len(batch))
        records = []
        for index, (train, arch, ok, measured) in enumerate(zip(trains, archs, finite, diagnostics)):
            seed_weights = [w[index] for w in weights]
            cell = self.space.describe(self.space.derive(seed_weights)) if ok else CellDescription()
            stored = [w.detach().cpu().tolist() for w in seed_weights] if ok else None
            previous = batch[index].records[-1].arch_weights if batch[index].records else None
            records.append(EpochRecord.build(
                cell, measured if ok else Diagnostics(), epoch=epoch, status="ok" if ok else "diverged",
                arch_weights=stored, decisiveness=of_weights(self.space.decisions, stored, previous) if ok else None,
                train_loss=train["loss"], train_acc=train["acc"], arch_loss=arch["loss"], arch_acc=arch["acc"],
                w_lr=lr, a_lr=cfg.a_lr, epoch_seconds=search_seconds))
        return records

    def _diagnostics_due(self, epoch: int) -> bool:
        return bool(self.config.diagnostics_every) and epoch % self.config.diagnostics_every == 0

    def _log_epoch(self, log: Log, record: EpochRecord, eta: str) -> None:
        lookup = {k: v for k, v in (record.lookup or {}).items() if v is not None}
        shown = {k: v for k, v in lookup.items() if k.endswith("test")} or lookup
        accs = " ".join(f"{k}={v:.2f}" for k, v in shown.items()) or "not in table"
        margin = "" if record.decisiveness is None else f" margin={record.decisiveness.median_margin:.3f}"
        log(f"epoch {record.epoch}/{self.config.epochs} {record.genotype} ({record.arch_index}) {accs} "
                 f"depth={record.depth} skips={record.skip_count}{margin} train_acc={record.train_acc:.1f} "
                 f"{record.epoch_seconds:.1f}s+{record.diagnostics_seconds or 0:.1f}s {eta}")
