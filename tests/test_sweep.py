"""``harness sweep``: validation of sweep files, a smoke sweep on the local pool with a failing cell, the same sweep
on a Ray cluster started on loopback giving the same run folders, and a sweep killed midway then completed."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import assert_records_close
from foundation.atomic import read_jsonl
from harness.cli import main

REPO = Path(__file__).resolve().parents[1]
SMOKE_SWEEP = "preset: smoke\nspaces: [nb201]\nsearchers: [darts, drnas]\nseeds: 2\nepochs: 1\n"

BAD_SWEEPS = [
    ("not-yaml", "spaces: [nb201\n", "not YAML"),
    ("not-a-mapping", "- nb201\n", "expected a mapping"),
    ("unknown-key", "spaces: [nb201]\nsearchers: [darts]\nseed: 3\n", "unknown key 'seed'"),
    ("no-searchers", "spaces: [nb201]\n", "searchers=None"),
    ("seeds-zero", "spaces: [nb201]\nsearchers: [darts]\nseeds: 0\n", "seeds=0"),
    ("seeds-negative", "spaces: [nb201]\nsearchers: [darts]\nseeds: [1, -2]\n", "seeds=[1, -2]"),
    ("epochs-text", "spaces: [nb201]\nsearchers: [darts]\nepochs: many\n", "epochs='many'"),
    ("unknown-searcher", "spaces: [nb201]\nsearchers: [darts, nope]\n", "unknown searcher 'nope'"),
    ("unknown-space", "spaces: [nb999]\nsearchers: [darts]\n", "unknown space 'nb999'"),
    ("set-wrong-type", "spaces: [nb201]\nsearchers: [darts]\nset: {epochs: abc}\n",
     "epochs=abc: Input should be a valid integer"),
    ("grid-not-list", "spaces: [nb201]\nsearchers: [sd_darts]\ngrid: {warmup_epochs: 3}\n", "non-empty list"),
    ("grid-bad-option", "spaces: [nb201]\nsearchers: [sd_darts]\ngrid: {warmup_epochs: [0, -1]}\n", "warmup_epochs=-1"),
    ("cases-not-list", "spaces: [nb201]\nsearchers: [darts]\ncases: {a_lr: 0.01}\n",
     "cases={'a_lr': 0.01} must be a list of mappings"),
    ("cases-bad-value", "spaces: [nb201]\nsearchers: [darts]\ncases: [{a_lr: 0.01}, {a_lr: -1}]\n", "a_lr=-1"),
    ("seed-boolean", "spaces: [nb201]\nsearchers: [darts]\nseeds: [true]\n", "seeds=[True]"),
    ("epochs-boolean", "spaces: [nb201]\nsearchers: [darts]\nepochs: true\n", "epochs=True"),
    ("set-boolean-for-int", "spaces: [nb201]\nsearchers: [darts]\nset: {batch_size: true}\n",
     "batch_size=true: Input should be a valid integer"),
    ("set-infinite", "spaces: [nb201]\nsearchers: [darts]\nset: {w_lr: .inf}\n", "w_lr=inf: Input should be a finite"),
    ("set-list-for-scalar", "spaces: [nb201]\nsearchers: [darts]\nset: {epochs: [1, 2]}\n", "epochs=1,2"),
    ("unloadable-plug-in", "spaces: [nb201]\nsearchers: ['no_such_module_xyz:S']\n", "cannot load searcher"),
    ("incompatible-cell", "spaces: [nb201, 1shot1-s1]\nsearchers: [darts, darts_minus]\n",
     "darts_minus needs a supernet with an identity op on every edge"),  # refused before any cell starts
    ("repeated-key", "spaces: [nb201]\nsearchers: [darts]\nsearchers: [gdas]\n", "key 'searchers' is given twice"),
    ("alias", "spaces: &s [nb201]\nsearchers: *s\n", "aliases (*s) are not allowed"),
    ("alias-nest", "a: &a [x, x]\nb: &b [*a, *a]\nc: &c [*b, *b]\nspaces: [nb201]\nsearchers: [darts]\n",
     "aliases (*a) are not allowed"),
    ("not-utf8", b"spaces: [nb201]\nsearchers: [\xff]\n", "not UTF-8 text (byte 28)"),
    ("too-large", "spaces: [nb201]\nsearchers: [darts]\n# " + "x" * 100_000 + "\n", "more than a sweep file's 100,000"),
    ("too-many-runs", "spaces: [nb201]\nsearchers: [darts]\nseeds: 100\ngrid: {epochs: [" +
     ", ".join(map(str, range(1, 201))) + "]}\n", "20,000 runs, more than the 10,000 a sweep may hold"),
]


@pytest.mark.parametrize("text, fragment", [case[1:] for case in BAD_SWEEPS], ids=[case[0] for case in BAD_SWEEPS])
def test_bad_sweep_file_exits_2_with_one_line(text, fragment, tmp_path, capsys):
    path = tmp_path / "sweep.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    assert main(["sweep", str(path), "--out", str(tmp_path / "out"), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"harness: error: bad sweep file {path}") and fragment in err, err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "out").exists()


def test_bad_sweep_flags(tmp_path, capsys):
    path = tmp_path / "sweep.yaml"
    path.write_text(SMOKE_SWEEP)
    assert main(["sweep", str(path), "--backend", "slurm"]) == 2
    assert main(["sweep", str(path), "--gpus-per-run", "1.5"]) == 2
    assert main(["sweep", str(path), "--max-parallel", "0"]) == 2
    assert main(["sweep", str(path), "--seed-batch", "0"]) == 2
    assert main(["sweep", str(tmp_path / "missing.yaml")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert [line.split(":")[2].strip() for line in err] == [
        "unknown backend 'slurm' (local or ray)", "bad value --gpus-per-run 1.5", "bad value --max-parallel 0",
        "bad value --seed-batch 0", "cannot read sweep file " + str(tmp_path / "missing.yaml")]


@pytest.mark.parametrize("path", sorted((REPO / "sweeps").glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_sweep_files_are_valid(path):
    from harness.sweep import load_sweep

    cells = load_sweep(path)
    assert cells and len(set(cells)) == len(cells)


def test_the_warmup_ablation_runs_as_the_paper_with_one_teacher_epoch():
    """SD-DARTS Section 5.1 sets the time window K = 1 for its warm-up ablation (Fig. 5)."""
    from harness.config import configure
    from harness.sweep import load_sweep

    cells = load_sweep(REPO / "sweeps" / "sd_darts_warmup_ablation.yaml")
    options = [configure(c.space, c.searcher, c.preset, list(c.assignments), c.epochs).config.searcher_options
               for c in cells]
    assert {o["teacher_epochs"] for o in options} == {1}
    assert sorted({o["warmup_epochs"] for o in options}) == [0, 10, 20, 25, 30, 40]


def test_cells_that_are_one_run_folder_are_merged_and_said(tmp_path):
    """The built-in DARTS by name and by module:Class, and an option set to its preset value, are one folder."""
    from harness.sweep import load_sweep

    path = tmp_path / "sweep.yaml"
    path.write_text("preset: smoke\nspaces: [nb201]\nsearchers: [darts, 'searchers.darts:Darts', sd_darts]\n"
                    "seeds: [0, 1, 0]\ngrid: {w_lr: [0.025, 0.05]}\n")
    said = []
    cells = load_sweep(path, said.append)
    # darts: 2 learning rates x seeds {0, 1} (a seed listed twice is one seed); sd_darts the same; darts written twice
    assert len(cells) == 8 and len({(c.searcher.split(":")[0], c.assignments, c.seed) for c in cells}) == 8
    assert len(said) == 1 and "4 cell(s) name the same run folder as an earlier one" in said[0]  # of 12


def test_cases_go_together_and_cross_the_grid(tmp_path):
    """Each case's values set together (epochs with its learning rate), every case crossed with the grid."""
    from harness.sweep import load_sweep

    path = tmp_path / "sweep.yaml"
    path.write_text("preset: smoke\nspaces: [nb201]\nsearchers: [darts]\nseeds: 1\n"
                    "cases: [{a_lr: 0.01}, {epochs: 4, a_lr: 0.005}]\ngrid: {w_lr: [0.025, 0.05]}\n")
    assert {frozenset(cell.assignments) for cell in load_sweep(path)} == {
        frozenset({"a_lr=0.005", "epochs=4", "w_lr=0.025"}), frozenset({"a_lr=0.005", "epochs=4", "w_lr=0.05"}),
        frozenset({"a_lr=0.01", "w_lr=0.025"}), frozenset({"a_lr=0.01", "w_lr=0.05"})}


