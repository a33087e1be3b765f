"""A run folder (``foundation.records``: its place, file names and formats) as the runner writes it, by one
process at a time (``.lock``, ``harness.lock``), validated whenever it is read.

- ``config.json``: the resolved configuration, its overrides of the preset, the classes and versions that made
  it, the data it searched on (format ``CONFIG_FORMAT``); written once, compared on every resume (the same
  configuration, and the same data: another split or CIFAR-10 copy would continue a search on other images).
- ``epochs.jsonl``: one ``EpochRecord`` per finished epoch, appended, flushed and fsynced.
- ``checkpoint-<epoch>.pt`` (the last two) and ``checkpoints.json``: ``harness.checkpoints``. Each checkpoint
  also carries its epoch's record, so a kill between checkpoint and append loses nothing: ``restore``
  reconciles the records with the newest checkpoint that verifies.
- ``summary.json``: written last; its presence means the run is over.

A damaged file (not UTF-8, not JSON, not the declared structure) is one line naming it and the way forward:
``harness run --repair`` rebuilds what can be derived (``config.json`` from the command's configuration, the
folder's name being its hash; ``summary.json`` and the records after the damage by re-running from the newest
consistent checkpoint) and otherwise starts the run over; nothing is guessed.
"""
from __future__ import annotations

import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import torch

from foundation.atomic import append_jsonl, atomic_write_json, rewrite_jsonl
from foundation.errors import UserError
from foundation.records import (
    CONFIG_FILE,
    CONFIG_FORMAT,
    RECORDS_FILE,
    SUMMARY_FILE,
    DamagedFile,
    EpochRecord,
    StoredConfig,
    Summary,
    check_nothing_after_summary,
    read_json_file,
    read_records,
    records_cover,
    seed_folder,
    torn_tail,
)
from foundation.run_config import RunConfig
from harness.checkpoints import CheckpointStore
from harness.lock import RunFolderLock
from harness.log import Log

CHECKPOINT_FORMAT = 1
DATA_IDENTITY = ("dataset", "source", "source_sha256", "split", "images_per_half")  # what makes "the same data"
CONFIG_REPAIR = "rewrites it from this command's configuration (the folder's name is its hash)"


def _repairable(damage: DamagedFile, action: str) -> UserError:
    return UserError(f"{damage}; `harness run ... --repair` {action}, or move the run folder away")


