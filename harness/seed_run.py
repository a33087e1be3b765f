"""One seed of a batch, on its folder's side: where it resumes from, and what it keeps of each epoch.

Resume reconciliation (``restore_together``): seeds resumed from different epochs (a kill between their
checkpoints) go back to the earliest one's epoch, so the batch computes what the uninterrupted batch did. The
recorder (``SeedRun.keep``): an ok epoch is checkpointed (the seed's slice of the batch), appended, tracked and
logged; a diverged one is appended and tracked, and the seed stops alone. ``SeedRun.finish`` writes the summary.
"""
from __future__ import annotations

import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch

from foundation.records import EpochRecord, Summary
from harness.run_folder import RunFolder
from harness.tracking import Tracker, open_trackers
from searchers.searcher import Searcher
from searchers.seeds import select_seed


@dataclass
class SeedRun:
    """One seed of a batch: its folder, what it resumes from, its records so far, whether it still searches."""

    seed: int
    folder: RunFolder
    state: dict[str, Any] | None
    records: list[EpochRecord]
    status: str = "running"
    trackers: list[Tracker] = field(default_factory=list)

    def open_trackers(self, backends: Sequence[str], config: dict[str, Any], closing: ExitStack) -> None:
        self.trackers = open_trackers(backends, self.folder.path, self.folder.tag, config, self.records)
        for tracker in self.trackers:
            closing.callback(tracker.close)

    def keep(self, record: EpochRecord, searcher: Searcher, index: int, epochs: int, eta: str, alone: bool) -> None:
        """The epoch's record of this seed (``index`` in the batch) kept as its folder's next epoch."""
        self.records.append(record)
        if record.status == "diverged":
            self.status = "diverged"
            self.folder.log(f"diverged in epoch {record.epoch}: non-finite loss or parameters; stopping, last good "
                            "checkpoint kept" + ("" if alone else "; the other seeds go on"))
        else:
            self.folder.save_checkpoint(record.epoch, record, searcher.supernet.seed_state_dict(index),
                                        select_seed(searcher.state_dict(), index))
        self.folder.append(record)
        for tracker in self.trackers:
            tracker.log(record)
        if record.status == "ok":
            self.folder.log(epoch_line(record, epochs, eta))

    def finish(self, epochs: int, started: float) -> Summary:
        """The summary of the seed's run, written: its presence means the run is over."""
        ok = [r for r in self.records if r.status == "ok"]
        summary = Summary(status="diverged" if self.status == "diverged" else "done", epochs_done=len(ok),
                          lookup_coverage=sum(r.in_table for r in ok) / len(ok) if ok else None,
                          epochs=epochs, final=self.records[-1].to_json() if self.records else None,
                          seconds_this_session=round(time.time() - started, 3),
                          search_seconds=round(sum(r.epoch_seconds or 0.0 for r in self.records), 3))
        self.folder.write_summary(summary)
        return summary


def restore_together(folders: list[RunFolder], device: torch.device, epochs: int) -> list[SeedRun]:
    """Each folder's newest verified checkpoint and records; the seeds ahead step back to the earliest one's
    epoch (a seed without a checkpoint there stays behind: it runs in a batch of its own)."""
    restored = []
    for folder in folders:
        state, records = folder.restore(device)
        if state is not None:
            folder.log(f"resuming after epoch {len(records)}/{epochs}")
        restored.append(SeedRun(folder.seed, folder, state, records))
    behind = min(len(seed.records) for seed in restored)
    for seed in restored:
        if len(seed.records) > behind:
            seed.state, seed.records = seed.folder.restore(device, at_most=behind)
            seed.folder.log(f"continuing with the batch from epoch {len(seed.records)}")
    return restored


def epoch_line(record: EpochRecord, epochs: int, eta: str) -> str:
    """The log line of a finished epoch: the derived cell, its test look-ups, structure, decisiveness, times."""
    lookup = {k: v for k, v in (record.lookup or {}).items() if v is not None}
    shown = {k: v for k, v in lookup.items() if k.endswith("test")} or lookup
    accs = " ".join(f"{k}={v:.2f}" for k, v in shown.items()) or "not in table"
    margin = "" if record.decisiveness is None else f" margin={record.decisiveness.median_margin:.3f}"
    return (f"epoch {record.epoch}/{epochs} {record.genotype} ({record.arch_index}) {accs} depth={record.depth} "
            f"skips={record.skip_count}{margin} train_acc={record.train_acc:.1f} "
            f"{record.epoch_seconds:.1f}s+{record.diagnostics_seconds or 0:.1f}s {eta}")
