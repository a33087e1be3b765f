"""The papers' result tables rebuilt from our runs, published numbers beside ours, in Markdown, LaTeX and CSV.

Layouts (``tables`` in ``published.json``) follow SD-DARTS Table 4 (NB201 searched on CIFAR-10, valid and test
looked up on three datasets), TSE Table 3 (NB201, test, each column searched on its own dataset) and TSE Table 4
(NB101 test in 1shot1 spaces 1-3). Each published method is one row; each of our settings (searcher + config name
without the dataset, averaged over its *done* seeds) follows the published row of its searcher, with a difference
row (ours - published, in points) when it was searched under the paper protocol; a configuration of a reduced
preset is labelled "reduced protocol (<preset>), not comparable to the published numbers" and gets no difference
row. A column holds only our searches on the dataset the table's protocol names for it: in TSE Table 3 the CIFAR-100
column is our CIFAR-100 searches', in SD-DARTS Table 4 our CIFAR-10 searches'. Our configurations without a published
row of their searcher are listed at the end. Incomplete and diverged seeds are never averaged in: the seed column says
how many there are. Each of our rows says how decided its final architectures are (median over seeds of the median
margin between the chosen and the next weight, ``foundation.decisiveness``): "undecided" below the threshold means the
derived cells are argmaxes of near-ties, and their accuracies say little about the searcher.

Statistics: mean and population standard deviation (ddof=0) over seeds of the final epoch's look-up, in %,
aggregated from the runs' DataFrame (``analysis.frame``: the final record of every done run); rendered by pandas
(tabulate Markdown, Styler booktabs LaTeX, CSV). A choice: neither paper says which std it reports. Each of our
cells also carries the 95 % bootstrap interval of its mean and, for a searcher other than DARTS, the permutation
test's p-value against DARTS's seeds under the same setting (``analysis.statistics``): the interval in brackets
and ``MARK`` where p < ``SIGNIFICANCE`` in Markdown and LaTeX, both unrounded in the CSV, the test named in the
caption. With the spaces' tables (``Populations``), a table opens with the random-cell row (mean and population
std over every cell of the table) and the best-cell row, and our cells are also tested against random cells
(``RANDOM_MARK``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Iterable

import pandas as pd

from analysis.frame import runs_frame
from analysis.published import PublishedRow, published_rows, searched_dataset, table_layouts
from analysis.runs import Run
from analysis.statistics import (
    CI_NAME,
    RANDOM_CELL_TEST,
    TEST_NAME,
    mean_interval,
    permutation_p,
    random_cell,
    random_cell_p,
)
from foundation.decisiveness import UNDECIDED_MARGIN

Stat = tuple[float, float, int]  # mean, std, number of seeds
REFERENCE_SEARCHER = "darts"  # what every other searcher's seeds are tested against, under the same setting
SIGNIFICANCE = 0.05
MARK = "†"  # p < SIGNIFICANCE against REFERENCE_SEARCHER
RANDOM_MARK = "‡"  # p < SIGNIFICANCE against uniformly random cells of the table
Populations = dict[str, dict[str, tuple[float, ...]]]  # space -> look-up key -> every cell's value


@dataclass(frozen=True)
class Column:
    space: str
    key: str  # look-up key of the per-epoch records
    header: str
    dataset: str  # our searches on this dataset fill the column


@dataclass(frozen=True)
class TableLayout:
    name: str  # file stem
    paper: str
    table: str
    title: str
    searched_on: str  # the table's protocol: a dataset, or "each"
    columns: tuple[Column, ...]

    @property
    def spaces(self) -> set[str]:
        return {column.space for column in self.columns}


@lru_cache(maxsize=1)
def layouts() -> tuple[TableLayout, ...]:
    """The papers' table layouts, built on first use (each column names the dataset its searches come from)."""
    return tuple(TableLayout(t["name"], t["paper"], t["table"], t["title"], t["searched_on"],
                             tuple(Column(space, key, header, searched_dataset(space, key, t["searched_on"]))
                                   for space, key, header in t["columns"]))
                 for t in table_layouts())


def final_epochs(runs: Iterable[Run]) -> pd.DataFrame:
    """The final record of every done run as a DataFrame (``analysis.frame``'s columns), one row per run."""
    frame = runs_frame([run for run in runs if run.status == "done"])
    return frame[frame.epoch == frame.groupby("folder").epoch.transform("max")] if len(frame) else frame


