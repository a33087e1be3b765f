"""Whether the runs' architectures decided, per configuration, and how far re-runs of the same seeds agree.

A seed *decided* when its final derived cell is the one of the epoch before and the median over its decisions of
the margin between the chosen and the next weight is at least ``UNDECIDED_MARGIN`` (``foundation.decisiveness``;
the criterion of the calibration study, ``docs/calibration.md``). A *re-run* is the same configuration and seed
computed again under other execution (another thread count, instruction set or batch-mates: fp32 rounding
differs, the maths does not); how often its final cell differs, and by how many points, is the noise floor that
between-seed differences must be read against.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.figures import accuracy_key
from analysis.runs import Run
from foundation.decisiveness import UNDECIDED_MARGIN


def seed_decided(run: Run) -> dict[str, object]:
    """One done run's final decisiveness: margin, smallest chosen weight, whether its cell held over the last
    epoch, and the verdict."""
    measured = run.final.decisiveness if run.final is not None else None
    ok = [r for r in run.records if r.status == "ok"]
    held = len(ok) >= 2 and ok[-1].arch_index == ok[-2].arch_index
    margin = measured.median_margin if measured else None
    return {"margin": margin, "top_weight": min(measured.top_weight if measured else [np.nan]), "held": held,
            "decided": bool(held and margin is not None and margin >= UNDECIDED_MARGIN)}


def searcher_state(run: Run) -> str:
    """What the searcher said of itself by the run's end (``searcher_state`` of the records): each number as it
    ends, each flag with the epoch it was first raised (DARTS-ES: "stopped from epoch 7")."""
    states = [(record.epoch, record.searcher_state) for record in run.records if record.searcher_state]
    if not states:
        return "-"
    parts = []
    for key, value in states[-1][1].items():
        if isinstance(value, bool):
            first = next((epoch for epoch, state in states if state.get(key)), None)
            parts.append(f"{key} from epoch {first}" if value else f"not {key}")
        else:
            parts.append(f"{key} {value:.3g}")
    return ", ".join(parts)


def decisiveness_frame(runs: list[Run]) -> pd.DataFrame:
    """One row per configuration (its done seeds): seeds decided, each seed's final median margin, smallest
    chosen weight, skip count, depth and accuracy, in seed order, and, when any searcher reports its own state
    (``searcher_state``), that state at the end."""
    rows = []
    groups: dict[tuple, list[Run]] = {}
    for run in runs:
        if run.status == "done":
            groups.setdefault((run.scope, run.group), []).append(run)
    for (scope, _), group in groups.items():
        key, _ = accuracy_key(group)
        verdicts = [seed_decided(run) for run in group]

        def each(values, form: str = "{}") -> str:
            return ", ".join("-" if v is None or v != v else form.format(v) for v in values)

        rows.append({"configuration": f"{scope}/{group[0].label}", "seeds": str(len(group)),
                     "decided": f"{sum(v['decided'] for v in verdicts)}/{len(group)}",
                     "median margin": each([v["margin"] for v in verdicts], "{:.3f}"),
                     "smallest chosen weight": each([v["top_weight"] for v in verdicts], "{:.2f}"),
                     "cell held last epoch": each(["yes" if v["held"] else "no" for v in verdicts]),
                     "skips": each([r.final.skip_count for r in group]),
                     "depth": each([r.final.depth for r in group]),
                     key: each([r.final_lookup(key) for r in group], "{:.2f}"),
                     "searcher state (last epoch)": "; ".join(searcher_state(run) for run in group)})
    frame = pd.DataFrame(rows)
    if not frame.empty and (frame["searcher state (last epoch)"].str.strip("-; ") == "").all():
        frame = frame.drop(columns="searcher state (last epoch)")
    return frame


def rerun_frame(runs: list[Run], reruns: list[Run]) -> pd.DataFrame:
    """Each done run of ``reruns`` against the done run of ``runs`` with the same configuration and seed: how it
    was computed (device line), whether the final cell is the same, the first epoch whose cell differs, and the
    final accuracy difference (re-run minus run, points)."""
    originals = {(run.group, run.seed): run for run in runs if run.status == "done"}
    rows = []
    for rerun in reruns:
        original = originals.get((rerun.group, rerun.seed))
        if rerun.status != "done" or original is None:
            continue
        key, _ = accuracy_key([original])
        cells = [(a.arch_index, b.arch_index) for a, b in zip(original.records, rerun.records)]
        first = next((epoch for epoch, (a, b) in enumerate(cells, start=1) if a != b), None)
        before, after = (r.final_lookup(key) for r in (original, rerun))
        rows.append({"configuration": f"{original.scope}/{original.label}", "seed": str(original.seed),
                     "run on": original.device, "re-run on": rerun.device,
                     "same final cell": "yes" if first is None else "no",
                     "first epoch that differs": "-" if first is None else str(first),
                     "accuracy change": "-" if before is None or after is None else f"{after - before:+.2f}"})
    return pd.DataFrame(rows)
