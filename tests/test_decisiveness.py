"""Decisiveness (``foundation.decisiveness``): hand-computed values, every space's decisions agreeing with its
derivation, records of a real search carrying it, older records getting the same numbers on load, and the report
marking an undecided configuration."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from test_report import make_run, nb201_finals

from analysis.runs import read_runs
from analysis.tables import build_table, layouts
from benchmarks import get_space
from benchmarks.nb201.space import OPS
from conftest import md_rows, smoke_args
from foundation.decisiveness import UNDECIDED_MARGIN, measure, of_weights
from foundation.records import RECORD_FORMAT
from harness.cli import main


def test_measure_hand_computed():
    rows = [(np.array([0.5, 0.3, 0.2]), 1), (np.full(5, 0.2), 1), (np.array([0.0, 1.0, 0.0]), 1),
            (np.array([0.4, 0.25, 0.35]), 2), (np.array([2.0, 6.0]), 1)]  # the last unnormalised: a sigmoid mix
    result = measure(rows)
    assert result.top_weight == pytest.approx([0.5, 0.2, 1.0, 0.35, 0.75])
    assert result.margin == pytest.approx([0.2, 0.0, 1.0, 0.10, 0.5])
    entropy = -(0.5 * math.log(0.5) + 0.3 * math.log(0.3) + 0.2 * math.log(0.2)) / math.log(3)
    assert result.entropy[:3] == pytest.approx([entropy, 1.0, 0.0])
    assert result.median_margin == pytest.approx(0.2) and result.min_margin == pytest.approx(0.0)
    assert result.changed is None
    moved = [(np.array([0.2, 0.3, 0.5]), 1), (np.full(5, 0.2), 1), (np.array([0.0, 1.0, 0.0]), 1),
             (np.array([0.4, 0.35, 0.25]), 2), (np.array([2.0, 6.0]), 1)]
    assert measure(moved, rows).changed == 2  # the first row's argmax, the fourth's top-2 set


@pytest.mark.parametrize("space_name", ["nb201", "1shot1-s1", "1shot1-s2", "1shot1-s3"])
def test_decisions_are_the_choices_derive_makes(space_name):
    """Chosen by ``decisions`` (the top k of each) == chosen by ``derive``, for random weights of every space."""
    space = get_space(space_name)
    supernet = space.build_supernet(2, 1, True, 10)
    generator = torch.Generator().manual_seed(0)
    for _ in range(5):
        weights = [torch.softmax(torch.randn(p.shape, generator=generator), dim=-1) for p in supernet.arch_parameters()]
        chosen = [tuple(sorted(np.argsort(-w)[:k].tolist())) for w, k in space.decisions([w.numpy() for w in weights])]
        genotype = space.derive(weights)
        if space_name == "nb201":
            assert list(genotype) == [OPS[c[0]] for c in chosen]
        else:
            ops, parents = genotype
            op_rows = len(ops)
            assert chosen[:op_rows] == [(index,) for index in weights[0].argmax(dim=-1).tolist()]
            with_choice = [p for p, has in zip(parents, space.definition.nodes_with_parent_choice()) if has]
            assert chosen[op_rows:] == [parents[-1], *with_choice]


@pytest.mark.slow
def test_records_carry_decisiveness_and_older_records_get_the_same_on_load(search_data, tmp_path):
    assert main(smoke_args(search_data, tmp_path, "--set", "diagnostics_every=0")) == 0
    path = next(tmp_path.rglob("epochs.jsonl"))
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert all(r["format"] == RECORD_FORMAT and r["decisiveness"]["median_margin"] is not None for r in records)
    assert records[0]["decisiveness"]["changed"] is None and records[1]["decisiveness"]["changed"] is not None
    space = get_space("nb201")
    assert records[1]["decisiveness"] == of_weights(space.decisions, records[1]["arch_weights"],
                                                    records[0]["arch_weights"]).model_dump()
    older = [{k: v for k, v in r.items() if k != "decisiveness"} | {"format": 2} for r in records]
    path.write_text("".join(json.dumps(r) + "\n" for r in older))
    loaded = read_runs([tmp_path])[0].records
    assert [r.decisiveness.model_dump() for r in loaded] == [r["decisiveness"] for r in records]


def _with_weights(folder, edge_weights):
    path = folder / "epochs.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines()]
    path.write_text("".join(json.dumps({**r, "arch_weights": [edge_weights]}) + "\n" for r in records))


def test_report_marks_an_undecided_configuration(tmp_path):
    root = tmp_path / "results"
    near_tie = [[0.21, 0.2, 0.2, 0.2, 0.19]] * 6  # margin 0.01
    decided = [[0.6, 0.1, 0.1, 0.1, 0.1]] * 6  # margin 0.5
    for seed in range(2):
        _with_weights(make_run(root, "darts", seed, nb201_finals(80.0)), near_tie)
        _with_weights(make_run(root, "darts", seed, nb201_finals(80.0), sets=("a_lr=0.01",)), decided)
    layout = next(layout for layout in layouts() if layout.name == "sd_darts_table4")
    notes = {row.method: row.notes for row in build_table(layout, read_runs([root])) if row.source == "ours"}
    assert notes["darts (paper)"].startswith(f"undecided (median margin 0.010, threshold {UNDECIDED_MARGIN})")
    assert notes["darts (paper, a_lr=0.01)"].startswith("decided (median margin 0.500")


def test_decisiveness_section_and_reruns_as_the_noise_floor(tmp_path):
    """A seed decided = margin >= threshold and its cell held over the last epoch; a re-run of the same seed is
    compared (same final cell or not, first epoch that differs, accuracy change), never averaged in."""
    runs, reruns = tmp_path / "runs", tmp_path / "reruns"
    decided = [[0.6, 0.1, 0.1, 0.1, 0.1]] * 6
    for seed in range(2):
        _with_weights(make_run(runs, "darts", seed, nb201_finals(80.0 + seed), preset="smoke"), decided)
    rerun = make_run(reruns, "darts", 1, nb201_finals(70.0), preset="smoke")
    path = rerun / "epochs.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines()]
    records[-1]["arch_index"] = 7  # the re-run's last epoch derives another cell
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    out = tmp_path / "report"
    assert main(["report", str(runs), "--reruns", str(reruns), "--out", str(out), "--no-figures"]) == 0
    text = (out / "report.md").read_text()
    decisiveness = md_rows(text.split("## Decisiveness")[1].split("\n## ")[0])
    assert decisiveness[1][:6] == ["nb201/darts (smoke)", "2", "2/2", "0.500, 0.500", "0.60, 0.60", "yes, yes"]
    noise = md_rows(text.split("## Re-runs: the noise floor")[1].split("\n## ")[0])
    assert noise[1][:2] == ["nb201/darts (smoke)", "1"] and noise[1][-3:] == ["no", "2", "-11.00"]
    table = md_rows((out / "tables" / "sd_darts_table4.md").read_text())
    assert next(row for row in table if row[0] == "darts (smoke)")[2] == "2"  # the re-run is not a third seed


def test_the_decisiveness_section_shows_what_the_searchers_say_of_themselves(tmp_path):
    """``searcher_state`` (e.g. DARTS-ES's): numbers as they end, a flag with the epoch it was first raised; the
    column appears only when some run reports a state."""
    runs = tmp_path / "runs"
    for seed, stop in enumerate((2, None)):
        path = make_run(runs, "darts_es", seed, nb201_finals(80.0), preset="smoke") / "epochs.jsonl"
        records = [json.loads(line) for line in path.read_text().splitlines()]
        for record in records:
            record["searcher_state"] = {"eigenvalue": 0.125 * record["epoch"],
                                        "stopped": stop is not None and record["epoch"] >= stop}
        path.write_text("".join(json.dumps(r) + "\n" for r in records))
    make_run(runs, "darts", 0, nb201_finals(80.0), preset="smoke")
    out = tmp_path / "report"
    assert main(["report", str(runs), "--out", str(out), "--no-figures"]) == 0
    rows = md_rows((out / "report.md").read_text().split("## Decisiveness")[1].split("\n## ")[0])
    column = rows[0].index("searcher state (last epoch)")
    states = {row[0]: row[column] for row in rows[1:]}
    epochs = len(records)
    assert states == {"nb201/darts_es (smoke)": f"eigenvalue {0.125 * epochs:.3g}, stopped from epoch 2; "
                                                f"eigenvalue {0.125 * epochs:.3g}, not stopped",
                      "nb201/darts (smoke)": "-"}
