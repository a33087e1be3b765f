"""The papers' figures from our runs (matplotlib + seaborn), PNG and PDF, sized for a paper's column or text width.

Per search space and dataset searched on (``Run.scope``): the accuracy its ``metrics`` prefer of the derived cell
per epoch, skip connections per epoch (spaces that have them), cell depth per epoch and against accuracy (TSE
Fig. 2a), decisiveness per epoch (the median over decisions of the margin between the chosen weight and the next,
with the "undecided" threshold dashed: ``foundation.decisiveness``), dominant Hessian eigenvalue per epoch (SD-DARTS
Fig. 2, TSE Fig. 2b / App. E), regret per epoch on a log axis (spaces that plot it: the NAS-Bench-1shot1 paper's
figure), and ablations, final accuracy against any searcher option run with two or more values. An option that declares
the published figure it varies (``json_schema_extra={"figure": ...}``: SD-DARTS's warm-up, Fig. 5, and time window K,
Fig. 6) titles its ablation "<space> analogue of <figure>": the papers' figures are of other search spaces (SD-DARTS:
retrained DARTS-space accuracies), so ours are analogues, not reproductions.

A per-epoch figure has one panel per configuration (small multiples sharing the y axis, each with its own epochs:
ten overlapping bands on one axes hide what a reader looks for, which seed collapsed when): every seed as a thin
line, and their mean over the seeds that reached each epoch in bold with a band of +-1 population std (ddof=0, as
the tables). Seeds that did not finish (incomplete or diverged) form their own dashed panel labelled as such,
never mixed into a finished configuration's mean.
"""
from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from analysis.runs import Run  # noqa: E402
from analysis.statistics import random_cell  # noqa: E402
from foundation.atomic import atomic_write  # noqa: E402
from foundation.decisiveness import UNDECIDED_MARGIN  # noqa: E402

COLUMN_WIDTH_IN = 3.4  # one column of a two-column paper
FIGSIZE = (COLUMN_WIDTH_IN, 2.5)
PANELS_PER_ROW = 4  # four panels of PANEL_SIZE span a two-column paper's text width
PANEL_SIZE = (1.75, 1.45)
PANEL_TITLE_CHARACTERS = 36  # a panel title's line at its 6-point font: longer labels (overrides) wrap
REGRET_FLOOR = 1e-3  # zero regret (the best cell) is drawn at this value on the log axis
FORMATS = ("png", "pdf")
METADATA = {"png": None, "pdf": {"CreationDate": None}}  # no timestamp: regenerating leaves unchanged figures unchanged
# a sampling searcher's diagnostics are taken at softmax(alpha), a network it never trains (Searcher.diagnosed_network)
UNTRAINED_CAVEAT = "at softmax(alpha), a network it does not train: not comparable"


@dataclass
class FigureInfo:
    name: str
    title: str
    xlabel: str
    ylabel: str
    runs: list[str] = field(default_factory=list)  # run folders behind the figure
    files: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what to know to read it, also under the figure in the report


def accuracy_key(runs: list[Run]) -> tuple[str, str]:
    """The look-up figures of these runs (of one space and dataset) show, and its axis label: the first of the
    space's ``metrics`` that measures the dataset searched on and that the runs hold, else the first they hold;
    for a space that does not resolve here, the first look-up they hold."""
    space = runs[0].space_class
    if space is not None:
        return space.metric(lambda key: any(run.series("lookup", key) for run in runs), runs[0].dataset)
    keys = [key for run in runs for record in run.records for key in (record.lookup or {})]
    return (keys[0], f"{keys[0]} (%)") if keys else ("accuracy", "accuracy (%)")


def _curves(runs: list[Run]) -> dict[str, list[Run]]:
    """Runs by curve label: finished seeds of a configuration together, unfinished ones apart."""
    curves: dict[str, list[Run]] = {}
    for run in runs:
        label = run.label if run.status == "done" else f"{run.label} [{run.status}]"
        curves.setdefault(label, []).append(run)
    return curves


