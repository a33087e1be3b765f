"""The files of a run folder, declared once: what a search space says of a derived cell (``CellDescription``),
the diagnostics (``Diagnostics``), the record the runner appends to ``epochs.jsonl`` (``EpochRecord``, which
carries both and the epoch's optimisation statistics), ``summary.json`` (``Summary``) and the fields of
``config.json`` that readers rely on (``StoredConfig``); and their readers, which say which file is damaged and
how (``DamagedFile``), never a traceback.

Record format 2 adds the ``format`` key to format 1 (the records written before it, which carry the same fields
and still load); format 3 adds ``decisiveness`` (``foundation.decisiveness``), which readers of older records
compute from their stored ``arch_weights`` (``analysis.runs``). Non-finite losses are kept as they happened (a diverged
epoch's NaN), so records, unlike option sets, allow them.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError, field_validator

from foundation.errors import UserError
from foundation.run_config import config_hash, with_added_fields

RECORD_FORMAT = 4
READABLE_FORMATS = (1, 2, 3, 4)
CONFIG_FORMAT = 2  # config.json: 1 = without "format", "overrides" and "searcher_class"; 2 = this version
CONFIG_FILE, RECORDS_FILE, SUMMARY_FILE = "config.json", "epochs.jsonl", "summary.json"
PerLookup = dict[str, float | None]


def seed_folder(out_root: Path, space: str, searcher: str, config_name: str, seed: int) -> Path:
    """Where one seed's run lives: ``<out>/<space>/<searcher>/<config-name>/seed-<s>/``."""
    return Path(out_root) / space / searcher / config_name / f"seed-{seed}"


class DamagedFile(UserError):
    """A run-folder file that cannot be read as what it should be: ``path`` and the ``problem``, one line."""

    def __init__(self, path: Path, problem: str) -> None:
        self.path, self.problem = Path(path), problem
        super().__init__(f"{path}: {problem}")


class StoredSchema(BaseModel):
    """Fields a record of an older version lacks read as null; keys this version no longer writes are ignored."""

    model_config = ConfigDict(extra="ignore")

    @classmethod
    def parse(cls, raw: Any, path: Path, where: str = ""):
        """The model of ``raw`` or a ``DamagedFile`` naming the first bad field."""
        if not isinstance(raw, dict):
            raise DamagedFile(path, f"{where}a JSON {type(raw).__name__} where an object was expected")
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            error = exc.errors(include_url=False)[0]
            field = ".".join(map(str, error["loc"])) or "the object"
            raise DamagedFile(path, f"{where}bad field {field}: {error['msg']}") from None


class CellDescription(StoredSchema):
    """A derived cell as its search space describes it: its identity, look-ups in the benchmark table with rank
    and regret per look-up, and the structure that explains failures (depth, skip connections)."""

    genotype: str | None = None
    arch_index: int | str | None = None  # NB201 index, NB101 hash, ...: whatever keys the space's table
    in_table: bool = False
    lookup: PerLookup | None = None
    rank_percentile: PerLookup | None = None
    regret: PerLookup | None = None
    depth: int | None = None
    skip_count: int | None = None


class Diagnostics(StoredSchema):
    """``harness.diagnostics``: null on epochs that skip them (``diagnostics_every``) or that diverged."""

    hessian_eig_max: float | None = None
    supernet_acc: float | None = None
    discrete_acc: float | None = None
    discretization_gap: float | None = None
    diagnostics_seconds: float | None = None


class Decisiveness(StoredSchema):
    """How decided the derivation weights are (``foundation.decisiveness``), one entry per decision of the space
    (``SearchSpace.decisions``) in the lists: the weight of the chosen op (for a top-k choice, the smallest kept),
    its margin to the largest weight not chosen, the entropy of the decision's weights over the log of their
    count (1 = uniform, 0 = one-hot); and their summaries. ``changed``: decisions whose choice differs from the
    previous epoch's (null at the first epoch)."""

    top_weight: list[float]
    margin: list[float]
    entropy: list[float]
    median_margin: float | None = None
    min_margin: float | None = None
    mean_entropy: float | None = None
    changed: int | None = None


