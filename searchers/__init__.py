"""Searcher registry: one module per searcher, looked up by name."""
from __future__ import annotations

from harness.errors import UserError
from searchers.base import Searcher
from searchers.darts import Darts

SEARCHERS: dict[str, type[Searcher]] = {cls.name: cls for cls in (Darts,)}


def get_searcher(name: str) -> type[Searcher]:
    if name not in SEARCHERS:
        raise UserError(f"unknown searcher {name!r} (known: {', '.join(sorted(SEARCHERS))})")
    return SEARCHERS[name]