def _palette(labels: list[str]) -> dict[str, tuple]:
    base = sorted({label.split(" [")[0] for label in labels})
    colours = dict(zip(base, sns.color_palette("colorblind", max(len(base), 1))))
    return {label: colours[label.split(" [")[0]] for label in labels}


def _new_axes(title: str, xlabel: str, ylabel: str):
    fig, ax = plt.subplots(figsize=FIGSIZE, constrained_layout=True)
    ax.set_title(title, fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if xlabel.startswith("cell depth"):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return fig, ax


def _population_sd(values: pd.Series) -> tuple[float, float]:
    """The band of a curve: mean +- the population std over seeds (ddof=0, as the tables' std)."""
    return values.mean() - values.std(ddof=0), values.mean() + values.std(ddof=0)


def _panel(ax, label: str, group: list[Run], value: Callable[[Run], list[tuple[int, float]]], colour: tuple,
           caveat: str | None = None) -> None:
    """One configuration: each seed a thin line, the mean over seeds in bold with a +-1 std band (seaborn);
    ``caveat`` is added to its title."""
    linestyle = "-" if "[" not in label else "--"
    points = pd.DataFrame([(index, epoch, y) for index, run in enumerate(group) for epoch, y in value(run)],
                          columns=["run", "epoch", "value"])
    for _, seed_points in points.groupby("run"):
        ax.plot(seed_points["epoch"], seed_points["value"], color=colour, linestyle=linestyle, linewidth=0.6, alpha=0.5)
    sns.lineplot(data=points, x="epoch", y="value", errorbar=_population_sd, ax=ax, color=colour, linestyle=linestyle,
                 marker="o", markersize=2.5, linewidth=1.4, markeredgewidth=0, err_kws={"alpha": 0.15, "linewidth": 0})
    title = f"{label} (n={len(group)})" + (f": {caveat}" if caveat else "")
    ax.set_title(textwrap.fill(title, PANEL_TITLE_CHARACTERS), fontsize=6)
    ax.set_xlabel("")
    ax.set_ylabel("")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _save(fig, info: FigureInfo, out_dir: Path) -> FigureInfo:
    for fmt in FORMATS:
        path = out_dir / f"{info.name}.{fmt}"
        atomic_write(path, lambda handle, fmt=fmt: fig.savefig(handle, format=fmt, dpi=200, metadata=METADATA[fmt]))
        info.files.append(path)
    plt.close(fig)
    return info


def _epoch_figure(runs: list[Run], out_dir: Path, name: str, title: str, ylabel: str,
                  value: Callable[[Run], list[tuple[int, float]]], log_y: bool = False,
                  guide: float | None = None, caveat: Callable[[Run], str | None] = lambda run: None,
                  band: tuple[float, float] | None = None) -> FigureInfo | None:
    """One panel per configuration; ``guide``: a threshold drawn dashed in every panel; ``caveat``: a note for
    a configuration's panel title; ``band``: (mean, std) of the random cells, shaded in every panel."""
    used = [run for run in runs if value(run)]
    if not used:
        return None
    curves = _curves(used)
    colours = _palette(list(curves))
    columns = min(len(curves), PANELS_PER_ROW)
    rows = -(-len(curves) // columns)
    size = FIGSIZE if len(curves) == 1 else (PANEL_SIZE[0] * columns, PANEL_SIZE[1] * rows + 0.5)
    fig, axes = plt.subplots(rows, columns, figsize=size, sharey=True, squeeze=False, constrained_layout=True)
    caveats = {label: caveat(group[0]) for label, group in curves.items()}
    for ax, (label, group) in zip(axes.flat, curves.items()):
        _panel(ax, label, group, value, colours[label], caveats[label])
        if log_y:
            ax.set_yscale("log")
        if guide is not None:
            ax.axhline(guide, color="0.4", linestyle="--", linewidth=0.6)
        if band is not None:
            ax.axhspan(band[0] - band[1], band[0] + band[1], color="0.88", zorder=0, linewidth=0)
            ax.axhline(band[0], color="0.55", linestyle=":", linewidth=0.7, zorder=0)
    for ax in axes.flat[len(curves):]:
        ax.set_visible(False)
    fig.suptitle(title, fontsize=8)
    fig.supxlabel("epoch", fontsize=7)
    fig.supylabel(ylabel, fontsize=7)
    notes = [f"{label}: {note}" for label, note in caveats.items() if note]
    if band is not None:
        notes.append(f"shaded: a uniformly random cell of the table, {band[0]:.2f} ± {band[1]:.2f} (dotted: mean)")
    return _save(fig, FigureInfo(name, title, "epoch", ylabel, [str(r.folder) for r in used], notes=notes), out_dir)


def _depth_figure(runs: list[Run], out_dir: Path, space: str, key: str, ylabel: str) -> FigureInfo | None:
    """Every epoch's derived cell as a point (depth, accuracy), one colour per configuration (TSE Fig. 2a)."""
    points = {run.label: [] for run in runs}
    for run in runs:
        accuracy = dict(run.series("lookup", key))
        points[run.label] += [(d, accuracy[e]) for e, d in run.series("depth") if e in accuracy]
    points = {label: p for label, p in points.items() if p}
    if not points:
        return None
    title = f"{space}: cell depth vs accuracy (all epochs)"
    fig, ax = _new_axes(title, "cell depth (edges on the longest path)", ylabel)
    colours = _palette(list(points))
    jitter = np.random.default_rng(0)  # fixed: the figure is reproducible
    for label, pts in points.items():
        depth, accuracy = np.array(pts).T
        ax.scatter(depth + jitter.uniform(-0.15, 0.15, len(depth)), accuracy, s=6, alpha=0.6, color=colours[label],
                   label=label)
    ax.legend(fontsize=5, frameon=False)
    return _save(fig, FigureInfo(f"{space}_depth_vs_accuracy", title, ax.get_xlabel(), ax.get_ylabel(),
                                 [str(r.folder) for r in runs]), out_dir)


def _ablation_figures(runs: list[Run], out_dir: Path) -> list[FigureInfo]:
    """Final accuracy (mean +- std over done seeds) against a searcher option, for every option of which two or
    more values were run with everything else equal (SD-DARTS's warm-up and time window: its Figs. 5 and 6):
    one figure per searcher, space and option, one line per preset and other settings; numeric options only."""
    made = []
    for (searcher, space), group in _by(runs, lambda run: (run.searcher, run.scope)).items():
        key, ylabel = accuracy_key(group)
        for option in sorted({o for run in group for o in run.config.get("searcher_options", {})}):
            series: dict[str, dict[float, list[float]]] = {}
            used = []
            for (preset, rest), varied in _by(group, lambda run: _all_but(run, option)).items():
                label = preset if rest == "{}" else f"{preset}, {rest}"
                for run in varied:
                    value = run.config["searcher_options"].get(option)
                    final = run.final_lookup(key)
                    if isinstance(value, (int, float)) and not isinstance(value, bool) and final is not None:
                        series.setdefault(label, {}).setdefault(value, []).append(final)
                        used.append(run)
            series = {label: by_value for label, by_value in series.items() if len(by_value) >= 2}
            if not series:
                continue
            figure = _published_figure(group, option)
            title = (f"{space} analogue of {figure}: {searcher} vs {option}" if figure
                     else f"{space}: {searcher}, final accuracy vs {option}")
            fig, ax = _new_axes(title, option, f"final {ylabel}")
            points = pd.DataFrame([(label, x, y) for label, by_value in sorted(series.items())
                                   for x, finals in by_value.items() for y in finals],
                                  columns=["setting", option, "final"])
            sns.lineplot(data=points, x=option, y="final", hue="setting", errorbar=_population_sd, err_style="bars",
                         marker="o", markersize=3, linewidth=1.2, err_kws={"capsize": 2}, ax=ax)
            sns.scatterplot(data=points, x=option, y="final", hue="setting", legend=False, s=7, alpha=0.5,
                            linewidth=0, ax=ax)  # every seed
            ax.legend(fontsize=5, frameon=False)
            name = f"{space}_{searcher}_{option}_ablation"
            made.append(_save(fig, FigureInfo(name, title, option, f"final {ylabel}", [str(r.folder) for r in used]),
                              out_dir))
    return made


def _published_figure(runs: list[Run], option: str) -> str | None:
    """The published figure a searcher option's ablation corresponds to, as the option declares it."""
    searcher = runs[0].searcher_class
    field = searcher.Options.model_fields.get(option) if searcher is not None else None
    extra = field.json_schema_extra if field is not None else None
    return extra.get("figure") if isinstance(extra, dict) else None


def _by(runs: list[Run], key: Callable[[Run], object]) -> dict:
    groups: dict = {}
    for run in runs:
        groups.setdefault(key(run), []).append(run)
    return groups


def _all_but(run: Run, option: str) -> tuple[str, str]:
    """The run's preset and everything it set except ``option`` (runs that differ only in ``option``)."""
    rest = {k: v for k, v in run.overrides.items() if k != option}
    return run.config.get("preset", ""), json.dumps(rest, sort_keys=True, default=str)


def _untrained_network(run: Run) -> str | None:
    """The caveat of a searcher whose diagnostics are taken on a network it does not train."""
    return UNTRAINED_CAVEAT if run.diagnosed_network == "untrained" else None


def make_figures(runs: list[Run], out_dir: Path,
                 populations: dict[str, dict[str, tuple[float, ...]]] | None = None) -> list[FigureInfo]:
    """All figures the runs allow, written to ``out_dir``; ``populations`` (each space's cells' look-ups) shade a
    random cell's accuracy in the per-epoch accuracy figure."""
    sns.set_theme(context="paper", style="whitegrid", font_scale=0.8)
    out_dir.mkdir(parents=True, exist_ok=True)
    made: list[FigureInfo | None] = []
    for space, in_space in sorted(_by(runs, lambda run: run.scope).items()):
        space_class = in_space[0].space_class
        key, ylabel = accuracy_key(in_space)
        cells = (populations or {}).get(in_space[0].space, {}).get(key)
        band = random_cell(cells) if cells else None
        made.append(_epoch_figure(in_space, out_dir, f"{space}_accuracy_per_epoch",
                                  f"{space}: derived cell per epoch", ylabel, lambda r, k=key: r.series("lookup", k),
                                  band=band))
        if space_class is not None and space_class.has_skip_connections:
            made.append(_epoch_figure(in_space, out_dir, f"{space}_skips_per_epoch", f"{space}: skip connections",
                                      "skip connections in the cell", lambda r: r.series("skip_count")))
        made.append(_epoch_figure(in_space, out_dir, f"{space}_depth_per_epoch", f"{space}: cell depth",
                                  "depth of the derived cell", lambda r: r.series("depth")))
        made.append(_depth_figure(in_space, out_dir, space, key, ylabel))
        made.append(_epoch_figure(in_space, out_dir, f"{space}_decisiveness_per_epoch",
                                  f"{space}: how decided the architecture is",
                                  "median margin, top two weights", lambda r: r.series("decisiveness", "median_margin"),
                                  guide=UNDECIDED_MARGIN))
        made.append(_epoch_figure(in_space, out_dir, f"{space}_hessian_per_epoch",
                                  f"{space}: dominant Hessian eigenvalue", "largest eigenvalue of the Hessian",
                                  lambda r: r.series("hessian_eig_max"), caveat=_untrained_network))
        if space_class is not None and space_class.plots_regret:
            made.append(_epoch_figure(
                in_space, out_dir, f"{space}_regret_per_epoch", f"{space}: regret of the derived cell",
                f"{'test' if key.endswith('test') else 'validation'} regret (%)",
                lambda r, k=key: [(e, max(v, REGRET_FLOOR)) for e, v in r.series("regret", k)], log_y=True))
    return [info for info in made if info is not None] + _ablation_figures(runs, out_dir)
