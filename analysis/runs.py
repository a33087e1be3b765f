"""Run folders as data: every ``seed-<s>/`` under the given roots, with its configuration, typed records and
status, read with the run-folder format's own readers (``foundation.records``).

A run is *done* (``summary.json`` says done), *diverged* (it stopped on non-finite numbers) or *incomplete*
(no summary: still running, killed, or cut off by a time limit; or records that end before the summary's epoch
count, ``records_cover``). Reports average only done runs; the others are listed as what they are. A folder
whose ``config.json`` cannot be read is reported and skipped, never guessed.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Any, Callable

from foundation.decisiveness import of_weights
from foundation.errors import UserError
from foundation.records import (
    CONFIG_FILE,
    RECORDS_FILE,
    SUMMARY_FILE,
    DamagedFile,
    EpochRecord,
    StoredConfig,
    Summary,
    check_nothing_after_summary,
    read_json,
    read_records,
    read_summary,
    records_cover,
)
from foundation.run_config import EXECUTION_FIELDS, overrides, preset_config

DATA_SOURCES = {"official": "official CIFAR-10", "jpeg_q75": "CIFAR-10 JPEG q75 (lossy)"}


@dataclass(frozen=True)
class Run:
    folder: Path
    meta: dict[str, Any]  # config.json
    records: tuple[EpochRecord, ...]
    summary: Summary | None

    @property
    def config(self) -> dict[str, Any]:
        return self.meta["config"]

    @property
    def space(self) -> str:
        return self.config["space"]

    @property
    def searcher(self) -> str:
        return self.config["searcher"]

    @property
    def config_name(self) -> str:
        return self.meta["config_name"]

    @property
    def seed(self) -> int:
        return self.meta["seed"]

    @property
    def epochs(self) -> int:
        return self.config["epochs"]

    @property
    def dataset(self) -> str:
        """The dataset searched on (runs from before the setting existed searched on CIFAR-10)."""
        return self.config.get("dataset") or (self.meta.get("data") or {}).get("dataset") or "cifar10"

    @property
    def scope(self) -> str:
        """The space, with the dataset searched on when it is not the space's default (``nb201-cifar100``):
        figures are drawn per scope."""
        default = self.space_class.datasets[0] if self.space_class is not None else "cifar10"
        return self.space if self.dataset == default else f"{self.space}-{self.dataset}"

    @property
    def setting(self) -> str:
        """The configuration's name without the dataset (``paper-cifar100-<hash>`` -> ``paper-<hash>``; the hash
        leaves the dataset out): one setting's searches on each dataset are one row of a per-dataset table."""
        marker = f"{self.config.get('preset')}-{self.dataset}"
        if self.config_name == marker or self.config_name.startswith(marker + "-"):
            return self.config.get("preset") + self.config_name[len(marker):]
        return self.config_name

    @property
    def status(self) -> str:
        """done, diverged, or incomplete: no summary, or records that end before the summary's epoch count."""
        if self.summary is None or not records_cover(list(self.records), self.summary):
            return "incomplete"
        return self.summary.status

    @property
    def group(self) -> tuple[str, str, str]:
        """Runs of one configuration differ only by seed: they are averaged together."""
        return self.space, self.searcher, self.config_name

    @property
    def label(self) -> str:
        """Searcher, preset and what was changed from the preset but the dataset (``Run.scope`` says it):
        ``sd_darts (smoke, warmup_epochs=0)``."""
        changed = "".join(f", {key}={value}" for key, value in sorted(self.overrides.items()) if key != "dataset")
        return f"{self.searcher} ({self.config.get('preset', self.config_name)}{changed})"

    @property
    def final(self) -> EpochRecord | None:
        """The last finished epoch's record of a done run."""
        return self.records[-1] if self.status == "done" and self.records else None

    def final_lookup(self, key: str) -> float | None:
        """The done run's final look-up ``key`` (None: not done, or not looked up)."""
        return (self.final.lookup or {}).get(key) if self.final is not None else None

    @property
    def data_source(self) -> str:
        source = self.meta.get("data", {}).get("source", "unknown")
        return DATA_SOURCES.get(source, source)

    @property
    def device(self) -> str:
        return self.meta.get("device", "unknown")

    @property
    def wall_seconds(self) -> float:
        """Search and diagnostics time of the recorded epochs, as the runner measured them. Seeds computed
        together share their epochs' time: each seed of a batch records the whole batch's."""
        return sum((r.epoch_seconds or 0.0) + (r.diagnostics_seconds or 0.0) for r in self.records)

    @property
    def seeds_batched(self) -> int:
        """How many seeds were computed together with this one (itself included)."""
        return len(self.meta.get("seed_batch") or [self.seed])

    @cached_property
    def overrides(self) -> dict[str, Any]:
        """Run fields and searcher options that differ from the run's preset (``--epochs``, ``--set``), as stored
        in ``config.json`` when the run was made. Folders of config format 1 did not store them: they are
        recomputed from today's presets when the run's space and searcher still resolve by name."""
        if "overrides" in self.meta:
            return self.meta["overrides"]
        from benchmarks import get_space
        from searchers import get_searcher

        try:
            preset = preset_config(get_space(self.space), get_searcher(self.searcher), self.config["preset"])
        except (UserError, KeyError):
            return {"config": self.config_name}
        return overrides(self.config, json.loads(json.dumps(preset.to_dict())))  # as stored: tuples are lists

    @cached_property
    def space_class(self):
        """The run's ``SearchSpace`` class (by name, else by the class ``config.json`` records), or None when
        neither resolves here (a plug-in not installed in this environment)."""
        from benchmarks import get_space

        return _first_resolving(get_space, (self.space, self.meta.get("space_class")))

    @cached_property
    def searcher_class(self):
        """The run's searcher class, resolved as ``space_class``."""
        from searchers import get_searcher

        return _first_resolving(get_searcher, (self.searcher, self.meta.get("searcher_class")))

    @property
    def diagnosed_network(self) -> str | None:
        """What the Hessian and supernet accuracy of its records were taken on (``Searcher.diagnosed_network``;
        ``untrained``: not comparable with the DARTS family's), or None when the searcher does not resolve here."""
        return None if self.searcher_class is None else self.searcher_class.diagnosed_network

    @property
    def paper_protocol(self) -> bool:
        """Made with the paper preset, changed at most in its number of epochs (the TSE paper's 150-epoch row
        is the paper protocol run longer), its dataset (a per-dataset protocol's searches) and in how it was
        executed or observed (``EXECUTION_FIELDS``). Only such runs are compared with published numbers in
        ``--check``, each with the columns of its dataset."""
        return (self.config.get("preset") == "paper"
                and set(self.overrides) <= {"epochs", "dataset", *EXECUTION_FIELDS})

    def series(self, key: str, lookup: str | None = None) -> list[tuple[int, float]]:
        """``(epoch, value)`` of a record field (or of one entry of a per-look-up field such as ``lookup`` or
        ``regret``, or of a field of ``decisiveness``) over the ok epochs that have it."""
        points = []
        for record in self.records:
            value = getattr(record, key) if record.status == "ok" else None
            if lookup is not None and value is not None:
                value = value.get(lookup) if isinstance(value, dict) else getattr(value, lookup)
            if value is not None:
                points.append((record.epoch, float(value)))
        return points


