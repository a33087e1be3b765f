"""The per-epoch record of a search, declared once: what a search space says of a derived cell
(``CellDescription``), the diagnostics (``Diagnostics``), and the record the runner appends to ``epochs.jsonl``
(``EpochRecord``, which carries both and the epoch's optimisation statistics).

Record format 2 adds the ``format`` key to format 1 (the records written before it, which carry the same fields
and still load). Non-finite losses are kept as they happened (a diverged epoch's NaN), so records, unlike option
sets, allow them.
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from foundation.errors import UserError

RECORD_FORMAT = 2
READABLE_FORMATS = (1, 2)
PerLookup = dict[str, float | None]


class _Schema(BaseModel):
    """Fields a record of an older version lacks read as null; keys this version no longer writes are ignored."""

    model_config = ConfigDict(extra="ignore")


class CellDescription(_Schema):
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


class Diagnostics(_Schema):
    """``analysis.diagnostics``: null on epochs that skip them (``diagnostics_every``) or that diverged."""

    hessian_eig_max: float | None = None
    supernet_acc: float | None = None
    discrete_acc: float | None = None
    discretization_gap: float | None = None
    diagnostics_seconds: float | None = None


class EpochRecord(CellDescription, Diagnostics):
    format: int = RECORD_FORMAT
    epoch: int
    status: Literal["ok", "diverged"]
    arch_weights: list[Any] | None = None  # the derivation weights, one nested list per architecture tensor
    train_loss: float | None = None
    train_acc: float | None = None
    arch_loss: float | None = None
    arch_acc: float | None = None
    w_lr: float | None = None
    a_lr: float | None = None
    epoch_seconds: float | None = None

    @classmethod
    def build(cls, cell: CellDescription, diagnostics: Diagnostics, **fields: Any) -> "EpochRecord":
        return cls(**cell.model_dump(), **diagnostics.model_dump(), **fields)

    def to_json(self) -> dict[str, Any]:
        return self.model_dump()

    @classmethod
    def from_json(cls, raw: Any, where: str) -> "EpochRecord":
        """A stored record (format 1 or 2), or a UserError naming ``where`` and what is wrong."""
        if not isinstance(raw, dict):
            raise UserError(f"{where}: a record is not a JSON object")
        raw = {"format": 1, **raw}
        if raw["format"] not in READABLE_FORMATS:
            raise UserError(f"{where}: record format {raw['format']!r} is not one this version reads "
                            f"({', '.join(map(str, READABLE_FORMATS))})")
        try:
            return cls.model_validate({**raw, "format": RECORD_FORMAT})
        except ValidationError as exc:
            error = exc.errors(include_url=False)[0]
            raise UserError(f"{where}: bad record field {'.'.join(map(str, error['loc']))}: {error['msg']}") from None
