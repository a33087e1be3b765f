"""Run orchestration: one folder per (config, seed), the epoch loop, per-epoch records, checkpoints, resume.

Folder: ``<out>/<space>/<searcher>/<config-name>/seed-<s>/`` holding ``config.json``, ``epochs.jsonl`` (one
record per finished epoch, fsynced), the last two checkpoints with a verifying manifest (``harness.checkpoints``,
after every epoch) and ``summary.json`` (last), written by one process at a time (``.lock``, ``harness.lock``).

Exact resume: everything random in an epoch is seeded by (seed, epoch) — data order and augmentation by
``data_stream.epoch_generator``, the global torch generator at the start of each epoch — and the checkpoint
holds the supernet (BN running statistics included), both optimisers and the searcher's extra state. An epoch
interrupted at any moment is redone from the last checkpoint and yields the record it would have yielded.
The checkpoint also carries its epoch's record, so a kill between checkpoint and append loses nothing.
"""
from __future__ import annotations

import json
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

import harness
from analysis.diagnostics import epoch_diagnostics
from benchmarks import get_space
from benchmarks.cifar10 import load_cifar10, search_split
from benchmarks.data_stream import DeviceImages, SearchData
from harness.atomic import append_jsonl, atomic_write_json, read_jsonl, rewrite_jsonl
from harness.checkpoints import CheckpointStore
from harness.config import RunConfig, config_name
from harness.errors import UserError
from harness.graphed import StepFn, search_step
from harness.lock import RunFolderLock
from searchers import get_searcher
from searchers.base import EpochStats, OptimConfig, SearchContext, Searcher

CHECKPOINT_FORMAT = 1
DIAGNOSTICS_KEYS = ("hessian_eig_max", "supernet_acc", "discrete_acc", "discretization_gap", "diagnostics_seconds")
Log = Callable[[str], None]


def stderr_log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def resolve_device(name: str | None) -> torch.device:
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in ("cpu", "cuda") and not name.startswith("cuda:"):
        raise UserError(f"unknown device {name!r} (use cpu or cuda)")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device {name!r} requested but no CUDA GPU is available to torch {torch.__version__}")
    return torch.device(name)


def device_description(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(harness.__file__).parent, capture_output=True,
                             text=True, timeout=5)
        commit = out.stdout.strip()
        return commit if len(commit) == 40 else None
    except (OSError, subprocess.SubprocessError):
        return None


def precision_context(precision: str, device: torch.device):
    """bf16 autocast around a whole search step (forward and backward), or nothing for fp32/tf32."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def configure_backends(precision: str, device: torch.device) -> None:
    """fp32 means fp32: cuDNN's default TF32 convolutions are allowed only with ``precision=tf32``.
    cuDNN autotuning is on (batch shapes are fixed within an epoch)."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cudnn.allow_tf32 = precision == "tf32"
        torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"


def epoch_seed(seed: int, epoch: int) -> int:
    return (seed * 7919 + epoch * 104729) % (2**31)