def _first_resolving(resolve: Callable[[str], Any], specs: tuple[str | None, ...]) -> Any:
    """The class the first resolvable spec names (a registered name, or ``package.module:Class``), else None."""
    for spec in filter(None, specs):
        try:
            return resolve(spec)
        except UserError:
            continue
    return None


def read_runs(roots: list[Path], warn: Callable[[str], None] | None = None,
              skipped: list[Path] | None = None) -> list[Run]:
    """Every run folder (a folder holding ``config.json``) under ``roots``, sorted by group and seed. A folder
    with a damaged file is skipped (added to ``skipped``), saying which file and why; a finished run whose records
    end before its summary's epoch count is reported incomplete, with a warning (its last record is not its
    result)."""
    say = warn or (lambda message: None)
    runs: dict[Path, Run] = {}
    for root in roots:
        if not Path(root).is_dir():
            raise UserError(f"results folder {root} " + ("is a file" if Path(root).exists() else "does not exist"))
        for config_path in sorted(Path(root).rglob(CONFIG_FILE)):
            folder = config_path.parent.resolve()
            try:
                run = _load_run(folder)
            except (DamagedFile, OSError) as exc:
                say(f"skipping {folder}: {exc}")
                if skipped is not None:
                    skipped.append(folder)
                continue
            if run.summary is not None and run.status == "incomplete":
                say(f"{folder}: {RECORDS_FILE} ends at epoch {len(run.records)} but {SUMMARY_FILE} says "
                    f"{run.summary.epochs_done} epochs were done; reported as incomplete")
            if run.space_class is None:
                say(f"{folder}: space {run.space!r} does not load here (a plug-in not installed, or broken); its "
                    "figures use defaults and older records get no decisiveness")
            runs[folder] = run
    return sorted(runs.values(), key=lambda run: (*run.group, run.seed, str(run.folder)))


def _load_run(folder: Path) -> Run:
    meta = read_json(folder / CONFIG_FILE)
    stored = StoredConfig.parse(meta, folder / CONFIG_FILE)
    for key in ("space", "searcher"):
        if not isinstance(stored.config.get(key), str):
            raise DamagedFile(folder / CONFIG_FILE, f"bad field config.{key}: a name was expected")
    problem = stored.misplaced(folder)
    if problem is not None:
        raise DamagedFile(folder / CONFIG_FILE, problem)
    records, damage = read_records(folder / RECORDS_FILE)
    if damage is not None:
        raise damage
    summary = read_summary(folder)
    if summary is not None:
        check_nothing_after_summary(folder / RECORDS_FILE, records, summary)
    run = Run(folder, meta, tuple(records), summary)
    return replace(run, records=_with_decisiveness(run.records, run.space_class))


def _with_decisiveness(records: tuple[EpochRecord, ...], space_class: Any) -> tuple[EpochRecord, ...]:
    """Records written before format 3 carry no decisiveness: computed from their stored weights as the runner
    computes it (left null when the run's space does not resolve here)."""
    if space_class is None or all(record.decisiveness for record in records):
        return records
    filled, previous = [], None
    for record in records:
        if record.decisiveness is None and record.arch_weights:
            record = record.model_copy(update={"decisiveness": of_weights(space_class.decisions,
                                                                          record.arch_weights, previous)})
        previous = record.arch_weights
        filled.append(record)
    return tuple(filled)
