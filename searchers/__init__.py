"""Searcher registry: one module per searcher, looked up by name."""
from __future__ import annotations

from harness.errors import UserError
from searchers.base import Searcher
from searchers.darts import Darts
from searchers.darts2 import Darts2
from searchers.drnas import Drnas, TseDrnas
from searchers.sd_darts import SdDarts, SdDartsVoted
from searchers.tse_darts import TseDarts

SEARCHERS: dict[str, type[Searcher]] = {
    cls.name: cls for cls in (Darts, Darts2, SdDarts, SdDartsVoted, TseDarts, Drnas, TseDrnas)}


def get_searcher(name: str) -> type[Searcher]:
    if name not in SEARCHERS:
        raise UserError(f"unknown searcher {name!r} (known: {', '.join(sorted(SEARCHERS))})")
    return SEARCHERS[name]
