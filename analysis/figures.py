"""The papers' figures from our runs (matplotlib + seaborn), PNG and PDF, sized for one paper column.

Per search space: test accuracy of the derived cell per epoch (mean and a +-1 std band over seeds), skip
connections per epoch (NB201), cell depth against test accuracy (TSE Fig. 2a), dominant Hessian eigenvalue per
epoch (SD-DARTS Fig. 2, TSE Fig. 2b / App. E), test regret per epoch on a log axis (1shot1 spaces, as the
NAS-Bench-1shot1 paper plots it) and the SD-DARTS ablations, final accuracy against warm-up epochs (Fig. 5) and
against the time window K (Fig. 6), whenever runs with two or more such settings exist.

A curve is the mean over the seeds that reached each epoch. Seeds that did not finish (incomplete or diverged)
form their own dashed curve labelled as such, never mixed into a finished configuration's mean.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
import seaborn as sns  # noqa: E402

from analysis.runs import Run  # noqa: E402
from harness.atomic import atomic_write  # noqa: E402

COLUMN_WIDTH_IN = 3.4  # one column of a two-column paper
FIGSIZE = (COLUMN_WIDTH_IN, 2.5)
REGRET_FLOOR = 1e-3  # zero regret (the best cell) is drawn at this value on the log axis
FORMATS = ("png", "pdf")


@dataclass
class FigureInfo:
    name: str
    title: str
    xlabel: str
    ylabel: str
    runs: list[str] = field(default_factory=list)  # run folders behind the figure
    files: list[Path] = field(default_factory=list)


def accuracy_key(space: str, runs: list[Run]) -> tuple[str, str]:
    """The look-up a space's figures show, and its axis label: CIFAR-10 test on NB201; NB101 test on 1shot1
    when the installed table has it, else NB101 validation (the partial table)."""
    if space == "nb201":
        return "cifar10_test", "CIFAR-10 test accuracy (%)"
    has_test = any(run.series("lookup", "nb101_test") for run in runs)
    return ("nb101_test", "NB101 test accuracy (%)") if has_test else ("nb101_valid", "NB101 validation accuracy (%)")


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
    if xlabel == "epoch" or xlabel.startswith("cell depth"):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return fig, ax


def _per_epoch(ax, runs: list[Run], value: Callable[[Run], list[tuple[int, float]]]) -> bool:
    """Mean +- std band per curve; returns whether anything was drawn."""
    curves = _curves(runs)
    colours = _palette(list(curves))
    drawn = False
    for label, group in curves.items():
        by_epoch: dict[int, list[float]] = {}
        for run in group:
            for epoch, y in value(run):
                by_epoch.setdefault(epoch, []).append(y)
        if not by_epoch:
            continue
        epochs = sorted(by_epoch)
        mean = np.array([np.mean(by_epoch[e]) for e in epochs])
        std = np.array([np.std(by_epoch[e]) for e in epochs])
        style = "-" if "[" not in label else "--"
        ax.plot(epochs, mean, style, marker="o", markersize=2.5, linewidth=1.2, color=colours[label],
                label=f"{label} (n={len(group)})")
        if len(group) > 1:
            ax.fill_between(epochs, mean - std, mean + std, color=colours[label], alpha=0.2, linewidth=0)
        drawn = True
    if drawn:
        ax.legend(fontsize=5, loc="best", frameon=False)
    return drawn


def _save(fig, ax, info: FigureInfo, out_dir: Path) -> FigureInfo:
    info.xlabel, info.ylabel = ax.get_xlabel(), ax.get_ylabel()
    for fmt in FORMATS:
        path = out_dir / f"{info.name}.{fmt}"
        atomic_write(path, lambda handle, fmt=fmt: fig.savefig(handle, format=fmt, dpi=200))
        info.files.append(path)
    plt.close(fig)
    return info


def _epoch_figure(runs: list[Run], out_dir: Path, name: str, title: str, ylabel: str,
                  value: Callable[[Run], list[tuple[int, float]]], log_y: bool = False) -> FigureInfo | None:
    used = [run for run in runs if value(run)]
    if not used:
        return None
    fig, ax = _new_axes(title, "epoch", ylabel)
    _per_epoch(ax, used, value)
    if log_y:
        ax.set_yscale("log")
    return _save(fig, ax, FigureInfo(name, title, "", "", [str(r.folder) for r in used]), out_dir)


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
    return _save(fig, ax, FigureInfo(f"{space}_depth_vs_accuracy", title, "", "", [str(r.folder) for r in runs]),
                 out_dir)


def _ablation_figure(runs: list[Run], out_dir: Path, option: str, name: str, title: str, xlabel: str) -> FigureInfo | None:
    """Final accuracy (mean +- std over done seeds) against one SD-DARTS option, one line per searcher, space
    and preset; drawn only where two or more values of the option were run."""
    series: dict[tuple[str, str, str], dict[float, list[float]]] = {}
    used = []
    for run in runs:
        value = run.config.get("searcher_options", {}).get(option)
        key, _ = accuracy_key(run.space, [run])
        final = (run.final or {}).get("lookup") or {}
        if value is None or final.get(key) is None:
            continue
        series.setdefault((run.searcher, run.space, run.config["preset"]), {}).setdefault(value, []).append(final[key])
        used.append(run)
    series = {k: v for k, v in series.items() if len(v) >= 2}
    if not series:
        return None
    fig, ax = _new_axes(title, xlabel, "final test accuracy (%)")
    for (searcher, space, preset), by_value in sorted(series.items()):
        xs = sorted(by_value)
        ax.errorbar(xs, [np.mean(by_value[x]) for x in xs], yerr=[np.std(by_value[x]) for x in xs], marker="o",
                    markersize=3, capsize=2, linewidth=1.2, label=f"{searcher} ({space}, {preset})")
    ax.legend(fontsize=5, frameon=False)
    return _save(fig, ax, FigureInfo(name, title, "", "", [str(r.folder) for r in used]), out_dir)


def make_figures(runs: list[Run], out_dir: Path) -> list[FigureInfo]:
    """All figures the runs allow, written to ``out_dir``."""
    sns.set_theme(context="paper", style="whitegrid", font_scale=0.8)
    out_dir.mkdir(parents=True, exist_ok=True)
    made: list[FigureInfo | None] = []
    for space in sorted({run.space for run in runs}):
        in_space = [run for run in runs if run.space == space]
        key, ylabel = accuracy_key(space, in_space)
        made.append(_epoch_figure(in_space, out_dir, f"{space}_accuracy_per_epoch",
                                  f"{space}: derived cell per epoch", ylabel, lambda r, k=key: r.series("lookup", k)))
        if space == "nb201":
            made.append(_epoch_figure(in_space, out_dir, f"{space}_skips_per_epoch", f"{space}: skip connections",
                                      "skip connections in the cell", lambda r: r.series("skip_count")))
        made.append(_depth_figure(in_space, out_dir, space, key, ylabel))
        made.append(_epoch_figure(in_space, out_dir, f"{space}_hessian_per_epoch",
                                  f"{space}: dominant Hessian eigenvalue", "largest eigenvalue of the Hessian",
                                  lambda r: r.series("hessian_eig_max")))
        if space != "nb201":
            made.append(_epoch_figure(
                in_space, out_dir, f"{space}_regret_per_epoch", f"{space}: regret of the derived cell",
                f"{'test' if key.endswith('test') else 'validation'} regret (%)",
                lambda r, k=key: [(e, max(v, REGRET_FLOOR)) for e, v in r.series("regret", k)], log_y=True))
    made.append(_ablation_figure(runs, out_dir, "warmup_epochs", "sd_darts_warmup_ablation",
                                 "SD-DARTS: warm-up ablation (Fig. 5)", "warm-up epochs"))
    made.append(_ablation_figure(runs, out_dir, "teacher_epochs", "sd_darts_window_ablation",
                                 "SD-DARTS: time-window ablation (Fig. 6)", "time window K (teacher epochs)"))
    return [info for info in made if info is not None]