def test_cells_differing_only_in_the_seed_are_one_task_of_at_most_seed_batch_seeds(tmp_path):
    from harness.sweep import load_sweep, seed_batches

    path = tmp_path / "sweep.yaml"
    path.write_text("preset: smoke\nspaces: [nb201]\nsearchers: [darts, sd_darts]\nseeds: 5\n"
                    "grid: {w_lr: [0.025, 0.05]}\n")
    cells = load_sweep(path)
    tasks = seed_batches(cells, 4)
    assert sorted(len(task) for task in tasks) == [1, 1, 1, 1, 4, 4, 4, 4]  # 4 configurations x 5 seeds
    assert all(len({cell.configuration for cell in task}) == 1 for task in tasks)
    assert [cell for task in tasks for cell in task] and {cell for task in tasks for cell in task} == set(cells)
    assert len(seed_batches(cells, 1)) == len(cells)


def _records(root: Path) -> dict[str, list[dict]]:
    return {str(p.parent.relative_to(root)): read_jsonl(p) for p in sorted(root.rglob("epochs.jsonl"))}


def _sweep(tmp_path: Path, data_dir: Path, out: Path, *extra: str) -> int:
    path = tmp_path / "sweep.yaml"
    path.write_text(SMOKE_SWEEP + "set: {diagnostics_every: 0}\n")  # the records' search fields are compared
    return main(["sweep", str(path), "--out", str(out), "--data-dir", str(data_dir), "--device", "cpu", *extra])


