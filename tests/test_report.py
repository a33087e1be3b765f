"""``harness report``: tables from synthetic run folders against hand-computed statistics, figures, the
regression check failing on a planted deviation, and the whole report from real smoke runs of every searcher."""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

import analysis
from analysis.report import build_report
from analysis.runs import read_runs
from analysis.tables import build_table, layouts
from conftest import md_rows
from harness.cli import main
from harness.config import configure

ALL_SKIP = "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|"
NB201_KEYS = ("cifar10_valid", "cifar10_test", "cifar100_valid", "cifar100_test", "imagenet16_valid",
              "imagenet16_test")


def make_run(root: Path, searcher: str, seed: int, finals: dict[str, float], space: str = "nb201",
             preset: str = "paper", sets: tuple[str, ...] = (), epochs_done: int | None = None,
             status: str = "done", format_1: bool = False) -> Path:
    """A run folder as the runner writes it, with made-up records: epoch e has accuracy ``final - (E - e)``,
    so the final epoch's look-up is ``finals``. ``status`` incomplete: no summary. ``format_1``: config.json as
    written before it stored its overrides."""
    experiment = configure(space, searcher, preset, list(sets))
    config = experiment.config
    epochs = config.epochs if epochs_done is None else epochs_done
    folder = root / space / searcher / experiment.name / f"seed-{seed}"
    folder.mkdir(parents=True)
    meta = {"config": json.loads(json.dumps(config.to_dict())), "config_name": experiment.name, "seed": seed,
            "device": "cpu (test)", "data": {"source": "jpeg_q75"}}
    if not format_1:
        meta.update({"format": 2, "overrides": experiment.overrides, **experiment.classes()})
    (folder / "config.json").write_text(json.dumps(meta))
    records = []
    for epoch in range(1, epochs + 1):
        lookup = {k: v - (epochs - epoch) for k, v in finals.items()}
        records.append({"epoch": epoch, "status": "ok", "genotype": ALL_SKIP, "lookup": lookup,
                        "regret": {k: 100 - v for k, v in lookup.items()}, "depth": 1 + epoch % 3,
                        "skip_count": min(epoch, 6), "hessian_eig_max": 0.1 * epoch, "epoch_seconds": 60.0,
                        "diagnostics_seconds": 6.0})
    (folder / "epochs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    if status != "incomplete":
        summary = {"status": status, "epochs_done": epochs, "epochs": config.epochs}
        (folder / "summary.json").write_text(json.dumps(summary))
    return folder


def nb201_finals(cifar10_test: float) -> dict[str, float]:
    """``cifar10_test`` as given, the other look-ups lower by a key-specific offset."""
    offsets = {"cifar10_valid": -3, "cifar10_test": 0, "cifar100_valid": -20, "cifar100_test": -21,
               "imagenet16_valid": -45, "imagenet16_test": -46}
    return {key: cifar10_test + offsets[key] for key in NB201_KEYS}


@pytest.fixture
def results(tmp_path: Path) -> Path:
    root = tmp_path / "results"
    for seed, value in enumerate((54.30, 60.00, 57.00)):
        make_run(root, "darts", seed, nb201_finals(value))
    make_run(root, "darts", 3, nb201_finals(90.0), epochs_done=7, status="incomplete")  # never averaged in
    make_run(root, "darts", 4, nb201_finals(10.0), epochs_done=3, status="diverged")  # nor this one
    make_run(root, "sd_darts_voted", 0, nb201_finals(93.9), preset="smoke")
    return root


def _table_row(rows, method):
    return next(row for row in rows if row.method == method)


def test_table_statistics_match_hand_computed_values(results):
    runs = read_runs([results])
    assert [r.status for r in runs if r.searcher == "darts"] == ["done", "done", "done", "incomplete", "diverged"]
    layout = next(layout for layout in layouts() if layout.name == "sd_darts_table4")
    rows = build_table(layout, runs)
    ours = _table_row(rows, "darts (paper)")
    test_column = next(c for c in layout.columns if c.key == "cifar10_test")
    # mean (54.3 + 60 + 57) / 3 = 57.1; population std sqrt((2.8^2 + 2.9^2 + 0.1^2) / 3) = 2.32809
    assert ours.cells[test_column] == pytest.approx((57.1, 2.328089))
    assert ours.seeds == "3 (+1 diverged) (+1 incomplete)"
    difference = rows[rows.index(ours) + 1]
    assert difference.source == "difference" and difference.cells[test_column][0] == pytest.approx(57.1 - 54.30)
    assert rows[rows.index(ours) - 1].method == "DARTS (1st)"  # ours follows its published row
    smoke = _table_row(rows, "sd_darts_voted (smoke)")
    assert rows[rows.index(smoke) - 1].method == "SD-DARTS" and smoke.seeds == "1"
    # a reduced preset is labelled as such and never differenced against the published numbers
    assert smoke.notes.startswith("reduced protocol (smoke), not comparable to the published numbers")
    assert "reduced protocol" not in ours.notes and all(row.source != "difference" or "smoke" not in row.method
                                                         for row in rows)


def test_report_writes_tables_figures_and_index(results, tmp_path):
    out = tmp_path / "report"
    voted = next(results.glob("nb201/sd_darts_voted/*/seed-0/config.json"))
    voted.write_text(json.dumps({**json.loads(voted.read_text()), "seed_batch": [0, 1, 2, 3]}))
    report = build_report([results], out)
    names = {path.name for _, _, files in report.tables for path in files.values()}
    assert names == {f"{t}.{f}" for t in ("sd_darts_table4", "tse_table3") for f in ("md", "tex", "csv")}
    tex = (out / "tables" / "sd_darts_table4.tex").read_text()
    assert r"\toprule" in tex and r"57.10$\pm$2.33" in tex and "sd\\_darts\\_voted" in tex
    with open(out / "tables" / "tse_table3.csv") as handle:
        lines = [r for r in csv.DictReader(handle) if r["method"] == "darts (paper)" and r["key"] == "cifar10_test"]
    assert len(lines) == 1 and float(lines[0]["mean"]) == pytest.approx(57.1)
    figures = {info.name: info for info in report.figures}
    assert set(figures) == {"nb201_accuracy_per_epoch", "nb201_skips_per_epoch", "nb201_depth_per_epoch",
                            "nb201_depth_vs_accuracy", "nb201_hessian_per_epoch"}
    assert figures["nb201_accuracy_per_epoch"].ylabel == "CIFAR-10 test accuracy (%)"
    assert figures["nb201_hessian_per_epoch"].xlabel == "epoch"
    for info in figures.values():
        assert [p.suffix for p in info.files] == [".png", ".pdf"] and all(p.stat().st_size > 1000 for p in info.files)
    index = (out / "report.md").read_text()
    runs_table = md_rows(index.split("## Runs")[1].split("\n## ")[0])
    statuses = [row[2:4] for row in runs_table]
    assert ["incomplete", "7/50"] in statuses and ["diverged", "3/50"] in statuses
    # wall time: the recorded epochs' search and diagnostics seconds (7 x 66 s)
    assert [row[-1] for row in runs_table if row[2] == "incomplete"] == ["7.7 min"]
    epochs = configure("nb201", "sd_darts_voted", "smoke", []).config.epochs
    assert [row[-1] for row in runs_table if row[0].startswith("nb201/sd_darts_voted")] == [
        f"{epochs * 66 / 60:.1f} min (4 seeds batched)"]
    assert "figures/nb201_skips_per_epoch.png" in index
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 5
    # runs, tables, decisiveness (the synthetic runs have no weights, so no decisiveness figure), how the compared
    # published rows are computed
    assert page.count("<table") == 3 + len(report.tables) and "How the published rows are computed" in page


def test_ablation_figures_need_two_settings(tmp_path):
    root = tmp_path / "results"
    for warmup in (0, 1, 3):
        for seed in (0, 1):
            make_run(root, "sd_darts", seed, nb201_finals(80 + warmup + seed), preset="smoke",
                     sets=(f"warmup_epochs={warmup}",))
    report = build_report([root], tmp_path / "out")
    names = {info.name for info in report.figures}
    assert "nb201_sd_darts_warmup_epochs_ablation" in names
    titles = {info.name: info.title for info in report.figures}
    assert (titles["nb201_sd_darts_warmup_epochs_ablation"]
            == "nb201 analogue of SD-DARTS Fig. 5: sd_darts vs warmup_epochs")
    assert not any("teacher_epochs" in name or "distill_weight" in name for name in names)  # one setting each
    runs = read_runs([root])
    assert {r.label for r in runs} == {"sd_darts (smoke)", "sd_darts (smoke, warmup_epochs=0)",
                                       "sd_darts (smoke, warmup_epochs=3)"}  # 1 is the smoke preset's own
                                                                             # (half of 2 epochs)


def test_labels_come_from_config_json_and_survive_a_preset_change(tmp_path, monkeypatch):
    from foundation.run_config import PRESETS

    root = tmp_path / "results"
    make_run(root, "sd_darts", 0, nb201_finals(80), preset="smoke", sets=("warmup_epochs=0",))
    make_run(root, "darts", 0, nb201_finals(80), preset="smoke", format_1=True)
    monkeypatch.setitem(PRESETS, "smoke", {**PRESETS["smoke"], "batch_size": 16})
    labels = {run.searcher: run.label for run in read_runs([root])}
    assert labels["sd_darts"] == "sd_darts (smoke, warmup_epochs=0)"  # as stored when the run was made
    assert labels["darts"] == "darts (smoke, batch_size=32)"  # format 1 stored nothing: today's preset decides


def test_check_fails_on_a_planted_deviation_and_passes_otherwise(tmp_path, capsys):
    good, bad = tmp_path / "good", tmp_path / "bad"
    for seed in range(2):
        # the all-skip collapse of SD-DARTS Table 4 (TSE's contradicting DARTS rows are not checked)
        make_run(good, "darts", seed, {"cifar10_valid": 39.77, "cifar10_test": 54.30, "cifar100_valid": 15.03,
                                       "cifar100_test": 15.61, "imagenet16_valid": 16.43, "imagenet16_test": 16.32})
        make_run(bad, "darts", seed, {"cifar10_valid": 39.77, "cifar10_test": 55.10, "cifar100_valid": 15.03,
                                      "cifar100_test": 15.61, "imagenet16_valid": 16.43, "imagenet16_test": 16.32})
        # a smoke run far from any published number does not count in the check
        make_run(good, "darts", seed, nb201_finals(20.0), preset="smoke")
    common = ["--no-figures", "--check", "--data-dir", str(tmp_path / "no-data")]
    assert main(["report", str(good), "--out", str(tmp_path / "r1"), *common]) == 3  # the table was not there
    out = capsys.readouterr().out
    assert "6 comparisons with published numbers, 0 deviating" in out and "look-up layer: not checked" in out
    assert "NOT CHECKED: the look-up layer (no table)" in out
    computed = (tmp_path / "r1" / "report.md").read_text().split("## How the published rows are computed")[1]
    rows = {(row[1], row[2]): row for row in md_rows(computed.split("\n## ")[0])[1:]}
    # xautodl's DARTS-V1: per-epoch schedule, weights first; iDARTS's notebook rule; TSE's rows run as TSE's
    assert rows["Table 4", "DARTS (1st)"][-1] == "lr_schedule=per_epoch, step_order=weights_first, w_nesterov=True"
    assert rows["Table 4", "iDARTS"][-1].endswith("step_order=arch_first, w_nesterov=True, weight_rule=reference")
    assert ("Table 3", "REA") not in rows  # a method the harness does not implement
    assert main(["report", str(bad), "--out", str(tmp_path / "r2"), *common]) == 1
    out = capsys.readouterr().out
    assert "1 deviating" in out and "DEVIATES sd_darts Table 4 DARTS (1st) [nb201 cifar10_test]" in out
    assert "difference +0.80, tolerance 0.50" in out


def test_empty_folder_and_bad_format(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty"), "--out", str(tmp_path / "out")]) == 0
    assert "nothing to report" in capsys.readouterr().err and not (tmp_path / "out").exists()
    assert main(["report", str(tmp_path / "empty"), "--format", "md,docx"]) == 2
    assert main(["report", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert "bad value --format 'md,docx'" in err and "does not exist" in err


def _edit_json(path: Path, change) -> None:
    path.write_text(json.dumps(change(json.loads(path.read_text()))))


RESULTS = Path(__file__).resolve().parents[1] / "results"  # the committed run trees, each with its report
REPORT_DAMAGES = {
    "summary-a-list": lambda f: (f / "summary.json").write_text("[1, 2]"),
    "summary-a-string": lambda f: (f / "summary.json").write_text('"done"'),
    "summary-truncated": lambda f: (f / "summary.json").write_text('{"status": "do'),
    "seed-a-string": lambda f: _edit_json(f / "config.json", lambda meta: {**meta, "seed": "0"}),
    "config-a-list": lambda f: (f / "config.json").write_text("[]"),
    "config-without-searcher": lambda f: _edit_json(
        f / "config.json",
        lambda meta: {**meta, "config": {k: v for k, v in meta["config"].items() if k != "searcher"}}),
    "records-garbage-line": lambda f: (f / "epochs.jsonl").write_text("{}\n"),
    "records-not-utf8": lambda f: (f / "epochs.jsonl").write_bytes(b"\xff\n"),
}


@pytest.mark.data
@pytest.mark.parametrize("case", REPORT_DAMAGES, ids=list(REPORT_DAMAGES))
def test_a_damaged_run_is_skipped_and_check_says_what_it_could_not_check(case, data_dir, nb201_table, tmp_path,
                                                                          capsys):
    root = tmp_path / "results"
    make_run(root, "darts", 0, nb201_finals(90.0), preset="smoke")
    damaged = make_run(root, "darts", 1, nb201_finals(80.0), preset="smoke")
    args = ["report", str(root), "--out", str(tmp_path / "out"), "--no-figures", "--check", "--data-dir", str(data_dir)]
    REPORT_DAMAGES[case](damaged)
    assert main(args) == 3
    captured = capsys.readouterr()
    assert f"harness: warning: skipping {damaged}" in captured.err and "Traceback" not in captured.err
    assert "NOT CHECKED: 1 unreadable run folder(s)" in captured.out and "1 runs" in captured.out
    shutil.rmtree(damaged)
    assert main(args) == 0


def test_records_that_end_before_the_summary_make_the_run_incomplete(results, capsys):
    seed0 = results / "nb201" / "darts" / "paper" / "seed-0"
    lines = (seed0 / "epochs.jsonl").read_text().splitlines(keepends=True)
    (seed0 / "epochs.jsonl").write_text("".join(lines[:-1]))  # the final record lost
    runs = read_runs([results], warn=print)
    assert "epochs.jsonl ends at epoch 49 but summary.json says 50 epochs were done" in capsys.readouterr().out
    run = next(r for r in runs if r.folder == seed0.resolve())
    assert run.status == "incomplete" and run.final is None  # its epoch-49 look-up is not its result


def test_unreadable_run_folder_is_skipped_with_a_warning(results, tmp_path, capsys):
    broken = results / "nb201" / "darts" / "paper" / "seed-9"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    assert len(read_runs([results], warn=print)) == 6
    assert "skipping" in capsys.readouterr().out


@pytest.mark.data
@pytest.mark.parametrize("tree", sorted(report.parent.name for report in RESULTS.glob("*/report")))
def test_committed_report_tables_are_reproduced_exactly(tree, data_dir, nb201_table, tmp_path):
    """The report is deterministic: regenerating it over each committed tree of runs that has a report (the
    reference runs, the reduced-protocol runs, the calibration study) gives its committed tables byte for byte (``make
    reference-report`` rewrites them after new runs, with the data directory's tables)."""
    runs = RESULTS / tree
    committed = runs / "report" / "tables"
    report = build_report([runs], tmp_path, figures=False, data_dir=data_dir)
    made = {path.name: path.read_text() for _, _, files in report.tables for path in files.values()}
    assert made.keys() == {path.name for path in committed.iterdir()}
    for name, text in made.items():
        assert text == (committed / name).read_text(), f"results/{tree}/report/tables/{name} is out of date"


@pytest.mark.data
def test_check_on_the_reference_results_passes(data_dir, nb201_table, tmp_path, capsys):
    """CI's regression check: the stored GPU reference runs and the look-up layer against the papers."""
    reference = Path(__file__).resolve().parents[1] / "results" / "reference"
    assert main(["report", str(reference), "--out", str(tmp_path), "--no-figures", "--check",
                 "--data-dir", str(data_dir)]) == 0
    assert "look-up layer: ok" in capsys.readouterr().out


@pytest.mark.data
@pytest.mark.slow
def test_report_from_smoke_runs_of_every_searcher(data_dir, nb201_table, tmp_path):
    from searchers import builtin_searchers

    searchers = builtin_searchers()

    if not (data_dir / "cifar10").is_dir():
        pytest.skip(f"CIFAR-10 not found under {data_dir}")
    results = tmp_path / "results"
    for searcher in searchers:
        assert main(["run", "--preset", "smoke", "--epochs", "1", "--searcher", searcher, "--device", "cpu",
                     "--data-dir", str(data_dir), "--out", str(results)]) == 0
    report = build_report([results], tmp_path / "report")
    assert len(report.runs) == len(searchers) and all(r.status == "done" for r in report.runs)
    table = (tmp_path / "report" / "tables" / "sd_darts_table4.md").read_text()
    ours = [row[:3] for row in md_rows(table)]
    assert all([f"{name} (smoke, epochs=1)", "ours", "1"] in ours for name in searchers)
    assert len(report.figures) == 6  # accuracy, skips, depth, depth vs accuracy, decisiveness, Hessian
    frame = analysis.load_runs([results])  # the documented columns, for every searcher's records
    assert sorted(frame.searcher.unique()) == sorted(searchers) and len(frame) == len(searchers)
    documented = {"folder", "space", "searcher", "preset", "config_name", "setting", "dataset", "seed", "overrides",
                  "run_status", "paper_protocol", "epoch", "status", "genotype", "arch_index", "depth", "skip_count",
                  "hessian_eig_max", "supernet_acc", "discrete_acc", "discretization_gap", "train_loss", "arch_loss",
                  "w_lr", "a_lr", "epoch_seconds", "arch_weights", "decisiveness.median_margin",
                  "decisiveness.changed", *(f"{field}.{key}" for key in NB201_KEYS
                                            for field in ("lookup", "regret", "rank_percentile"))}
    assert documented <= set(frame.columns) and frame["lookup.cifar10_test"].notna().all()
    reporting = frame["searcher_state.eigenvalue"].notna()  # what the early stoppers say of themselves
    assert set(frame.searcher[reporting]) == {"darts_es", "darts_ada"}
    assert frame.loc[frame.searcher == "darts_es", "searcher_state.stopped"].tolist() == [False]


def test_check_compares_each_published_column_only_with_searches_on_its_dataset(tmp_path):
    """TSE Table 3 is per-dataset (NATS-Bench protocol): its CIFAR-100 and ImageNet16-120 columns are never compared
    with CIFAR-10 searches, however far off their look-ups are; SD-DARTS Table 4 (searched on CIFAR-10) never with
    searches on another dataset."""
    from analysis.regression import compare

    root = tmp_path / "results"
    for seed in range(2):  # CIFAR-10 searches whose CIFAR-100/IN16 look-ups are far from TSE's per-dataset values
        make_run(root, "tse_darts", seed, nb201_finals(92.66))
    comparisons = compare(read_runs([root]))
    assert {(c.published.table, c.key, c.dataset) for c in comparisons} == {("Table 1", "cifar10_test", "cifar10"),
                                                                          ("Table 3", "cifar10_test", "cifar10")}
    assert all(c.ok for c in comparisons)
    for seed in range(2):  # the same setting searched on CIFAR-100, off by 5 points in that column only
        make_run(root, "tse_darts", seed, {**nb201_finals(50.0), "cifar100_test": 68.13 + 5 + seed},
                 sets=("dataset=cifar100",))
    runs = read_runs([root])
    assert ({run.config_name for run in runs} == {"paper", "paper-cifar100"}
            and {run.setting for run in runs} == {"paper"})
    comparisons = compare(runs)
    on_cifar100 = [c for c in comparisons if c.dataset == "cifar100"]
    assert [(c.published.table, c.key) for c in on_cifar100] == [("Table 3", "cifar100_test")]
    assert not on_cifar100[0].ok and on_cifar100[0].ours[0] == pytest.approx(73.63)
    assert all(c.ok for c in comparisons if c.dataset == "cifar10")  # its 50 % CIFAR-10 look-up is never compared
    layout = next(layout for layout in layouts() if layout.name == "tse_table3")
    ours = _table_row(build_table(layout, runs), "tse_darts (paper)")  # one row: the setting on each dataset
    cells = {column.key: ours.cells[column] for column in layout.columns}
    assert cells["cifar10_test"][0] == pytest.approx(92.66) and cells["cifar100_test"][0] == pytest.approx(73.63)
    assert cells["imagenet16_test"] is None and ours.seeds == "cifar10: 2; cifar100: 2"
    sd_layout = next(layout for layout in layouts() if layout.name == "sd_darts_table4")
    sd_rows = build_table(sd_layout, runs)  # searched on CIFAR-10: the CIFAR-100 searches are not in it
    assert _table_row(sd_rows, "tse_darts (paper)").seeds == "2"


UNREADABLE_CONFIGS = {  # a config.json edit: the fragment of the line that skips the folder
    "data-null": (lambda meta: meta.update(data=None), "bad field data: Value error, null"),
    "overrides-null": (lambda meta: meta.update(overrides=None), "bad field overrides: Value error, null"),
    "epochs-missing": (lambda meta: meta["config"].pop("epochs"), "bad field config.epochs: Field required"),
    "epochs-text": (lambda meta: meta["config"].update(epochs="four"), "bad field config.epochs: Input should be"),
    "seed-batch-text": (lambda meta: meta.update(seed_batch="0,1"), "bad field seed_batch: Input should be"),
}


@pytest.mark.parametrize("case", UNREADABLE_CONFIGS, ids=list(UNREADABLE_CONFIGS))
def test_a_config_readers_cannot_rely_on_skips_its_folder_naming_it(case, results, capsys):
    edit, fragment = UNREADABLE_CONFIGS[case]
    seed0 = results / "nb201" / "darts" / "paper" / "seed-0"
    meta = json.loads((seed0 / "config.json").read_text())
    edit(meta)
    (seed0 / "config.json").write_text(json.dumps(meta))
    runs = read_runs([results], warn=print)
    said = capsys.readouterr().out
    assert f"skipping {seed0.resolve()}: {seed0.resolve() / 'config.json'}: {fragment}" in said, said
    assert len(runs) == 5 and main(["report", str(results), "--out", str(results.parent / "report"),
                                     "--no-figures"]) == 0


def test_copied_folders_and_records_after_the_summary_are_skipped_not_averaged_in(results, capsys):
    seed0 = results / "nb201" / "darts" / "paper" / "seed-0"
    shutil.copytree(seed0, seed0.with_name("seed-0.bak"))  # a backup copy is not another seed
    seed1 = seed0.with_name("seed-1")
    lines = (seed1 / "epochs.jsonl").read_text().splitlines()
    extra = json.loads(lines[-1])
    extra["epoch"] += 1
    (seed1 / "epochs.jsonl").write_text("\n".join([*lines, json.dumps(extra)]) + "\n")
    runs = read_runs([results], warn=print)
    said = capsys.readouterr().out
    assert f"skipping {seed0.with_name('seed-0.bak').resolve()}" in said
    assert "describes nb201/darts/paper/seed-0" in said
    assert f"skipping {seed1.resolve()}" in said and "records were added after the run ended" in said
    assert seed0.resolve() in {run.folder for run in runs} and len(runs) == 5


def test_a_run_of_a_space_that_does_not_load_is_read_with_a_warning(results, capsys):
    seed0 = results / "nb201" / "darts" / "paper" / "seed-0"
    meta = json.loads((seed0 / "config.json").read_text())
    meta["config"]["space"], meta["space_class"] = "gone_plugin", "gone_plugin_package.spaces:GoneSpace"
    (seed0 / "config.json").write_text(json.dumps(meta))
    moved = results / "gone_plugin" / "darts" / "paper" / "seed-0"  # where a run of that space lives
    moved.parent.mkdir(parents=True)
    seed0.rename(moved)
    runs = read_runs([results], warn=print)
    said = capsys.readouterr().out
    assert "space 'gone_plugin' does not load here" in said and said.count("does not load") == 1
    assert next(r for r in runs if r.folder == moved.resolve()).space_class is None
    assert len(runs) == 6  # read, not skipped


def test_diagnostics_taken_on_a_network_the_searcher_does_not_train_are_marked(tmp_path):
    """A sampling searcher's Hessian (at softmax(alpha), a network it never trains) carries a caveat in its
    figure panel and under the figure, and the frame says what each run's diagnostics were taken on."""
    root = tmp_path / "results"
    for searcher in ("darts", "gdas", "darts_minus"):
        make_run(root, searcher, 0, nb201_finals(90.0))
    report = build_report([root], tmp_path / "report")
    hessian = next(info for info in report.figures if info.name == "nb201_hessian_per_epoch")
    (caveat,) = hessian.notes
    assert caveat.startswith("gdas ") and "not comparable" in caveat
    assert caveat in (tmp_path / "report" / "report.md").read_text()
    frame = analysis.load_runs([root]).drop_duplicates("searcher").set_index("searcher")
    assert frame["diagnosed_network"].to_dict() == {"darts": "expected", "gdas": "untrained",
                                                    "darts_minus": "trained"}


def test_our_rows_carry_a_bootstrap_interval_and_a_permutation_p_value_against_darts(tmp_path):
    """Checked by hand: 4 seeds against 4 fully separated ones, the exact two-sided permutation p is 2 of the
    C(8, 4) = 70 relabelings; the interval against the exact bootstrap distribution (all 4^4 resamples)."""
    import itertools

    root = tmp_path / "results"
    darts, voted = [50.0, 52.0, 54.0, 56.0], [90.0, 91.0, 93.0, 96.0]
    for seed, (a, b) in enumerate(zip(darts, voted)):
        make_run(root, "darts", seed, nb201_finals(a), preset="quick")
        make_run(root, "sd_darts_voted", seed, nb201_finals(b), preset="quick")
    build_report([root], tmp_path / "report", figures=False)
    with open(tmp_path / "report" / "tables" / "sd_darts_table4.csv") as handle:
        lines = {r["method"]: r for r in csv.DictReader(handle) if r["key"] == "cifar10_test" and r["source"] == "ours"}
    ours, reference = lines["sd_darts_voted (quick)"], lines["darts (quick)"]
    assert float(ours["p_vs_darts"]) == pytest.approx(2 / 70) and reference["p_vs_darts"] == ""
    means = sorted(sum(resample) / 4 for resample in itertools.product(voted, repeat=4))
    low, high = means[int(0.025 * len(means))], means[int(0.975 * len(means)) - 1]
    assert float(ours["ci_low"]) == pytest.approx(low, abs=0.5)
    assert float(ours["ci_high"]) == pytest.approx(high, abs=0.5)
    table = (tmp_path / "report" / "tables" / "sd_darts_table4.md").read_text()
    assert "permutation test" in table.splitlines()[0]
    row = next(r for r in md_rows(table) if r[0] == "sd_darts_voted (quick)")
    assert row[5].endswith("]†") and row[5].startswith("92.50 ± 2.29 [")
    assert "dagger" in (tmp_path / "report" / "tables" / "sd_darts_table4.tex").read_text()


@pytest.mark.data
def test_random_and_best_cell_rows_and_the_test_against_random_cells(data_dir, nb201_table, tmp_path, capsys):
    """The random-cell row is the mean and population std of each look-up over all 15,625 cells and the best-cell
    row their maximum (read here from the table file by hand); a searcher stuck in the all-skip cell is marked
    as different from random cells, one at the table's mean is not. Without the tables, the rows are left out
    and the report says why."""
    import gzip

    from benchmarks.nb201.table import ACCURACY_COLUMNS, TABLE_FILE

    with gzip.open(data_dir / TABLE_FILE, "rt") as handle:
        column = [float(r[ACCURACY_COLUMNS["cifar10_test"]]) for r in csv.DictReader(handle)]
    mean = sum(column) / len(column)
    std = (sum((v - mean) ** 2 for v in column) / len(column)) ** 0.5
    root = tmp_path / "results"
    for seed in range(4):
        make_run(root, "darts", seed, nb201_finals(54.30), preset="quick")
        make_run(root, "drnas", seed, nb201_finals(mean + (seed - 1.5) * 0.1), preset="quick")
    report = build_report([root], tmp_path / "report", data_dir=data_dir)
    accuracy = next(info for info in report.figures if info.name == "nb201_accuracy_per_epoch")
    assert f"a uniformly random cell of the table, {mean:.2f} ± {std:.2f}" in accuracy.notes[0]
    with open(tmp_path / "report" / "tables" / "sd_darts_table4.csv") as handle:
        lines = {r["method"]: r for r in csv.DictReader(handle) if r["key"] == "cifar10_test"}
    assert float(lines["random cell"]["mean"]) == pytest.approx(mean, abs=1e-9)
    assert float(lines["random cell"]["std"]) == pytest.approx(std, abs=1e-9)
    assert float(lines["best cell"]["mean"]) == max(column) and lines["random cell"]["seeds"] == "15625 cells"
    assert float(lines["darts (quick)"]["p_vs_random_cell"]) < 0.01  # the table has a long tail of bad cells
    assert float(lines["drnas (quick)"]["p_vs_random_cell"]) > 0.9
    assert main(["report", str(root), "--out", str(tmp_path / "bare"), "--no-figures", "--data-dir",
                 str(tmp_path / "nothing")]) == 0
    assert "no random-cell row for nb201" in capsys.readouterr().err
    bare = md_rows((tmp_path / "bare" / "tables" / "sd_darts_table4.md").read_text())
    assert not [row for row in bare if row[0] in ("random cell", "best cell")] and len(bare) > 2
