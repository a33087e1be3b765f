"""``harness report``: run folders -> the papers' tables and figures, an index (``report.md``) and a
self-contained ``report.html`` (figures embedded), and the regression check against the published numbers.
Beside the tables: whether each configuration's architectures decided, and, given re-runs of the same seeds
(``--reruns``), the noise floor (``analysis.decisiveness``).

Every file is written atomically. Tables are produced for the paper layouts whose search spaces have runs.
"""
from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from analysis.decisiveness import decisiveness_frame, rerun_frame
from analysis.figures import FigureInfo, accuracy_key, make_figures
from analysis.published import published_rows
from analysis.regression import Comparison, compare, reference_behaviour
from analysis.runs import Run, read_runs
from analysis.tables import FORMATS, Populations, TableLayout, TableRow, build_table, layouts, text_frame, to_markdown
from foundation.atomic import atomic_write
from foundation.decisiveness import UNDECIDED_MARGIN
from foundation.errors import UserError

REPORT_FORMATS = tuple(FORMATS)


@dataclass
class Report:
    runs: list[Run]
    skipped: list[Path] = field(default_factory=list)  # run folders that could not be read
    reruns: list[Run] = field(default_factory=list)  # the same seeds computed again (``--reruns``)
    tables: list[tuple[TableLayout, list[TableRow], dict[str, Path]]] = field(default_factory=list)
    figures: list[FigureInfo] = field(default_factory=list)
    comparisons: list[Comparison] = field(default_factory=list)
    index: Path | None = None
    html: Path | None = None


def _write_text(path: Path, text: str) -> Path:
    atomic_write(path, lambda handle: handle.write(text.encode()))
    return path


def _run_line(run: Run) -> list[str]:
    done = sum(r.status == "ok" for r in run.records)
    key, _ = accuracy_key([run])
    last = run.records[-1] if run.records else None
    value = (last.lookup or {}).get(key) if last else None
    batched = f" ({run.seeds_batched} seeds batched)" if run.seeds_batched > 1 else ""
    margin = last.decisiveness.median_margin if last and last.decisiveness else None
    return [f"{run.scope}/{run.label}", str(run.seed), run.status, f"{done}/{run.epochs}",
            str(last and last.genotype or "-"), "-" if value is None else f"{value:.2f} ({key})",
            "-" if margin is None else f"{margin:.3f}", run.data_source, run.device,
            f"{run.wall_seconds / 60:.1f} min{batched}"]


RUN_HEAD = ["configuration", "seed", "status", "epochs", "last genotype", "last look-up", "median margin", "data",
            "device", "wall time"]


def _runs_frame(runs: list[Run]) -> pd.DataFrame:
    return pd.DataFrame([_run_line(run) for run in runs], columns=RUN_HEAD)


def _md_table(frame: pd.DataFrame) -> str:
    """A pipe table (pandas + tabulate); pipes in cells (NB201 genotypes are full of them) escaped."""
    return frame.map(lambda text: text.replace("|", "\\|")).to_markdown(index=False, disable_numparse=True) + "\n"


def _check_lines(comparisons: list[Comparison]) -> list[str]:
    if not comparisons:
        return ["No finished paper-protocol run has a published counterpart yet: nothing to compare."]
    return [f"- {'ok' if c.ok else '**DEVIATES**'}: {c.describe()}" for c in comparisons]


def _markdown(report: Report, roots: list[Path], out_dir: Path) -> str:
    parts = ["# dNAS harness report", "", f"Results read from: {', '.join(str(r) for r in roots)}.",
             f"{len(report.runs)} run(s): " + ", ".join(f"{sum(r.status == s for r in report.runs)} {s}"
                                                          for s in ("done", "diverged", "incomplete")) + ".",
             "Tables average only finished seeds (`done`); incomplete and diverged seeds are counted apart.", "",
             "## Runs", "", _md_table(_runs_frame(report.runs)), "## Tables", ""]
    for layout, rows, files in report.tables:
        links = " · ".join(f"[{fmt}]({path.relative_to(out_dir)})" for fmt, path in files.items())
        parts += [to_markdown(layout, rows), links, ""]
    for title, intro, frame in _sections(report):
        parts += [f"## {title}", "", intro, "", _md_table(frame)]
    parts += ["## Figures", ""]
    for info in report.figures:
        png, *others = info.files
        parts += [f"### {info.title}", "", f"![{info.title}]({png.relative_to(out_dir)})", "",
                  " · ".join(f"[{p.suffix[1:]}]({p.relative_to(out_dir)})" for p in others)
                  + f" — runs: {len(info.runs)}", "", *(f"- {note}" for note in info.notes),
                  *([""] if info.notes else [])]
    parts += ["## Regression against the published numbers", "", *_check_lines(report.comparisons), ""]
    return "\n".join(parts)


