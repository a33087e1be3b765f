"""A run folder: ``<out>/<space>/<searcher>/<config-name>/seed-<s>/`` and every file in it, written by one
process at a time (``.lock``, ``harness.lock``).

- ``config.json``: the resolved configuration, its overrides of the preset, the classes and versions that made
  it, the data it searched on (format ``CONFIG_FORMAT``); written once, compared on every resume.
- ``epochs.jsonl``: one ``EpochRecord`` per finished epoch, appended, flushed and fsynced.
- ``checkpoint-<epoch>.pt`` (the last two) and ``checkpoints.json``: ``harness.checkpoints``. Each checkpoint
  also carries its epoch's record, so a kill between checkpoint and append loses nothing: ``restore``
  reconciles the records with the newest checkpoint that verifies.
- ``summary.json``: written last; its presence means the run is over.
"""
from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from foundation.atomic import append_jsonl, atomic_write_json, read_jsonl, rewrite_jsonl
from foundation.errors import UserError
from foundation.records import EpochRecord
from foundation.run_config import CONFIG_FORMAT, RunConfig
from harness.checkpoints import CheckpointStore
from harness.lock import RunFolderLock

CHECKPOINT_FORMAT = 1
Log = Callable[[str], None]


class RunFolder:
    def __init__(self, out_root: Path, config: RunConfig, config_name: str, seed: int, log: Log) -> None:
        self.config, self.seed = config, seed
        self.path = Path(out_root) / config.space / config.searcher / config_name / f"seed-{seed}"
        self.tag = f"{config.space}/{config.searcher}/{config_name} seed {seed}"
        self.log = lambda message: log(f"[{self.tag}] {message}")
        self.records_path = self.path / "epochs.jsonl"
        self.summary_path = self.path / "summary.json"
        self.checkpoints = CheckpointStore(self.path)

    def finished(self) -> bool:
        return self.summary_path.is_file()

    @contextmanager
    def locked(self, wait: bool) -> Iterator[None]:
        with RunFolderLock(self.path, wait, self.log):
            yield

    def read_summary(self) -> dict[str, Any]:
        return json.loads(self.summary_path.read_text())

    def write_summary(self, summary: dict[str, Any]) -> None:
        atomic_write_json(self.summary_path, summary)

    def write_config(self, meta: dict[str, Any]) -> None:
        """``config.json`` on a new folder; on an existing one, a check that it holds the same configuration."""
        path = self.path / "config.json"
        if path.is_file():
            stored = json.loads(path.read_text())
            if stored.get("config") != self.config.to_dict():
                raise UserError(f"run folder {self.path} holds a different configuration; use another --out")
            return
        atomic_write_json(path, {"format": CONFIG_FORMAT, "config": self.config.to_dict(), "seed": self.seed, **meta})

    def append(self, record: EpochRecord) -> None:
        append_jsonl(self.records_path, record.to_json())

    def save_checkpoint(self, epoch: int, record: EpochRecord, supernet: dict, searcher: dict) -> None:
        self.checkpoints.save({"format": CHECKPOINT_FORMAT, "epoch": epoch, "record": record.to_json(),
                               "supernet": supernet, "searcher": searcher}, epoch)

    def restore(self, device: torch.device) -> tuple[dict[str, Any] | None, list[EpochRecord]]:
        """The newest checkpoint that verifies (falling back to the previous one, said in the log, when the newest
        is corrupt) and the records of the epochs it covers, rewriting ``epochs.jsonl`` to match."""
        self.checkpoints.remove_stale_temp_files()
        on_disk = read_jsonl(self.records_path)
        state = self.checkpoints.load(device, self.log)
        if state is None:
            if on_disk or self.records_path.exists():
                rewrite_jsonl(self.records_path, [])
            return None, []
        if state.get("format") != CHECKPOINT_FORMAT:
            raise UserError(f"checkpoint in {self.path} has format {state.get('format')!r}, "
                            f"expected {CHECKPOINT_FORMAT}")
        done = state["epoch"]
        raw = [r for r in on_disk if r["epoch"] < done] + [state["record"]]
        if [r["epoch"] for r in raw] != list(range(1, done + 1)):
            raise UserError(f"records in {self.records_path} do not cover epochs 1..{done}; the run folder is damaged")
        records = [EpochRecord.from_json(r, f"{self.records_path} epoch {r['epoch']}") for r in raw]
        if raw != on_disk:
            rewrite_jsonl(self.records_path, [r.to_json() for r in records])
        return state, records
