"""Runs, their tables, figures, diagnostics and the regression check.

``analysis.load_runs(paths)``: every epoch of every run under ``paths`` as one pandas DataFrame
(``analysis.frame``); imported on first use, so the search path never loads pandas.
"""
from __future__ import annotations

from typing import Any


def load_runs(paths: Any, warn: Any = None) -> Any:
    """Every epoch of every run folder under ``paths`` as a DataFrame (columns: ``analysis.frame``)."""
    from analysis.frame import load_runs as load

    return load(paths, warn)