def build_searcher(config: RunConfig, device: torch.device, steps_per_epoch: int, half_sizes: tuple[int, int]) -> Searcher:
    """The configured supernet on ``device`` (initialised from the current torch seed) and its searcher."""
    space = get_space(config.space)
    layout = torch.channels_last if config.channels_last else torch.contiguous_format
    supernet = space.build_supernet(config.channels, config.cells_per_stage,
                                    config.track_running_stats).to(device, memory_format=layout)
    optim = OptimConfig(**{f: getattr(config, f) for f in OptimConfig.__dataclass_fields__})
    context = SearchContext(steps_per_epoch, half_sizes, space.num_classes)
    return get_searcher(config.searcher)(supernet, optim, context, dict(config.searcher_options))


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
    """One search of one config with one seed, resumable from its folder."""

    def __init__(self, config: RunConfig, seed: int, out_root: Path, data_dir: Path, device: torch.device,
                 log: Log = stderr_log, progress: bool = False, wait_for_lock: bool = False) -> None:
        self.config, self.seed, self.device, self.log, self.progress = config, seed, device, log, progress
        self.wait_for_lock = wait_for_lock
        self.searcher_cls = get_searcher(config.searcher)
        self.space = get_space(config.space)(data_dir)
        self.data_dir = Path(data_dir)
        self.name = config_name(config)
        self.folder = Path(out_root) / config.space / config.searcher / self.name / f"seed-{seed}"
        self.tag = f"{config.space}/{config.searcher}/{self.name} seed {seed}"

    @property
    def summary_path(self) -> Path:
        return self.folder / "summary.json"

    def finished(self) -> bool:
        return self.summary_path.is_file()

    def execute(self) -> dict[str, Any]:
        """Run (or resume) the search under the folder's lock; a finished run is skipped."""
        if not self.finished():
            with RunFolderLock(self.folder, self.wait_for_lock, lambda m: self.log(f"[{self.tag}] {m}")):
                if not self.finished():  # another process may have finished it while we waited for the lock
                    return self._execute()
        self.log(f"[{self.tag}] already finished, skipping ({self.folder})")
        return json.loads(self.summary_path.read_text())

    def _execute(self) -> dict[str, Any]:
        cfg = self.config
        inputs = _device_data(str(self.data_dir), cfg.train_images, str(self.device), cfg.channels_last,
                              cfg.eval_batches * cfg.batch_size)
        configure_backends(self.config.precision, self.device)
        torch.manual_seed(self.seed)
        data = inputs.data
        searcher = build_searcher(cfg, self.device, data.steps_per_epoch(cfg.batch_size),
                                  (len(data.weight_half), len(data.arch_half)))
        eval_source = data.arch_half if searcher.uses_validation_set else inputs.heldout
        self.eval_batches = eval_source.fixed_batches(cfg.eval_batches, cfg.batch_size)
        self._write_config(inputs.data_provenance)
        supernet = searcher.supernet
        done, records = self._restore(searcher)
        step = search_step(searcher, self.device, cfg.cuda_graphs)  # after the restore: it adapts the optimisers
        if done:
            self.log(f"[{self.tag}] resuming after epoch {done}/{cfg.epochs}")
        started = time.time()
        status = "done"
        for epoch in range(done + 1, cfg.epochs + 1):
            record = self._run_epoch(searcher, step, inputs.data, epoch, estimate=(epoch == done + 1))
            if record["status"] == "diverged":
                append_jsonl(self.folder / "epochs.jsonl", record)
                records.append(record)
                status = "diverged"
                self.log(f"[{self.tag}] diverged in epoch {epoch}: non-finite loss or parameters; "
                         "stopping, last good checkpoint kept")
                break
            self._checkpoint(supernet, searcher, epoch, record)
            append_jsonl(self.folder / "epochs.jsonl", record)
            records.append(record)
            self._log_epoch(record)
        ok = [r for r in records if r["status"] == "ok"]
        summary = {"status": status, "epochs_done": len(ok),
                   "lookup_coverage": sum(bool(r["in_table"]) for r in ok) / len(ok) if ok else None,
                   "epochs": cfg.epochs, "final": records[-1] if records else None,
                   "seconds_this_session": round(time.time() - started, 3),
                   "search_seconds": round(sum(r["epoch_seconds"] for r in records), 3)}
        atomic_write_json(self.summary_path, summary)
        return summary

    # --- pieces --------------------------------------------------------------------------------------------
    def _write_config(self, provenance: dict[str, Any]) -> None:
        path = self.folder / "config.json"
        if path.is_file():
            stored = json.loads(path.read_text())
            if stored.get("config") != self.config.to_dict():
                raise UserError(f"run folder {self.folder} holds a different configuration; use another --out")
            return
        atomic_write_json(path, {
            "config": self.config.to_dict(), "config_name": self.name, "seed": self.seed,
            "harness_version": harness.__version__, "git_commit": git_commit(), "torch_version": torch.__version__,
            "python_version": platform.python_version(), "numpy_version": np.__version__,
            "device": device_description(self.device), "data": provenance,
            "diagnostics": {"hessian_method": self.config.hessian_method, "eval_batches": len(self.eval_batches),
                            "eval_images": sum(len(b.labels) for b in self.eval_batches), "every": self.config.diagnostics_every,
                            "eval_set": "architecture half (validation)" if self.searcher_cls.uses_validation_set
                            else "CIFAR-10 test set (held out; the searcher has no validation set)"},
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        })

    def _restore(self, searcher: Searcher) -> tuple[int, list[dict]]:
        """Epochs done and their records, reconciling ``epochs.jsonl`` with the newest checkpoint that verifies
        (falling back to the previous one, said in the log, when the newest is corrupt)."""
        store = CheckpointStore(self.folder)
        store.remove_stale_temp_files()
        records_path = self.folder / "epochs.jsonl"
        on_disk = read_jsonl(records_path)
        state = store.load(self.device, lambda message: self.log(f"[{self.tag}] {message}"))
        if state is None:
            if on_disk or records_path.exists():
                rewrite_jsonl(records_path, [])
            return 0, []
        if state.get("format") != CHECKPOINT_FORMAT:
            raise UserError(f"checkpoint in {self.folder} has format {state.get('format')!r}, "
                            f"expected {CHECKPOINT_FORMAT}")
        searcher.supernet.load_state_dict(state["supernet"])
        searcher.load_state_dict(state["searcher"])
        done = state["epoch"]
        records = [r for r in on_disk if r["epoch"] < done] + [state["record"]]
        if [r["epoch"] for r in records] != list(range(1, done + 1)):
            raise UserError(f"records in {records_path} do not cover epochs 1..{done}; the run folder is damaged")
        if records != on_disk:
            rewrite_jsonl(records_path, records)
        return done, records

    def _checkpoint(self, supernet: torch.nn.Module, searcher: Searcher, epoch: int, record: dict) -> None:
        state = {"format": CHECKPOINT_FORMAT, "epoch": epoch, "record": record,
                 "supernet": supernet.state_dict(), "searcher": searcher.state_dict()}
        CheckpointStore(self.folder).save(state, epoch)

    def _run_epoch(self, searcher: Searcher, step_fn: StepFn, data: SearchData, epoch: int,
                   estimate: bool) -> dict[str, Any]:
        cfg = self.config
        torch.manual_seed(epoch_seed(self.seed, epoch))
        searcher.supernet.train()
        weight_stats, arch_stats = EpochStats(self.device), EpochStats(self.device)
        steps = data.steps_per_epoch(cfg.batch_size)
        bar = _progress(steps, f"epoch {epoch}/{cfg.epochs}", self.progress)
        started = time.time()
        lr = cfg.w_lr
        searcher.begin_epoch(epoch)
        for step, (weight_batch, arch_batch) in enumerate(data.epoch(self.seed, epoch, cfg.batch_size)):
            lr = searcher.set_learning_rate(epoch, step)
            with precision_context(cfg.precision, self.device):
                step_fn(weight_batch, arch_batch, weight_stats, arch_stats)
            bar.update(1)
            if estimate and step == min(4, steps - 1):
                self._log_estimate(started, step + 1, steps, cfg.epochs - epoch + 1)
        searcher.end_epoch(epoch)
        bar.close()
        search_seconds = time.time() - started
        train, arch = weight_stats.read(), arch_stats.read()
        weights = searcher.derivation_weights()
        finite = (not train["nonfinite_steps"] and not arch["nonfinite_steps"]
                  and all(bool(torch.isfinite(w).all()) for w in weights))
        record: dict[str, Any] = {"epoch": epoch, "status": "ok" if finite else "diverged"}
        if finite:
            record.update(self.space.describe(self.space.derive(weights)))
            record["arch_weights"] = [w.detach().cpu().tolist() for w in weights]
        else:
            record.update({"genotype": None, "arch_index": None, "lookup": None, "in_table": False,
                           "rank_percentile": None, "regret": None})
        due = finite and cfg.diagnostics_every and epoch % cfg.diagnostics_every == 0
        record.update(epoch_diagnostics(searcher, self.eval_batches, cfg.hessian_method, self.space.discrete_weights)
                      if due else
                      dict.fromkeys(DIAGNOSTICS_KEYS))
        record.update({
            "train_loss": train["loss"], "train_acc": train["acc"], "arch_loss": arch["loss"], "arch_acc": arch["acc"],
            "w_lr": lr, "a_lr": cfg.a_lr, "epoch_seconds": round(search_seconds, 3),
        })
        return record

    def _log_estimate(self, started: float, steps_done: int, steps: int, epochs_left: int) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        per_step = (time.time() - started) / steps_done
        total = per_step * steps * epochs_left
        self.log(f"[{self.tag}] {per_step:.3f} s/step on {device_description(self.device)}: "
                 f"estimated {_duration(total)} for {epochs_left} epoch(s) of {steps} steps")

    def _log_epoch(self, record: dict[str, Any]) -> None:
        lookup = {k: v for k, v in (record["lookup"] or {}).items() if v is not None}
        shown = {k: v for k, v in lookup.items() if k.endswith("test")} or lookup
        accs = " ".join(f"{k}={v:.2f}" for k, v in shown.items()) or "not in table"
        self.log(f"[{self.tag}] epoch {record['epoch']}/{self.config.epochs} {record['genotype']} "
                 f"({record['arch_index']}) {accs} depth={record['depth']} skips={record['skip_count']} "
                 f"train_acc={record['train_acc']:.1f} {record['epoch_seconds']:.1f}s")


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int, desc: str, enabled: bool):
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, leave=False, file=sys.stderr)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"
