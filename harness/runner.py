"""The search loop of one (configuration, seed): data, supernet and searcher, the epochs, their records.

Everything on disk goes through ``harness.run_folder``. Exact resume: everything random in an epoch is seeded by
(seed, epoch) — data order and augmentation by ``data_stream.epoch_generator``, the global torch generator at the
start of each epoch — and the checkpoint holds the supernet (BN running statistics included), both optimisers
and the searcher's extra state. An epoch interrupted at any moment is redone from the last checkpoint and
yields the record it would have yielded.
"""
from __future__ import annotations

import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from tqdm import tqdm

import harness
from analysis.diagnostics import epoch_diagnostics, probe_seconds
from benchmarks.cifar10 import load_cifar10, search_split
from benchmarks.data_stream import DeviceImages, SearchData
from foundation.errors import UserError
from foundation.records import CellDescription, Diagnostics, EpochRecord, Summary
from harness.config import Experiment
from harness.device import configure_backends, device_description, precision_context
from harness.graphed import StepFn, search_step
from harness.memory import check_fits, is_out_of_memory, out_of_memory
from harness.progress import EpochBar, RunClock
from harness.run_folder import RunFolder
from searchers.context import EpochStats, OptimConfig, SearchContext
from searchers.darts import Darts

Log = Callable[[str], None]


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
                   half_sizes: tuple[int, int]) -> Darts:
    """The configured supernet on ``device`` (initialised from the current torch seed) and its searcher."""
    config = experiment.config
    layout = torch.channels_last if config.channels_last else torch.contiguous_format
    supernet = experiment.space.build_supernet(config.channels, config.cells_per_stage,
                                               config.track_running_stats).to(device, memory_format=layout)
    optim = OptimConfig(**{f: getattr(config, f) for f in OptimConfig.__dataclass_fields__})
    context = SearchContext(steps_per_epoch, half_sizes, experiment.space.num_classes)
    return experiment.searcher(supernet, optim, context, dict(config.searcher_options))


@dataclass
class SearchInputs:
    data: SearchData
    heldout: DeviceImages  # the first CIFAR-10 test images: diagnostics of searchers without a validation set
    data_provenance: dict[str, Any]


@lru_cache(maxsize=2)
def _device_data(data_dir: str, train_images: int, device: str, channels_last: bool, heldout_images: int) -> SearchInputs:
    cifar = load_cifar10(Path(data_dir))
    weight_idx, arch_idx, split_source = search_split(Path(data_dir))
    if train_images:
        # The halves are random splits already; their first n images are a random subset of each.
        weight_idx, arch_idx = weight_idx[:train_images], arch_idx[:train_images]
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    halves = [DeviceImages(cifar.x_train[idx], cifar.y_train[idx], torch.device(device), fmt)
              for idx in (weight_idx, arch_idx)]
    heldout = DeviceImages(cifar.x_test[:heldout_images], cifar.y_test[:heldout_images], torch.device(device), fmt)
    provenance = {"dataset": "cifar10", "source": cifar.source, "source_sha256": cifar.source_sha256,
                  "split": split_source, "images_per_half": [len(weight_idx), len(arch_idx)]}
    return SearchInputs(SearchData(*halves), heldout, provenance)


