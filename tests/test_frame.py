"""Runs as a DataFrame (``analysis.load_runs``) and ``harness export``: the documented columns, one row per epoch,
values equal to the records', statuses, and the CSV written atomically."""
from __future__ import annotations

import json

import pandas as pd
import pytest
from test_report import make_run, nb201_finals

import analysis
from harness.cli import main


@pytest.fixture
def results(tmp_path):
    root = tmp_path / "results"
    for seed, value in enumerate((54.3, 60.0)):
        make_run(root, "darts", seed, nb201_finals(value), preset="smoke")
    make_run(root, "sd_darts", 0, nb201_finals(80.0), preset="smoke", sets=("warmup_epochs=0",), epochs_done=1,
             status="incomplete")
    make_run(root, "tse_darts", 0, {**nb201_finals(70.0), "cifar100_test": 50.0}, preset="smoke",
             sets=("dataset=cifar100",))
    return root


def test_one_row_per_epoch_with_identity_and_flattened_records(results):
    frame = analysis.load_runs([results])
    assert len(frame) == 2 + 2 + 1 + 2  # smoke: 2 epochs per finished run, 1 for the incomplete one
    for column in ("folder", "space", "searcher", "preset", "config_name", "setting", "dataset", "seed", "overrides",
                   "run_status", "paper_protocol", "epoch", "genotype", "depth", "skip_count", "hessian_eig_max",
                   "lookup.cifar10_test", "regret.cifar100_test", "arch_weights"):
        assert column in frame.columns, column
    darts = frame[(frame.searcher == "darts") & (frame.seed == 1)].set_index("epoch")
    assert darts.loc[2, "lookup.cifar10_test"] == pytest.approx(60.0) and darts.loc[1, "skip_count"] == 1
    assert darts.loc[2, "regret.cifar10_test"] == pytest.approx(40.0)
    assert set(frame[frame.searcher == "sd_darts"].run_status) == {"incomplete"}
    assert json.loads(frame[frame.searcher == "sd_darts"].overrides.iloc[0]) == {"warmup_epochs": 0}
    tse = frame[frame.searcher == "tse_darts"]
    assert (set(tse.dataset) == {"cifar100"} and set(tse.config_name) == {"smoke-cifar100"}
            and set(tse.setting) == {"smoke"})
    # the aggregation a notebook does: final epoch, mean over finished seeds
    final = frame[(frame.run_status == "done") & (frame.epoch == 2)]
    means = final.groupby("searcher")["lookup.cifar10_test"].mean()
    assert means["darts"] == pytest.approx(57.15)


def test_export_writes_csv_and_refuses_other_suffixes(results, tmp_path, capsys):
    out = tmp_path / "runs.csv"
    assert main(["export", str(results), "--out", str(out)]) == 0
    assert "7 epochs of 4 runs" in capsys.readouterr().out
    back = pd.read_csv(out)
    assert len(back) == 7 and back["lookup.cifar10_test"].max() == pytest.approx(80.0)
    assert main(["export", str(results), "--out", str(tmp_path / "runs.xlsx")]) == 2
    assert "name a .csv or .parquet file" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "missing"), "--out", str(out)]) == 2


def test_parquet_export_needs_pyarrow_and_round_trips(results, tmp_path, capsys):
    out = tmp_path / "runs.parquet"
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        assert main(["export", str(results), "--out", str(out)]) == 2
        assert "needs pyarrow" in capsys.readouterr().err and not out.exists()
        return
    assert main(["export", str(results), "--out", str(out)]) == 0
    back = pd.read_parquet(out)
    assert len(back) == 7 and back["lookup.cifar10_test"].max() == pytest.approx(80.0)