class EpochRecord(CellDescription, Diagnostics):
    format: int = RECORD_FORMAT
    epoch: int
    status: Literal["ok", "diverged"]
    arch_weights: list[Any] | None = None  # the derivation weights, one nested list per architecture tensor
    decisiveness: Decisiveness | None = None  # of ``arch_weights``; null for a diverged epoch
    train_loss: float | None = None
    train_acc: float | None = None
    arch_loss: float | None = None
    arch_acc: float | None = None
    w_lr: float | None = None
    a_lr: float | None = None
    epoch_seconds: float | None = None
    # How the epoch was computed, which float32 rounding depends on (float64 records agree across all three):
    threads: list[int] | None = None  # the CPU thread counts the epoch's steps used, in order (harness.threads)
    batch_seeds: list[int] | None = None  # the seeds computed together in this epoch, this one included
    kernels: str | None = None  # the GPU, or the CPU model and the vector instructions of its kernels
    # (format 4) what the searcher reports of its own state after the epoch (``Searcher.epoch_report``): whether an
    # early stopper has stopped, a weight decay it raised; null for searchers that report nothing
    searcher_state: dict[str, float | int | bool] | None = None

    @classmethod
    def build(cls, cell: CellDescription, diagnostics: Diagnostics, **fields: Any) -> "EpochRecord":
        return cls(**cell.model_dump(), **diagnostics.model_dump(), **fields)

    def to_json(self) -> dict[str, Any]:
        return self.model_dump()

    @classmethod
    def from_json(cls, raw: Any, path: Path, where: str = "") -> "EpochRecord":
        """A stored record (format 1, 2 or 3), or a ``DamagedFile`` naming the file and what is wrong."""
        if isinstance(raw, dict):
            raw = {"format": 1, **raw}
            if raw["format"] not in READABLE_FORMATS:
                raise DamagedFile(path, f"{where}record format {raw['format']!r} is not one this version reads "
                                        f"({', '.join(map(str, READABLE_FORMATS))})")
            raw = {**raw, "format": RECORD_FORMAT}
        return cls.parse(raw, path, where)


class Summary(StoredSchema):
    """``summary.json``: written last, so its presence means the run is over."""

    format: int = RECORD_FORMAT
    status: Literal["done", "diverged"]
    epochs_done: StrictInt = Field(ge=0)
    epochs: StrictInt = Field(ge=1)
    lookup_coverage: float | None = None
    final: dict[str, Any] | None = None
    seconds_this_session: float | None = None
    search_seconds: float | None = None


def records_cover(records: list["EpochRecord"], summary: Summary) -> bool:
    """Whether the records hold every epoch the summary counts: a finished run whose records end earlier is
    incomplete (its last record is not its result)."""
    return sum(record.status == "ok" for record in records) >= summary.epochs_done


def check_nothing_after_summary(path: Path, records: list["EpochRecord"], summary: Summary) -> None:
    """Records beyond the epochs ``summary.json`` counts were appended after the run ended: damage (a
    ``DamagedFile`` naming ``path``), never results to average in."""
    done = sum(record.status == "ok" for record in records)
    if done > summary.epochs_done:
        raise DamagedFile(path, f"{done} epochs recorded where {SUMMARY_FILE} counts {summary.epochs_done}: "
                                "records were added after the run ended")


class StoredRunFields(StoredSchema):
    """The fields of ``config.json``'s configuration that readers rely on, typed (the rest is compared whole)."""

    space: StrictStr
    searcher: StrictStr
    preset: StrictStr
    epochs: StrictInt = Field(ge=1)
    dataset: StrictStr | None = None  # absent before datasets other than CIFAR-10