def column_stats(finals: pd.DataFrame, key: str) -> Stat | None:
    """Mean, population std and count over the final records that have a value for look-up ``key``."""
    column = f"lookup.{key}"
    values = finals[column].dropna() if column in finals else pd.Series(dtype=float)
    if values.empty:
        return None
    return float(values.mean()), float(values.std(ddof=0)), int(values.count())


def seed_stats(runs: Iterable[Run], key: str) -> Stat | None:
    """Mean and std over the done runs that have a final value for ``key``."""
    return column_stats(final_epochs(runs), key)


@dataclass
class TableRow:
    method: str
    source: str  # "published", "ours" or "difference"
    cells: dict[Column, tuple[float, float | None] | None]  # mean and std (difference rows: std None)
    seeds: str = ""
    epochs: str = ""
    notes: str = ""
    intervals: dict[Column, tuple[float, float] | None] = field(default_factory=dict)  # ours: CI of the mean
    p_values: dict[Column, float | None] = field(default_factory=dict)  # ours: vs REFERENCE_SEARCHER's seeds
    p_random: dict[Column, float | None] = field(default_factory=dict)  # ours: vs random cells of the table


@dataclass
class OurConfig:
    """One searcher + setting of ours across the spaces and datasets of a table (one row)."""
    searcher: str
    setting: str
    runs: list[Run] = field(default_factory=list)

    @property
    def epochs(self) -> int:
        return max(run.epochs for run in self.runs)

    @property
    def paper_protocol(self) -> bool:
        return all(run.paper_protocol for run in self.runs)

    def values(self, column: Column) -> list[float]:
        """The done seeds' final look-ups of ``column`` (its space, its dataset searched on)."""
        finals = final_epochs(self.runs)
        if not len(finals) or f"lookup.{column.key}" not in finals:
            return []
        chosen = finals[(finals.space == column.space) & (finals.dataset == column.dataset)]
        return chosen[f"lookup.{column.key}"].dropna().tolist()

    def row(self, columns: tuple[Column, ...], reference: "OurConfig | None" = None,
            populations: Populations | None = None) -> TableRow:
        """Our row; ``reference``: DARTS under the same setting, whose seeds each cell is tested against;
        ``populations``: the tables' cells, which each cell is also tested against."""
        cells: dict[Column, tuple[float, float | None] | None] = {}
        intervals: dict[Column, tuple[float, float] | None] = {}
        p_values: dict[Column, float | None] = {}
        p_random: dict[Column, float | None] = {}
        finals = final_epochs(self.runs)
        for column in columns:
            stat = column_stats(finals[(finals.space == column.space) & (finals.dataset == column.dataset)]
                                if len(finals) else finals, column.key)
            cells[column] = stat[:2] if stat else None
            values = self.values(column)
            intervals[column] = mean_interval(values)
            p_values[column] = None if reference is None else permutation_p(values, reference.values(column))
            population = (populations or {}).get(column.space, {}).get(column.key)
            p_random[column] = None if population is None else random_cell_p(values, population)
        by_dataset: dict[str, list[Run]] = {}
        for run in self.runs:
            by_dataset.setdefault(run.dataset, []).append(run)
        seeds = "; ".join((f"{dataset}: " if len(by_dataset) > 1 else "") + _seed_counts(runs)
                          for dataset, runs in by_dataset.items())
        devices = sorted({r.device for r in self.runs})
        sources = sorted({r.data_source for r in self.runs})
        protocol = [] if self.paper_protocol else [
            f"reduced protocol ({self.runs[0].config.get('preset')}), not comparable to the published numbers"]
        return TableRow(self.runs[0].label, "ours", cells, seeds, str(self.epochs),
                        "; ".join(_decided(finals) + protocol + sources + devices), intervals, p_values, p_random)


def _decided(finals: pd.DataFrame) -> list[str]:
    """How decided the final architectures are: the median over seeds of each seed's median margin
    (``foundation.decisiveness``), "undecided" below ``UNDECIDED_MARGIN``; nothing for runs without weights."""
    column = "decisiveness.median_margin"
    margins = finals[column].dropna() if column in finals else pd.Series(dtype=float)
    if margins.empty:
        return []
    margin = float(margins.median())
    verdict = "undecided" if margin < UNDECIDED_MARGIN else "decided"
    return [f"{verdict} (median margin {margin:.3f}, threshold {UNDECIDED_MARGIN})"]


