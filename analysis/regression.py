"""Regression of our reproductions against the published numbers (``harness report --check``).

Only finished runs of the paper protocol count (``Run.paper_protocol``: the paper preset, at most its epoch count
and dataset changed) and only against published rows of the same searcher, space and epoch count, each published
column only with runs searched on the dataset the row's protocol names for it (``PublishedRow.searched_on``): a
CIFAR-10 search is never compared with a column that was searched on CIFAR-100. A look-up key deviates when
``|ours - published| > max(2 * max(published std, our std), 0.5)`` points: twice the larger spread, since both
means are estimates from a handful of seeds, and never below half a point, the precision the papers print at
with stds of 0.00 (the all-skip collapse is deterministic).
"""
from __future__ import annotations

from dataclasses import dataclass

from analysis.published import PublishedRow, published_rows, searched_dataset
from analysis.runs import Run
from analysis.tables import Stat, seed_stats
from foundation.errors import UserError

MIN_TOLERANCE = 0.5
STD_FACTOR = 2.0


def tolerance(published_std: float, our_std: float) -> float:
    return max(STD_FACTOR * max(published_std, our_std), MIN_TOLERANCE)


@dataclass(frozen=True)
class Comparison:
    published: PublishedRow
    config_name: str
    key: str
    dataset: str  # searched on
    ours: Stat

    @property
    def difference(self) -> float:
        return self.ours[0] - self.published.values[self.key][0]

    @property
    def tolerance(self) -> float:
        return tolerance(self.published.values[self.key][1], self.ours[1])

    @property
    def ok(self) -> bool:
        return abs(self.difference) <= self.tolerance

    def describe(self) -> str:
        mean, std = self.published.values[self.key]
        row = self.published
        return (f"{row.paper} {row.table} {row.method} [{row.space} {self.key}]: ours ({row.searcher}, "
                f"{self.config_name}, searched on {self.dataset}, {self.ours[2]} seeds) "
                f"{self.ours[0]:.2f} ± {self.ours[1]:.2f} vs published "
                f"{mean:.2f} ± {std:.2f}: difference {self.difference:+.2f}, tolerance {self.tolerance:.2f}")


def compare(runs: list[Run]) -> list[Comparison]:
    """Every (published row, our paper-protocol configuration searched on the column's dataset, look-up key) with
    at least one finished seed."""
    comparisons = []
    for row in published_rows():
        if row.searcher is None or not row.checked:
            continue
        for key in row.values:
            dataset = searched_dataset(row.space, key, row.searched_on)
            configs: dict[str, list[Run]] = {}
            for run in runs:
                if (run.status == "done" and run.paper_protocol and run.searcher == row.searcher
                        and run.space == row.space and run.epochs == row.epochs and run.dataset == dataset):
                    configs.setdefault(run.config_name, []).append(run)
            for config_name, group in configs.items():
                stat = seed_stats(group, key)
                if stat is not None:
                    comparisons.append(Comparison(row, config_name, key, dataset, stat))
    return comparisons


# Where reference code computes differently from the papers' text (issue 35; docs/reproducing-papers.md): the run
# fields whose paper-preset value follows the code behind a published row.
REFERENCE_FIELDS = ("lr_schedule", "step_order", "w_nesterov")


def reference_behaviour(row: PublishedRow) -> str | None:
    """How the harness computes the row's search at the paper preset, on the points where reference code and
    paper text part: the ``REFERENCE_FIELDS`` and the searcher options the paper preset sets (e.g. iDARTS's
    notebook weight rule); None for a row of a method or space not here."""
    from benchmarks import get_space
    from foundation.run_config import preset_config
    from searchers import get_searcher

    if row.searcher is None:
        return None
    try:
        searcher = get_searcher(row.searcher)
        config = preset_config(get_space(row.space), searcher, "paper").to_dict()
    except UserError:
        return None
    options = searcher.preset_options.get("paper", {})
    return ", ".join([f"{key}={config[key]}" for key in REFERENCE_FIELDS] +
                     [f"{key}={value}" for key, value in options.items()])