class RunFolder:
    """``classes``: the space's and the searcher's ``module:Class`` (``Experiment.classes``), part of the run's
    identity with its configuration and seed: a folder made by another class of the same name is not this run."""

    def __init__(self, out_root: Path, config: RunConfig, config_name: str, seed: int, classes: dict[str, str],
                 log: Log, repair: bool = False) -> None:
        self.config, self.seed, self.classes, self.repair = config, seed, classes, repair
        self.path = seed_folder(out_root, config.space, config.searcher, config_name, seed)
        if self.path.exists() and not self.path.is_dir():
            raise UserError(f"{self.path} is a file where a run folder belongs; move it away or use another --out")
        self.tag = f"{config.space}/{config.searcher}/{config_name} seed {seed}"
        self.log = lambda message: log(f"[{self.tag}] {message}")
        self._said: set[str] = set()
        self.config_path = self.path / CONFIG_FILE
        self.records_path = self.path / RECORDS_FILE
        self.summary_path = self.path / SUMMARY_FILE
        self.checkpoints = CheckpointStore(self.path)

    def summary(self) -> Summary | None:
        """The finished run's summary, None while it is not finished (or, repairing, when the summary or the
        records it sums up are damaged: the run is then finished again from its checkpoints)."""
        if not self.summary_path.is_file():
            return None
        try:
            self.check_identity(read_json_file(self.config_path, StoredConfig))
        except DamagedFile as damage:
            if self.repair:
                return None  # ``write_config`` rewrites it
            raise _repairable(damage, CONFIG_REPAIR) from None
        try:
            summary = read_json_file(self.summary_path, Summary)
            records, damage = read_records(self.records_path)
            if damage is not None:
                raise damage
            check_nothing_after_summary(self.records_path, records, summary)
            if not records_cover(records, summary):
                raise DamagedFile(self.records_path, f"{len(records)} records where summary.json counts "
                                                     f"{summary.epochs_done} epochs")
            return summary
        except DamagedFile as damage:
            if self.repair:
                self.log_once(f"{damage}; finishing the run again from its checkpoints")
                return None
            raise _repairable(damage, "finishes the run again from its checkpoints") from None

    def log_once(self, message: str) -> None:
        """A message the folder's checks may meet again (``summary`` is read before and after taking the lock)."""
        if message not in self._said:
            self._said.add(message)
            self.log(message)

    @contextmanager
    def locked(self, wait: bool) -> Iterator[None]:
        with RunFolderLock(self.path, wait, self.log):
            yield

    def remove_if_unstarted(self) -> None:
        """Remove the folder, and the parents it alone filled under the results root, when it holds no epoch
        (no record, no checkpoint): a run refused before it started leaves nothing that reads as a run."""
        if not self.path.is_dir() or any(self.path.glob("checkpoint*")) or read_records(self.records_path)[0]:
            return
        shutil.rmtree(self.path, ignore_errors=True)
        for parent in list(self.path.parents)[:3]:  # config name, searcher, space
            try:
                parent.rmdir()
            except OSError:
                break

    def write_summary(self, summary: Summary) -> None:
        atomic_write_json(self.summary_path, summary.model_dump())

    def write_config(self, meta: dict[str, Any]) -> None:
        """``config.json`` on a new folder; on an existing one, a check that it holds the same configuration and
        was searched on the same data."""
        path = self.config_path
        document = {"format": CONFIG_FORMAT, "config": self.config.to_dict(), "seed": self.seed, **meta}
        if path.is_file():
            try:
                stored = read_json_file(path, StoredConfig)
            except DamagedFile as damage:
                if not self.repair:
                    raise _repairable(damage, CONFIG_REPAIR) from None
                self.log(f"{damage}; rewritten from this command's configuration")
                atomic_write_json(path, document)
                return
            self.check_identity(stored)
            self._check_same_data(stored.data or {}, meta["data"])
            return
        atomic_write_json(path, document)

    def check_identity(self, stored: StoredConfig) -> None:
        """That the folder is this run's: where its ``config.json`` says it belongs (not copied or renamed from
        another seed's), with this configuration, made by these classes."""
        problem = stored.misplaced(self.path)
        if problem is not None:
            raise UserError(f"run folder {self.path}: {problem}; move it away or use another --out")
        if stored.config != self.config.to_dict():
            raise UserError(f"run folder {self.path} holds a different configuration; use another --out")
        for key, current in self.classes.items():
            made_by = getattr(stored, key)
            if made_by is not None and made_by != current:
                raise UserError(f"run folder {self.path} was made by {made_by}, not {current} (another class of the "
                                "same name); use another --out")

    def _check_same_data(self, stored: dict[str, Any], current: dict[str, Any]) -> None:
        differing = [key for key in DATA_IDENTITY if key in stored and stored[key] != current.get(key)]
        if differing:
            shown = lambda data: ", ".join(f"{key}={data.get(key)}" for key in differing)  # noqa: E731
            raise UserError(f"run folder {self.path} was searched on other data ({shown(stored)}) than this "
                            f"command reads ({shown(current)}); use the data directory it was made with, or "
                            "another --out")

    def append(self, record: EpochRecord) -> None:
        append_jsonl(self.records_path, record.to_json())

    def save_checkpoint(self, epoch: int, record: EpochRecord, supernet: dict, searcher: dict) -> None:
        self.checkpoints.save({"format": CHECKPOINT_FORMAT, "epoch": epoch, "record": record.to_json(),
                               "supernet": supernet, "searcher": searcher}, epoch)

    def restore(self, device: torch.device,
                at_most: int | None = None) -> tuple[dict[str, Any] | None, list[EpochRecord]]:
        """The newest checkpoint that verifies (falling back to the previous one, said in the log, when the newest
        is corrupt), of epoch ``at_most`` or before when given, and the records of the epochs it covers,
        rewriting ``epochs.jsonl`` to match."""
        self.checkpoints.remove_stale_temp_files()
        records, damage = read_records(self.records_path)
        if damage is not None and not self.repair:
            raise _repairable(damage, f"keeps the {len(records)} records before it and re-runs the epochs after "
                                      "them") from None
        try:
            # the checkpoint's own record completes the records before it: no newer one than that can be used
            newest = len(records) + 1 if at_most is None else min(len(records) + 1, at_most)
            state = self.checkpoints.load(device, self.log, max_epoch=newest) if newest else None
        except DamagedFile as broken:
            if not self.repair:
                raise _repairable(broken, "starts the run over (its checkpoints cannot be trusted)") from None
            self.log(f"{broken}; starting the run over")
            self.checkpoints.clear()
            state = None
        if state is None:
            kept: list[EpochRecord] = []
        else:
            if state.get("format") != CHECKPOINT_FORMAT:
                raise UserError(f"checkpoint in {self.path} has format {state.get('format')!r}, "
                                f"expected {CHECKPOINT_FORMAT}")
            kept = records[:state["epoch"] - 1] + [EpochRecord.from_json(state["record"], self.path / "checkpoint")]
        if damage is not None:
            self.log(f"{damage}; kept {len(kept)} epochs, re-running the rest")
        if ([r.to_json() for r in kept] != [r.to_json() for r in records] or damage is not None
                or torn_tail(self.records_path)):
            rewrite_jsonl(self.records_path, [r.to_json() for r in kept])
        return state, kept