def _seed_counts(runs: list[Run]) -> str:
    counts = {status: sum(r.status == status for r in runs) for status in ("done", "diverged", "incomplete")}
    return str(counts["done"]) + "".join(f" (+{n} {s})" for s, n in counts.items() if n and s != "done")


def _published_methods(layout: TableLayout) -> list[list[PublishedRow]]:
    """The table's published rows grouped by method (one row per method across the table's spaces)."""
    methods: dict[str, list[PublishedRow]] = {}
    for row in published_rows():
        if row.paper == layout.paper and row.table == layout.table and row.space in layout.spaces:
            methods.setdefault(row.method, []).append(row)
    return list(methods.values())


def _published_row(rows: list[PublishedRow], columns: tuple[Column, ...]) -> TableRow:
    cells = {}
    for column in columns:
        value = next((r.values.get(column.key) for r in rows if r.space == column.space), None)
        cells[column] = value
    epochs = {r.epochs for r in rows if r.epochs}
    return TableRow(rows[0].method, "published", cells, "", "/".join(map(str, sorted(epochs))))


def _difference(ours: TableRow, published: TableRow, columns: tuple[Column, ...]) -> TableRow:
    cells = {}
    for column in columns:
        a, b = ours.cells.get(column), published.cells.get(column)
        cells[column] = (a[0] - b[0], None) if a and b else None
    return TableRow(f"{ours.method} - {published.method}", "difference", cells)


def _population_rows(layout: TableLayout, populations: Populations) -> list[TableRow]:
    """The random-cell row (mean and population std of each look-up over every cell of the table) and the
    best-cell row (its largest value), when the spaces' tables are installed."""
    random_cells, best_cells, counts = {}, {}, set()
    for column in layout.columns:
        values = populations.get(column.space, {}).get(column.key)
        if values:
            random_cells[column] = random_cell(values)
            best_cells[column] = (float(max(values)), None)
            counts.add(len(values))
    if not random_cells:
        return []
    cells = "/".join(map(str, sorted(counts))) + " cells"
    return [TableRow("random cell", "table", random_cells, cells), TableRow("best cell", "table", best_cells, cells)]


def build_table(layout: TableLayout, runs: list[Run], populations: Populations | None = None) -> list[TableRow]:
    """The random-cell and best-cell rows (with ``populations``), then the published rows in the paper's order,
    each followed by our matching configurations and their differences; our configurations of searchers the
    table does not list come last."""
    configs: dict[tuple[str, str], OurConfig] = {}
    datasets = {(column.space, column.dataset) for column in layout.columns}
    for run in runs:
        if (run.space, run.dataset) in datasets:
            configs.setdefault((run.searcher, run.setting), OurConfig(run.searcher, run.setting)).runs.append(run)
    methods = _published_methods(layout)
    attached: dict[int, list[OurConfig]] = {}
    leftovers = []
    for config in configs.values():
        candidates = [i for i, rows in enumerate(methods) if rows[0].searcher == config.searcher]
        if not candidates:
            leftovers.append(config)
            continue
        # Same searcher, several published rows (TSE-DARTS at 50 and 150 epochs): the nearest epoch count.
        best = min(candidates, key=lambda i: abs((methods[i][0].epochs or 0) - config.epochs))
        attached.setdefault(best, []).append(config)
    def reference(config: OurConfig) -> OurConfig | None:
        return None if config.searcher == REFERENCE_SEARCHER else configs.get((REFERENCE_SEARCHER, config.setting))

    table = _population_rows(layout, populations or {})
    for i, rows in enumerate(methods):
        published = _published_row(rows, layout.columns)
        table.append(published)
        for config in attached.get(i, []):
            ours = config.row(layout.columns, reference(config), populations)
            table += [ours, _difference(ours, published, layout.columns)] if config.paper_protocol else [ours]
    table += [config.row(layout.columns, reference(config), populations) for config in leftovers]
    return table