def _sections(report: Report) -> list[tuple[str, str, pd.DataFrame]]:
    """Decisiveness per configuration, how the published rows of the runs' spaces are computed, and the re-runs'
    agreement when there are re-runs."""
    decided = decisiveness_frame(report.runs)
    sections = [] if decided.empty else [(
        "Decisiveness", f"A seed decided when its final cell is the one of the epoch before and the median margin "
        f"between its chosen and next weights is at least {UNDECIDED_MARGIN} (docs/calibration.md).", decided)]
    spaces = {run.space for run in report.runs}
    compared = [row for row in published_rows() if row.searcher and row.space in spaces]
    if compared:
        sections.append(("How the published rows are computed", "Each published row's search at the paper preset, "
                         "on the points where reference code and paper text part (docs/reproducing-papers.md): "
                         "the harness follows the code behind the row.", pd.DataFrame(
                             [{"paper": row.paper, "table": row.table, "method": row.method, "searcher": row.searcher,
                               "epochs": str(row.epochs or "-"), "computed as": reference_behaviour(row) or "-"}
                              for row in compared])))
    again = rerun_frame(report.runs, report.reruns)
    if not again.empty:
        sections.append(("Re-runs: the noise floor", "The same configuration and seed computed again under "
                         "other execution (thread count, instruction set, batch-mates): fp32 rounding differs, the "
                         "maths does not. Read between-seed differences against these.", again))
    return sections


def _html_table(frame: pd.DataFrame) -> str:
    return frame.to_html(index=False, border=0)


def _html(report: Report, roots: list[Path]) -> str:
    style = ("body{font-family:sans-serif;max-width:70em;margin:2em auto}table{border-collapse:collapse;"
             "font-size:85%;margin:1em 0}td,th{border:1px solid #ccc;padding:2px 6px}img{max-width:32em}")
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>dNAS harness report</title>"
             f"<style>{style}</style></head><body><h1>dNAS harness report</h1>",
             f"<p>Results read from {html.escape(', '.join(map(str, roots)))}. Tables average only finished "
             "seeds; incomplete and diverged seeds are counted apart.</p><h2>Runs</h2>",
             _html_table(_runs_frame(report.runs)), "<h2>Tables</h2>"]
    for layout, rows, _ in report.tables:
        parts += [f"<h3>{html.escape(layout.title)}</h3>",
                  _html_table(text_frame(layout, rows))]
    for title, intro, frame in _sections(report):
        parts += [f"<h2>{html.escape(title)}</h2><p>{html.escape(intro)}</p>", _html_table(frame)]
    parts.append("<h2>Figures</h2>")
    for info in report.figures:
        encoded = base64.b64encode(info.files[0].read_bytes()).decode()
        parts.append(f"<h3>{html.escape(info.title)}</h3><img alt='{html.escape(info.title)}' "
                     f"src='data:image/png;base64,{encoded}'><p>{len(info.runs)} run(s)</p>")
        parts += [f"<p>{html.escape(note)}</p>" for note in info.notes]
    parts.append("<h2>Regression against the published numbers</h2><ul>")
    parts += [f"<li>{html.escape(line.lstrip('- ').replace('**', ''))}</li>"
              for line in _check_lines(report.comparisons)]
    parts.append("</ul></body></html>")
    return "\n".join(parts)


def cell_populations(spaces: set[str], data_dir: Path | None, warn=None) -> Populations:
    """Every cell's look-ups of each space whose table is installed under ``data_dir`` (the tables' random-cell
    and best-cell rows); a space whose table is not there is said through ``warn`` and left out."""
    from benchmarks import get_space

    populations: Populations = {}
    for space in sorted(spaces):
        try:
            populations[space] = get_space(space)(data_dir).cell_values() if data_dir is not None else {}
        except UserError as exc:
            if warn is not None:
                warn(f"no random-cell row for {space}: {exc}")
    return {space: values for space, values in populations.items() if values}


def build_report(roots: list[Path], out_dir: Path, formats: tuple[str, ...] = REPORT_FORMATS,
                 figures: bool = True, warn=None, reruns: list[Path] = (), data_dir: Path | None = None) -> Report:
    """Read the runs under ``roots`` (and the re-runs of their seeds under ``reruns``, compared, never averaged
    in) and write tables, figures, ``report.md`` and ``report.html`` to ``out_dir``; with ``data_dir``, the tables
    get random-cell and best-cell rows and our rows a test against random cells. With no runs, nothing is
    written (``Report.runs`` is empty)."""
    skipped: list[Path] = []
    report = Report(read_runs(roots, warn, skipped), skipped=skipped,
                    reruns=read_runs(list(reruns), warn, skipped) if reruns else [])
    if not report.runs:
        return report
    out_dir.mkdir(parents=True, exist_ok=True)
    spaces = {run.space for run in report.runs}
    populations = cell_populations(spaces, data_dir, warn)
    for layout in layouts():
        if not layout.spaces & spaces:
            continue
        rows = build_table(layout, report.runs, populations)
        files = {fmt: _write_text(out_dir / "tables" / f"{layout.name}.{fmt}", FORMATS[fmt](layout, rows))
                 for fmt in formats}
        report.tables.append((layout, rows, files))
    if figures:
        report.figures = make_figures(report.runs, out_dir / "figures", populations)
    report.comparisons = compare(report.runs)
    report.index = _write_text(out_dir / "report.md", _markdown(report, roots, out_dir))
    report.html = _write_text(out_dir / "report.html", _html(report, roots))
    return report
