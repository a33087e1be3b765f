"""The GPU session script (``.ci/gpu_session.sh``) in its CPU dry run, so that a lent GPU's minutes are never lost
to a typo: every part runs on smoke-sized settings and leaves its results where the script's reader looks."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tarfile

import pytest
import torch

from conftest import REPO
from searchers import builtin_searchers

pytestmark = [pytest.mark.slow, pytest.mark.data]


def test_the_gpu_session_script_dry_run_leaves_every_result(data_dir, nb201_table, tmp_path):
    out, runs = tmp_path / "out", tmp_path / "runs"
    env = {**os.environ, "DRY_RUN": "1", "BUDGET_S": "240", "OUT": str(out), "RUNS": str(runs),
           "PYTHON": sys.executable, "HARNESS_DATA": str(data_dir)}
    done = subprocess.run(["bash", str(REPO / ".ci" / "gpu_session.sh")], env=env, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    log = (out / "env.txt").read_text()
    returned = sorted(path.name for path in out.iterdir())  # what a device call brings back: 8 plain files at most
    assert len(returned) <= 8 and all(re.fullmatch(r"[A-Za-z0-9._-]+", name) for name in returned), returned
    assert all(f"{part} rc=0" in log for part in ("(a)", "(b) graphed", "(b) eager", "(c)")), log
    *reached, last = [json.loads(line) for line in (out / "check.jsonl").read_text().splitlines()]
    assert {entry["searcher"] for entry in reached} | set(last["not_reached"]) == set(builtin_searchers())
    assert reached and all("error" not in entry for entry in reached), reached
    assert all(entry["graphed_vs_eager"]["verdict"] == "ok" for entry in reached if entry["capturable"])
    assert all(entry["batched_vs_alone_loss"] < 1e-4 for entry in reached)
    bench = [json.loads(line) for line in (out / "bench.jsonl").read_text().splitlines()]
    assert len(bench) == 2 and bench[0]["reference_s_per_step"] and bench[1]["seeds_batched_s_per_step"]
    with tarfile.open(out / "runs.tgz") as packed:
        names = packed.getnames()
        summaries = [json.load(packed.extractfile(n)) for n in names if n.endswith("summary.json")]
        configs = [json.load(packed.extractfile(n)) for n in names if n.endswith("config.json")]
    assert not [n for n in names if "checkpoint" in n or n.endswith(".lock")]
    assert len(summaries) == 8 and all(s["status"] == "done" for s in summaries)  # 2 searchers x 2 widths x 2 seeds
    assert {c["config"]["channels"] for c in configs} == {4, 2} and all(c["git_commit"] for c in configs)
    assert all(len(c["seed_batch"]) == 2 for c in configs)  # each run's seeds computed together, as on the GPU
    summary = (out / "summary.txt").read_text()
    assert "darts" in summary and "ours_s_per_step" in summary and "ERROR" not in summary



@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_the_gpu_session_script_stops_at_once_without_cuda(tmp_path):
    """On a machine without a usable GPU every part would fail, one after the other: the script says why and
    stops, leaving the lease's time for a rerun (the dry run, told to use cuda on this CPU machine)."""
    out = tmp_path / "out"
    env = {**os.environ, "DRY_RUN": "1", "DEVICE": "cuda", "OUT": str(out), "RUNS": str(tmp_path / "runs"),
           "PYTHON": sys.executable}
    done = subprocess.run(["bash", str(REPO / ".ci" / "gpu_session.sh")], env=env, capture_output=True, text=True,
                          timeout=120)
    log = (out / "env.txt").read_text()
    assert done.returncode == 1 and "no CUDA" in log and "stopped: the environment cannot run" in log, log
    assert not (out / "check.jsonl").exists()