@pytest.mark.slow
@pytest.mark.data
def test_local_and_ray_sweeps_write_the_same_run_folders(data_dir, search_data, tmp_path, capfd):
    assert _sweep(tmp_path, data_dir, tmp_path / "local", "--seed-batch", "2", "--max-parallel", "2") == 0
    out, err = capfd.readouterr()
    assert "4 runs in 2 task(s) of seeds computed together, 2 at a time on the local backend" in out
    assert "sweep: 4 done, 0 failed" in out
    # the workers' epoch lines, tagged with their run folders, reach the sweep's stderr
    assert len(re.findall(r"^\[nb201/\w+/smoke\S* seed \d\] epoch 1/1 ", err, re.MULTILINE)) == 4, err
    local = _records(tmp_path / "local")
    assert len(local) == 4 and all(len(records) == 1 for records in local.values())
    # each worker keeps its share of the cores, even at the start when the other still looks idle
    share = max(1, (os.cpu_count() or 1) // 2)
    assert all(records[0]["threads"] == [share] for records in local.values()), local
    configs = [json.loads(p.read_text()) for p in (tmp_path / "local").rglob("config.json")]
    assert {c["thread_policy"] for c in configs} == {"pinned"}
    # a second sweep skips everything
    assert _sweep(tmp_path, data_dir, tmp_path / "local", "--seed-batch", "2") == 0
    assert _records(tmp_path / "local") == local

    pytest.importorskip("ray")
    assert _sweep(tmp_path, data_dir, tmp_path / "ray", "--backend", "ray", "--max-parallel", "2",
                  "--seed-batch", "2") == 0
    assert "on the ray backend" in capfd.readouterr().out
    ray_records = _records(tmp_path / "ray")
    assert ray_records.keys() == local.keys()
    for folder in local:
        assert_records_close(ray_records[folder], local[folder])


@pytest.mark.slow
@pytest.mark.data
def test_a_failing_cell_does_not_stop_the_others(data_dir, search_data, tmp_path, capsys):
    """1shot1 cells fail at run time (this data folder has no NB101 files); the NB201 cells finish."""
    partial = tmp_path / "data"
    partial.mkdir()
    for name in ("nb201", "cifar10"):
        (partial / name).symlink_to(data_dir / name)
    path = tmp_path / "sweep.yaml"
    path.write_text("preset: smoke\nspaces: [1shot1-s1, nb201]\nsearchers: [darts]\nseeds: 1\nepochs: 1\n")
    code = main(["sweep", str(path), "--out", str(tmp_path / "out"), "--data-dir", str(partial), "--device", "cpu"])
    out = capsys.readouterr().out
    assert code == 1 and "sweep: 1 done, 1 failed or diverged, 2 runs" in out
    assert "failed: 1shot1-s1/darts seed 0: missing data file" in out
    assert list((tmp_path / "out").rglob("summary.json"))[0].parent.parent.parent.parent.name == "nb201"


@pytest.mark.data
@pytest.mark.slow
@pytest.mark.faults
def test_a_sweep_killed_midway_completes_on_rerun(data_dir, search_data, tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text(SMOKE_SWEEP.replace("epochs: 1", "epochs: 2").replace("[darts, drnas]", "[darts]") +
                    "set: {diagnostics_every: 2}\n")
    args = [sys.executable, "-m", "harness.cli", "sweep", str(path), "--data-dir", str(data_dir), "--device", "cpu",
            "--max-parallel", "1"]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    straight = tmp_path / "straight"
    assert subprocess.run([*args, "--out", str(straight)], env=env, capture_output=True, timeout=300).returncode == 0

    killed = tmp_path / "killed"
    proc = subprocess.Popen([*args, "--out", str(killed)], env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline and not any(killed.rglob("summary.json")):
        time.sleep(0.05)
    time.sleep(1.0)  # the next cell is under way
    os.killpg(proc.pid, signal.SIGKILL)  # the sweep and its workers
    proc.wait(30)
    assert 0 < len(list(killed.rglob("summary.json"))) < 2
    assert subprocess.run([*args, "--out", str(killed)], env=env, capture_output=True, timeout=300).returncode == 0
    assert not list(killed.rglob(".*.tmp"))
    resumed, reference = _records(killed), _records(straight)
    assert resumed.keys() == reference.keys() and len(resumed) == 2
    for folder in reference:
        assert [r["epoch"] for r in resumed[folder]] == [1, 2]
        assert_records_close(resumed[folder], reference[folder])


@pytest.mark.slow
def test_sigterm_stops_a_sweep_now_not_after_its_queued_runs(data_dir, search_data, tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text(SMOKE_SWEEP.replace("epochs: 1", "epochs: 2"))
    out = tmp_path / "out"
    args = [sys.executable, "-m", "harness.cli", "sweep", str(path), "--data-dir", str(data_dir), "--device", "cpu",
            "--max-parallel", "1", "--out", str(out)]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    deadline = time.time() + 240
    while time.time() < deadline and not any(out.rglob("epochs.jsonl")):
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)  # the sweep only, as a scheduler would: its worker must end with it
    started = time.time()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143 and time.time() - started < 30, err
    assert "terminated (SIGTERM); the run resumes from its last checkpoint" in err
    assert len(list(out.rglob("summary.json"))) < 4  # re-running it resumes: test_a_sweep_killed_midway_...
