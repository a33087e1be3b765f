"""``harness bench`` produces its comparison (keys, JSON, results file); speed itself is never asserted."""
from __future__ import annotations

import json

import pytest

from harness.atomic import read_jsonl
from harness.cli import main


def _bench(tmp_path, capsys, *extra: str) -> dict:
    assert main(["bench", "--device", "cpu", "--preset", "smoke", "--steps", "1", "--rounds", "1", "--json",
                 "--out", str(tmp_path), *extra]) == 0
    return json.loads(capsys.readouterr().out)


def test_searcher_cost_and_seed_concurrency_are_reported(tmp_path, capsys):
    result = _bench(tmp_path, capsys, "--no-reference", "--searcher", "sd_darts", "--seeds", "2")
    assert result["ours_s_per_step"] > 0 and result["ours_steps_per_s"] == pytest.approx(1 / result["ours_s_per_step"])
    assert result["cost_vs_our_darts"] == pytest.approx(result["ours_s_per_step"] / result["our_darts_s_per_step"])
    assert result["seeds"] == 2 and result["multi_seed_speedup"] > 0 and result["cuda_graphs"] is False
    stored = read_jsonl(tmp_path / "bench" / "bench.jsonl")
    assert stored == [result] and {"device", "torch_version", "harness_version"} <= set(stored[0])


def test_speedup_against_the_reference(tmp_path, capsys):
    pytest.importorskip("xautodl")
    result = _bench(tmp_path, capsys)
    assert result["speedup_vs_reference"] == pytest.approx(result["reference_s_per_step"] / result["ours_s_per_step"])
