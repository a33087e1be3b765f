"""Runs as one pandas DataFrame: a row per (run, epoch), for notebooks and ``harness export``.

Columns: the run's identity (``folder``, ``space``, ``searcher``, ``preset``, ``config_name``, ``setting`` = the
configuration's name without the dataset, ``dataset``, ``seed``, ``overrides`` as JSON text, ``run_status`` =
done / diverged / incomplete, ``paper_protocol``, ``diagnosed_network``: what the diagnostics were taken on,
``Searcher.diagnosed_network``), then every field of the epoch's record flattened with dots:
``epoch``, ``status``, ``genotype``, ``arch_index``, ``depth``, ``skip_count``, ``lookup.<key>``,
``rank_percentile.<key>``, ``regret.<key>``, ``hessian_eig_max``, ``supernet_acc``, ``discrete_acc``,
``discretization_gap``, ``decisiveness.<field>`` (``foundation.decisiveness``: the per-decision lists and their
summaries ``median_margin``, ``min_margin``, ``mean_entropy``, ``changed``), losses, accuracies, learning rates,
times, ``searcher_state.<key>`` (what the searcher reports of itself, e.g. DARTS-ES's ``stopped``) and
``arch_weights`` (the mixing weights, a list per row). A run without a finished epoch has no row.
"""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Callable, Iterable

import pandas as pd

from analysis.runs import Run, read_runs

IDENTITY = ("folder", "space", "searcher", "preset", "config_name", "setting", "dataset", "seed", "overrides",
            "run_status", "paper_protocol", "diagnosed_network")


def runs_frame(runs: Iterable[Run]) -> pd.DataFrame:
    rows = []
    for run in runs:
        identity = {"folder": str(run.folder), "space": run.space, "searcher": run.searcher,
                    "preset": run.config.get("preset"), "config_name": run.config_name, "setting": run.setting,
                    "dataset": run.dataset, "seed": run.seed, "overrides": json.dumps(run.overrides, sort_keys=True),
                    "run_status": run.status, "paper_protocol": run.paper_protocol,
                    "diagnosed_network": run.diagnosed_network}
        rows += [{**identity, **record.to_json()} for record in run.records]
    if not rows:
        return pd.DataFrame(columns=list(IDENTITY))
    weights = [row.pop("arch_weights", None) for row in rows]  # a nested list: kept whole, not spread into columns
    frame = pd.json_normalize(rows, sep=".")
    frame["arch_weights"] = weights
    return frame


def load_runs(paths: Iterable[str | Path], warn: Callable[[str], None] | None = None) -> pd.DataFrame:
    """Every epoch of every run folder under ``paths`` (damaged folders are skipped, said through ``warn``)."""
    return runs_frame(read_runs([Path(path) for path in paths], warn))


def write_frame(frame: pd.DataFrame, path: Path) -> Path:
    """CSV (``arch_weights`` as JSON text), or Parquet for a ``.parquet`` name (needs pyarrow), written atomically."""
    from foundation.atomic import atomic_write
    from foundation.errors import UserError

    path = Path(path)
    if path.suffix == ".parquet":
        if importlib.util.find_spec("pyarrow") is None:
            raise UserError("writing Parquet needs pyarrow (pip install pyarrow); or name a .csv file")
        atomic_write(path, lambda handle: frame.to_parquet(handle, index=False))
    else:
        shown = frame.assign(arch_weights=frame["arch_weights"].map(json.dumps)) if "arch_weights" in frame else frame
        atomic_write(path, lambda handle: handle.write(shown.to_csv(index=False).encode()))
    return path