def caption(layout: TableLayout) -> str:
    """The table's title and how to read our cells' statistics."""
    return (f"{layout.title}. Ours: mean ± population std over seeds [{CI_NAME}]; {MARK}: p < {SIGNIFICANCE} "
            f"against {REFERENCE_SEARCHER} under the same setting ({TEST_NAME}); {RANDOM_MARK}: p < {SIGNIFICANCE} "
            f"against the random-cell row ({RANDOM_CELL_TEST}); p-values in the CSV.")


def _cell_text(row: TableRow, column: Column, pm: str) -> str:
    value = row.cells.get(column)
    if value is None:
        return "-"
    mean, std = value
    text = f"{mean:+.2f}" if row.source == "difference" else f"{mean:.2f}"
    text = text if std is None else f"{text}{pm}{std:.2f}"
    interval, p = row.intervals.get(column), row.p_values.get(column)
    if interval is not None:
        text += f" [{interval[0]:.2f}, {interval[1]:.2f}]"
    p_random = row.p_random.get(column)
    return (text + (MARK if p is not None and p < SIGNIFICANCE else "")
            + (RANDOM_MARK if p_random is not None and p_random < SIGNIFICANCE else ""))


HEAD = ("Method", "Source", "Seeds", "Epochs")


def text_head(layout: TableLayout) -> list[str]:
    """Column names of the text renderings (Markdown, HTML)."""
    return [*HEAD, *(c.header for c in layout.columns), "Data; device"]


def text_frame(layout: TableLayout, rows: list[TableRow], pm: str = " ± ") -> pd.DataFrame:
    """The table as the text renderings show it: one string per cell (difference rows signed, without std)."""
    return pd.DataFrame([[row.method, row.source, row.seeds, row.epochs,
                          *(_cell_text(row, c, pm) for c in layout.columns),
                          row.notes] for row in rows], columns=text_head(layout))


def to_markdown(layout: TableLayout, rows: list[TableRow]) -> str:
    """A pipe table (pandas + tabulate); difference rows' method in italics."""
    frame = text_frame(layout, rows)
    frame["Method"] = [f"*{method}*" if row.source == "difference" else method
                       for method, row in zip(frame.Method, rows)]
    table = frame.map(lambda text: text.replace("|", "\\|")).to_markdown(index=False, disable_numparse=True)
    return f"**{caption(layout)}**\n\n{table}\n"


def to_latex(layout: TableLayout, rows: list[TableRow]) -> str:
    """A booktabs table (pandas' Styler, LaTeX-escaped); difference rows in italics."""
    frame = text_frame(layout, rows, pm=" +- ").drop(columns="Data; device")
    italic = [row.source == "difference" for row in rows]
    styler = (frame.style.hide(axis="index").format(escape="latex").format_index(escape="latex", axis=1)
              .apply(lambda line: ["font-style: italic" if italic[line.name] else ""] * len(line), axis=1))
    body = styler.to_latex(hrules=True, convert_css=True, caption=caption(layout).translate(_TEX_SPECIALS),
                           column_format="ll" + "r" * (2 + len(layout.columns)), position="t",
                           position_float="centering")
    return (body.replace(" +- ", r"$\pm$").replace(" ± ", r" $\pm$ ").replace(MARK, r"$^\dagger$")
            .replace(RANDOM_MARK, r"$^\ddagger$"))


def to_csv(layout: TableLayout, rows: list[TableRow]) -> str:
    """Long format: one line per (row, column), numbers unrounded."""
    lines = []
    for row in rows:
        for column in layout.columns:
            mean, std = row.cells.get(column) or (None, None)
            low, high = row.intervals.get(column) or (None, None)
            lines.append({"table": layout.name, "method": row.method, "source": row.source, "seeds": row.seeds,
                          "epochs": row.epochs, "space": column.space, "key": column.key, "mean": mean, "std": std,
                          "ci_low": low, "ci_high": high, f"p_vs_{REFERENCE_SEARCHER}": row.p_values.get(column),
                          "p_vs_random_cell": row.p_random.get(column), "notes": row.notes})
    return pd.DataFrame(lines).to_csv(index=False, lineterminator="\n", float_format=lambda value: repr(float(value)))


_TEX_SPECIALS = str.maketrans({"\\": r"\textbackslash{}", "_": r"\_", "&": r"\&", "%": r"\%", "#": r"\#",
                               "$": r"\$", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}"})


FORMATS = {"md": to_markdown, "tex": to_latex, "csv": to_csv}
