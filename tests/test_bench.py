"""``harness bench`` times the right things: our step of the configured searcher and space, the DARTS step it
modifies (same configuration) for another searcher, K independent seeds; its record is stored. Speed itself is
never asserted."""
from __future__ import annotations

import json

import pytest

from foundation.atomic import read_jsonl
from harness import bench
from harness.cli import main
from searchers.darts import Darts
from searchers.tse_darts import TseDarts


def _bench(tmp_path, capsys, *extra: str) -> dict:
    assert main(["bench", "--device", "cpu", "--preset", "smoke", "--steps", "1", "--rounds", "1", "--json",
                 "--out", str(tmp_path), *extra]) == 0
    return json.loads(capsys.readouterr().out)


def test_the_timed_steps_are_the_searcher_darts_and_k_seeds(tmp_path, capsys, monkeypatch):
    timed = []
    original = bench.our_step

    def recording(experiment, device, seeds=1):
        step = original(experiment, device, seeds)
        timed.append((experiment, seeds))
        return step

    monkeypatch.setattr(bench, "our_step", recording)
    result = _bench(tmp_path, capsys, "--no-reference", "--searcher", "sd_darts", "--seeds", "2",
                    "--set", "warmup_epochs=0")
    searchers = [(experiment.searcher.name, seeds) for experiment, seeds in timed]
    # ours, DARTS, the 2 seeds batched, then each seed alone
    assert searchers == [("sd_darts", 1), ("darts", 1), ("sd_darts", 2), ("sd_darts", 1), ("sd_darts", 1)]
    darts = timed[1][0]
    assert darts.searcher is Darts and darts.config.searcher_options == {}
    ours = timed[0][0].config.to_dict()
    assert {k: v for k, v in darts.config.to_dict().items() if k not in ("searcher", "searcher_options")} == \
        {k: v for k, v in ours.items() if k not in ("searcher", "searcher_options")}
    assert ours["searcher_options"]["warmup_epochs"] == 0
    assert result["seeds"] == 2 and result["space"] == "nb201" and result["cuda_graphs"] is False
    assert result["seeds_per_hour_batched"] == pytest.approx(
        result["seeds_per_hour_sequential"] * result["batching_speedup"])
    assert read_jsonl(tmp_path / "bench" / "bench.jsonl") == [result]


def test_a_searcher_that_defers_work_is_timed_over_whole_updates(tmp_path, capsys, monkeypatch):
    outer_steps = []
    monkeypatch.setattr(TseDarts, "outer_step", lambda self, batches: outer_steps.append(len(batches)))
    result = _bench(tmp_path, capsys, "--no-reference", "--searcher", "tse_darts", "--set", "unroll_steps=6")
    assert result["steps_per_round"] == 3  # a window of 6 batches is 3 steps: the 1 asked for is rounded up
    assert outer_steps and set(outer_steps) == {6}


def test_darts_is_not_timed_against_itself(tmp_path, capsys):
    result = _bench(tmp_path, capsys, "--no-reference")
    assert "cost_vs_our_darts" not in result and "batching_speedup" not in result


def test_speedup_against_the_reference(tmp_path, capsys):
    pytest.importorskip("xautodl")
    result = _bench(tmp_path, capsys)
    assert result["reference"].startswith("xautodl") and result["reference_s_per_step"] > 0


def test_a_space_without_a_reference_says_so(tmp_path, capsys):
    assert main(["bench", "--device", "cpu", "--preset", "smoke", "--space", "1shot1-s1", "--steps", "1",
                 "--out", str(tmp_path)]) == 2
    assert "no reference implementation" in capsys.readouterr().err


def test_contention_times_our_step_beside_a_busy_process_that_is_gone_after(tmp_path, capsys, monkeypatch):
    neighbours = []
    popen = bench.subprocess.Popen

    def recording(*args, **kwargs):
        neighbours.append(popen(*args, **kwargs))
        return neighbours[-1]

    monkeypatch.setattr(bench.subprocess, "Popen", recording)
    result = _bench(tmp_path, capsys, "--no-reference", "--contention")
    assert len(neighbours) == 1 and neighbours[0].poll() is not None  # started once, stopped
    assert result["beside_busy_s_per_step"] > 0
    assert result["contention_slowdown"] == pytest.approx(result["beside_busy_s_per_step"] / result["ours_s_per_step"])
    assert "contention_slowdown" not in _bench(tmp_path, capsys, "--no-reference")