class SeedRun:
    """One search of one configuration with one seed, resumable from its folder."""

    def __init__(self, experiment: Experiment, seed: int, out_root: Path, data_dir: Path, device: torch.device,
                 log: Log = stderr_log, progress: bool = False, wait_for_lock: bool = False,
                 repair: bool = False) -> None:
        self.experiment, self.config, self.seed, self.device = experiment, experiment.config, seed, device
        self.progress, self.wait_for_lock = progress, wait_for_lock
        self.data_dir = Path(data_dir)
        self.space = experiment.space(self.data_dir)  # its table first: a missing one is said before anything starts
        self.run_folder = RunFolder(out_root, experiment.config, experiment.name, seed, log, repair)
        self.folder = self.run_folder.path
        self.log = self.run_folder.log

    def execute(self) -> Summary:
        """Run (or resume) the search under the folder's lock; a finished run is skipped."""
        summary = self.run_folder.summary()
        if summary is None:
            self._check_data_size()
            check_fits(self.experiment, self.device)
            with self.run_folder.locked(self.wait_for_lock):
                summary = self.run_folder.summary()  # another process may have finished it while we waited
                if summary is None:
                    return self._execute()
        self.log(f"already finished, skipping ({self.folder})")
        return summary

    def _execute(self) -> Summary:
        cfg, folder = self.config, self.run_folder
        inputs = _device_data(str(self.data_dir), cfg.train_images, str(self.device), cfg.channels_last,
                              cfg.eval_batches * cfg.batch_size)
        configure_backends(cfg.precision, self.device)
        torch.manual_seed(self.seed)
        data = inputs.data
        searcher = build_searcher(self.experiment, self.device, data.steps_per_epoch(cfg.batch_size),
                                  (len(data.weight_half), len(data.arch_half)))
        eval_source = data.arch_half if searcher.uses_validation_set else inputs.heldout
        self.eval_batches = eval_source.fixed_batches(cfg.eval_batches, cfg.batch_size)
        folder.write_config(self._provenance(inputs.data_provenance))
        state, records = folder.restore(self.device)
        if state is not None:
            searcher.supernet.load_state_dict(state["supernet"])
            searcher.load_state_dict(state["searcher"])
            self.log(f"resuming after epoch {len(records)}/{cfg.epochs}")
        step = search_step(searcher, self.device, cfg.cuda_graphs)  # after the restore: it adapts the optimisers
        started = time.time()
        status = "done"
        epochs = list(range(len(records) + 1, cfg.epochs + 1))
        clock = RunClock(self.log, self.device, epochs, data.steps_per_epoch(cfg.batch_size),
                         device_description(self.device), self._diagnostics_due,
                         probe_seconds(searcher, self.eval_batches, cfg.hessian_method)
                         if any(map(self._diagnostics_due, epochs)) else 0.0)
        for epoch in range(len(records) + 1, cfg.epochs + 1):
            try:
                record = self._run_epoch(searcher, step, data, epoch, clock)
            except (MemoryError, RuntimeError) as exc:  # torch.OutOfMemoryError is a RuntimeError
                if not is_out_of_memory(exc):
                    raise
                raise out_of_memory(self.experiment, self.device, epoch, len(records)) from None
            records.append(record)
            if record.status == "diverged":
                folder.append(record)
                status = "diverged"
                self.log(f"diverged in epoch {epoch}: non-finite loss or parameters; stopping, last good "
                         "checkpoint kept")
                break
            folder.save_checkpoint(epoch, record, searcher.supernet.state_dict(), searcher.state_dict())
            folder.append(record)
            self._log_epoch(record, clock.after_epoch(record.epoch_seconds, record.diagnostics_seconds))
        ok = [r for r in records if r.status == "ok"]
        summary = Summary(status=status, epochs_done=len(ok),
                          lookup_coverage=sum(r.in_table for r in ok) / len(ok) if ok else None,
                          epochs=cfg.epochs, final=records[-1].to_json() if records else None,
                          seconds_this_session=round(time.time() - started, 3),
                          search_seconds=round(sum(r.epoch_seconds or 0.0 for r in records), 3))
        folder.write_summary(summary)
        return summary

    def _check_data_size(self) -> None:
        """``train_images`` and ``batch_size`` against the images a half of the split has (read from the split
        alone: before any image is loaded)."""
        cfg = self.config
        half = min(len(indices) for indices in search_split(self.data_dir)[:2])
        if cfg.train_images > half:
            raise UserError(f"bad value train_images={cfg.train_images}: a half of the split has {half} images")
        used = cfg.train_images or half
        if cfg.batch_size > used:
            raise UserError(f"bad value batch_size={cfg.batch_size}: larger than the {used} images of a half "
                            f"(train_images={cfg.train_images})")

    def _provenance(self, data: dict[str, Any]) -> dict[str, Any]:
        """Everything ``config.json`` holds besides the configuration: how it differs from its preset, the
        classes and versions that ran it, the device, the data and the diagnostics' evaluation set."""
        return {
            "config_name": self.experiment.name, "overrides": self.experiment.overrides, **self.experiment.classes(),
            "harness_version": harness.__version__, "git_commit": git_commit(), "torch_version": torch.__version__,
            "python_version": platform.python_version(), "numpy_version": np.__version__,
            "device": device_description(self.device), "data": data,
            "diagnostics": {"hessian_method": self.config.hessian_method, "eval_batches": len(self.eval_batches),
                            "eval_images": sum(len(b.labels) for b in self.eval_batches),
                            "every": self.config.diagnostics_every,
                            "eval_set": "architecture half (validation)" if self.experiment.searcher.uses_validation_set
                            else "CIFAR-10 test set (held out; the searcher has no validation set)"},
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }

    def _run_epoch(self, searcher: Darts, step_fn: StepFn, data: SearchData, epoch: int,
                   clock: RunClock) -> EpochRecord:
        cfg = self.config
        torch.manual_seed(epoch_seed(self.seed, epoch))
        searcher.supernet.train()
        weight_stats, arch_stats = EpochStats(self.device), EpochStats(self.device)
        steps = data.steps_per_epoch(cfg.batch_size)
        bar = EpochBar(steps, f"epoch {epoch}/{cfg.epochs}", self.progress, clock)
        started = time.time()
        lr = cfg.w_lr
        searcher.begin_epoch(epoch)
        for step, (weight_batch, arch_batch) in enumerate(data.epoch(self.seed, epoch, cfg.batch_size)):
            lr = searcher.set_learning_rate(epoch, step)
            with precision_context(cfg.precision, self.device):
                step_fn(weight_batch, arch_batch, weight_stats, arch_stats)
            bar.update()
            clock.after_step(step)
        searcher.end_epoch(epoch)
        bar.close()
        search_seconds = time.time() - started
        train, arch = weight_stats.read(), arch_stats.read()
        weights = searcher.derivation_weights()
        finite = (not train["nonfinite_steps"] and not arch["nonfinite_steps"]
                  and all(bool(torch.isfinite(w).all()) for w in weights))
        cell = self.space.describe(self.space.derive(weights)) if finite else CellDescription()
        due = finite and self._diagnostics_due(epoch)
        diagnostics = (epoch_diagnostics(searcher, self.eval_batches, cfg.hessian_method, self.space.discrete_weights)
                       if due else Diagnostics())
        return EpochRecord.build(
            cell, diagnostics, epoch=epoch, status="ok" if finite else "diverged",
            arch_weights=[w.detach().cpu().tolist() for w in weights] if finite else None,
            train_loss=train["loss"], train_acc=train["acc"], arch_loss=arch["loss"], arch_acc=arch["acc"],
            w_lr=lr, a_lr=cfg.a_lr, epoch_seconds=round(search_seconds, 3))

    def _diagnostics_due(self, epoch: int) -> bool:
        return bool(self.config.diagnostics_every) and epoch % self.config.diagnostics_every == 0

    def _log_epoch(self, record: EpochRecord, eta: str) -> None:
        lookup = {k: v for k, v in (record.lookup or {}).items() if v is not None}
        shown = {k: v for k, v in lookup.items() if k.endswith("test")} or lookup
        accs = " ".join(f"{k}={v:.2f}" for k, v in shown.items()) or "not in table"
        self.log(f"epoch {record.epoch}/{self.config.epochs} {record.genotype} ({record.arch_index}) {accs} "
                 f"depth={record.depth} skips={record.skip_count} train_acc={record.train_acc:.1f} "
                 f"{record.epoch_seconds:.1f}s+{record.diagnostics_seconds or 0:.1f}s {eta}")
