"""Search spaces (registry by name), their supernets, tabular look-ups and datasets."""
from __future__ import annotations

from benchmarks.nb201.search_space import NB201Space
from benchmarks.oneshot1.search_space import ONESHOT1_SPACES
from harness.errors import UserError

SPACES = {cls.name: cls for cls in (NB201Space, *ONESHOT1_SPACES)}


def get_space(name: str):
    if name not in SPACES:
        raise UserError(f"unknown space {name!r} (known: {', '.join(sorted(SPACES))})")
    return SPACES[name]