class StoredConfig(StoredSchema):
    """What readers of ``config.json`` rely on, typed, so that a folder whose file lacks it is damaged (named and
    skipped) rather than a crash later (the rest is provenance, shown as it is)."""

    config: dict[str, Any]
    config_name: StrictStr
    seed: StrictInt = Field(ge=0)
    # Each may be absent (older formats); present, it must be what this version writes (``_not_null``):
    data: dict[str, Any] | None = None  # provenance of the images searched on
    overrides: dict[str, Any] | None = None  # absent (format 1): recomputed from today's presets
    device: StrictStr | None = None
    seed_batch: list[StrictInt] | None = None

    @field_validator("data", "overrides", "device", "seed_batch", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("null where this version writes a value")
        return value
    space_class: str | None = None  # module:Class of the space and the searcher that made the run
    searcher_class: str | None = None

    @field_validator("config")
    @classmethod
    def _typed_fields(cls, config: dict[str, Any]) -> dict[str, Any]:
        StoredRunFields.model_validate(config)
        return with_added_fields(config)

    def misplaced(self, folder: Path) -> str | None:
        """Why ``folder`` is not the run folder this ``config.json`` describes (a folder copied, renamed or
        edited), or None: its path ends in the stored space/searcher/configuration name/seed, and a configuration
        name that carries a hash carries this configuration's."""
        expected = seed_folder(Path(), str(self.config.get("space")), str(self.config.get("searcher")),
                               self.config_name, self.seed)
        actual = Path(*Path(folder).parts[-len(expected.parts):])
        if actual != expected:
            return f"it is {actual} but its {CONFIG_FILE} describes {expected} (space/searcher/configuration/seed)"
        named = re.fullmatch(r".*-([0-9a-f]{8})", self.config_name)
        if named and named.group(1) != config_hash(self.config):
            return (f"its {CONFIG_FILE} holds another configuration than the one its name's hash "
                    f"{named.group(1)} stands for (edited?)")
        return None


S = TypeVar("S", bound=StoredSchema)


def read_json(path: Path) -> Any:
    """A JSON file of a run folder; a ``DamagedFile`` when it is not UTF-8 or not JSON."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise DamagedFile(path, "not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise DamagedFile(path, f"not JSON ({exc.msg} at line {exc.lineno})") from None


def read_json_file(path: Path, schema: type[S]) -> S:
    """A JSON file of a run folder as ``schema``; a ``DamagedFile`` when it is not UTF-8, not JSON or not that."""
    return schema.parse(read_json(path), path)


def read_records(path: Path) -> tuple[list[EpochRecord], DamagedFile | None]:
    """The records of ``epochs.jsonl`` up to the first damaged line, and that damage (None: all readable). A last
    line without its newline is a kill mid-append, not damage: it is left out."""
    records: list[EpochRecord] = []
    if not Path(path).exists():
        return records, None
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.endswith(b"\n"):
                break
            where = f"line {number}: "
            try:
                raw = json.loads(line.decode("utf-8"))
            except UnicodeDecodeError:
                return records, DamagedFile(path, f"{where}not UTF-8 text")
            except json.JSONDecodeError as exc:
                return records, DamagedFile(path, f"{where}not JSON ({exc.msg})")
            try:
                record = EpochRecord.from_json(raw, path, where)
            except DamagedFile as damage:
                return records, damage
            if record.epoch != len(records) + 1:
                return records, DamagedFile(path, f"{where}epoch {record.epoch} where {len(records) + 1} was due")
            records.append(record)
    return records, None


def torn_tail(path: Path) -> bool:
    """Whether ``epochs.jsonl`` ends in a line without its newline (a kill mid-append), which ``read_records``
    leaves out and an append must not continue."""
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        return False
    with open(path, "rb") as handle:
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) != b"\n"


def read_summary(folder: Path) -> Summary | None:
    """``summary.json`` of a run folder; None while the run is not over."""
    path = Path(folder) / SUMMARY_FILE
    return read_json_file(path, Summary) if path.is_file() else None
