"""End-to-end searches with the smoke preset: record contents, folder layout, skip/resume, kill-and-resume."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from benchmarks.nb201 import space
from conftest import REPO, assert_records_close, epochs_diagnosed_last, smoke_args
from foundation.atomic import read_jsonl
from harness.cli import main
from searchers import builtin_searchers

pytestmark = pytest.mark.data


@pytest.mark.slow
def test_smoke_search_writes_complete_records(data_dir, search_data, nb201_table, tmp_path, capsys):
    assert main(smoke_args(data_dir, tmp_path)) == 0
    folder = tmp_path / "nb201" / "darts" / "smoke" / "seed-0"
    assert sorted(p.name for p in folder.iterdir()) == [".lock", "checkpoint-0001.pt", "checkpoint-0002.pt",
                                                         "checkpoints.json", "config.json", "epochs.jsonl",
                                                         "summary.json"]
    records = read_jsonl(folder / "epochs.jsonl")
    assert [r["epoch"] for r in records] == [1, 2]
    for record in records:
        genotype = space.str_to_genotype(record["genotype"])
        assert nb201_table.arch_strs[record["arch_index"]] == record["genotype"]
        assert record["lookup"] == nb201_table.accuracy(record["arch_index"])
        assert record["depth"] == space.depth(genotype) and record["skip_count"] == space.skips(genotype)
        weights = record["arch_weights"][0]
        assert len(weights) == 6 and all(abs(sum(row) - 1) < 1e-5 for row in weights)
        # the genotype is the argmax of the recorded weights, none included
        assert tuple(space.OPS[max(range(5), key=row.__getitem__)] for row in weights) == genotype
        for key in ("train_loss", "train_acc", "arch_loss", "arch_acc", "w_lr", "a_lr", "epoch_seconds"):
            assert isinstance(record[key], float)
        assert record["status"] == "ok" and isinstance(record["hessian_eig_max"], float)
        assert record["discretization_gap"] == pytest.approx(record["supernet_acc"] - record["discrete_acc"])
        assert record["rank_percentile"] == nb201_table.rank_percentile(record["arch_index"])
        assert record["regret"] == nb201_table.regret(record["arch_index"])
    assert records[1]["w_lr"] < records[0]["w_lr"]  # cosine schedule decays
    config = json.loads((folder / "config.json").read_text())
    assert config["config"]["preset"] == "smoke" and config["data"]["source"] in ("official", "jpeg_q75")
    assert config["data"]["split"] == "nb201-cifar-split" and config["seed"] == 0
    diagnostics = config["diagnostics"]
    assert (diagnostics["hessian_method"] == "lanczos"
            and (diagnostics["eval_images"], diagnostics["hessian_images"]) == (64, 32))
    assert "held out" in diagnostics["eval_set"] and config["data"]["halves"]["heldout"] == "test"
    assert config["table"]["sha256"] == nb201_table.provenance["sha256"] and config["config"]["dataset"] == "cifar10"
    assert {bn["affine"] for bn in config["batch_norm"]} == {True, False}  # stem/classifier BN affine, cells not
    # the machine, as wall times need it: the processor model and the vector instructions torch used
    assert config["device"].startswith("cpu (") and torch.backends.cpu.get_cpu_capability() in config["device"]
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["status"] == "done" and summary["epochs_done"] == 2
    assert summary["final"]["genotype"] == records[-1]["genotype"]
    # a second identical command skips the finished run and leaves its records untouched
    before = (folder / "epochs.jsonl").read_bytes()
    assert main(smoke_args(data_dir, tmp_path)) == 0
    assert "already finished" in capsys.readouterr().err
    assert (folder / "epochs.jsonl").read_bytes() == before


@pytest.mark.slow
def test_overrides_get_their_own_folder_and_seeds(data_dir, search_data, tmp_path):
    assert main(smoke_args(data_dir, tmp_path, "--epochs", "1", "--seed", "3", "--seed", "5")) == 0
    configs = list((tmp_path / "nb201" / "darts").iterdir())
    assert len(configs) == 1 and configs[0].name.startswith("smoke-")
    assert sorted(p.name for p in configs[0].iterdir()) == ["seed-3", "seed-5"]
    a = read_jsonl(configs[0] / "seed-3" / "epochs.jsonl")
    b = read_jsonl(configs[0] / "seed-5" / "epochs.jsonl")
    assert a[0]["arch_weights"] != b[0]["arch_weights"]  # seeds differ


@pytest.mark.slow
@pytest.mark.faults
def test_a_second_writer_of_the_same_run_folder_is_refused(data_dir, search_data, tmp_path, capsys):
    """While one process holds a run folder, another run of it exits 2 naming the holder; once the holder is
    gone (here: released; a killed process's flock is released by the kernel) the run goes ahead."""
    from harness.lock import RunFolderLock

    assert main(smoke_args(data_dir, tmp_path, "--epochs", "1")) == 0
    folder = next(tmp_path.rglob("seed-0"))
    (folder / "summary.json").unlink()  # unfinished again: a re-run would resume it
    capsys.readouterr()
    with RunFolderLock(folder):
        assert main(smoke_args(data_dir, tmp_path, "--epochs", "1")) == 2
        err = capsys.readouterr().err
        assert f"run folder {folder} is being written by pid {os.getpid()}" in err and len(err.splitlines()) == 1
    assert main(smoke_args(data_dir, tmp_path, "--epochs", "1")) == 0


@pytest.mark.slow
@pytest.mark.faults
def test_with_wait_a_second_writer_waits_for_the_first(data_dir, search_data, tmp_path, capsys):
    import threading

    from harness.lock import RunFolderLock

    assert main(smoke_args(data_dir, tmp_path, "--epochs", "1")) == 0
    folder = next(tmp_path.rglob("seed-0"))
    (folder / "summary.json").unlink()
    lock = RunFolderLock(folder).__enter__()
    releaser = threading.Timer(1.0, lock.__exit__)
    releaser.start()
    started = time.time()
    assert main(smoke_args(data_dir, tmp_path, "--epochs", "1", "--wait")) == 0
    releaser.join()
    assert time.time() - started >= 0.9 and "waiting" in capsys.readouterr().err
    assert (folder / "summary.json").is_file()


@pytest.mark.faults
def test_a_lock_left_by_a_killed_process_is_taken_over(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from harness.lock import RunFolderLock\n"
                               f"with RunFolderLock({str(tmp_path)!r}):\n print('held', flush=True); time.sleep(120)"],
                              env=dict(os.environ, PYTHONPATH=str(REPO)), stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    from foundation.errors import UserError
    from harness.lock import RunFolderLock

    with pytest.raises(UserError, match=f"pid {holder.pid}"):
        RunFolderLock(tmp_path).__enter__()
    holder.send_signal(signal.SIGKILL)
    holder.wait(30)
    assert (tmp_path / ".lock").exists()  # the stale file stays; the kernel released its lock
    with RunFolderLock(tmp_path):
        assert f"pid {os.getpid()}" in (tmp_path / ".lock").read_text()


def _subprocess_run(data_dir: Path, out: Path, epochs: int) -> subprocess.Popen:
    """Seeds 0 and 1 computed together, as a separate process (the kills land in training, checkpointing and
    appending: diagnostics only after the last epoch)."""
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    args = [sys.executable, "-m", "harness.cli", *smoke_args(data_dir, out, *epochs_diagnosed_last(epochs), "--seeds",
                                                              "2", "--seed-batch", "2", "--set", "train_images=256")]
    return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait_for_records(root: Path, count: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if any(len(read_jsonl(path)) >= count for path in root.rglob("epochs.jsonl")):
            return
        time.sleep(0.02)
    raise AssertionError(f"run ended or timed out before {count} records: {proc.poll()}")


@pytest.mark.slow
@pytest.mark.faults
def test_sigkill_then_resume_gives_the_uninterrupted_records(data_dir, search_data, tmp_path):
    """A batch of two seeds killed at several moments, including between the two seeds' checkpoints and
    appends (the seed ahead steps back, so the batch recomputes what it did), resumes to the records of the
    uninterrupted batch."""
    epochs = 4
    reference = _subprocess_run(data_dir, tmp_path / "straight", epochs)
    assert reference.wait(300) == 0, reference.stderr.read().decode()[-2000:]

    out = tmp_path / "killed"
    # kill points: during start-up/first epoch, and at several moments after records appear (mid-epoch,
    # around the checkpoint write and the append)
    kills = [(0, 1.5), (1, 0.0), (1, 0.15), (2, 0.3), (3, 0.05)]
    for records_before, delay in kills:
        proc = _subprocess_run(data_dir, out, epochs)
        if records_before:
            _wait_for_records(out, records_before, proc)
        time.sleep(delay)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait(60)
    final = _subprocess_run(data_dir, out, epochs)
    assert final.wait(300) == 0, final.stderr.read().decode()[-2000:]
    for seed in (0, 1):
        assert_records_close(read_jsonl(next(out.rglob(f"seed-{seed}")) / "epochs.jsonl"),
                             read_jsonl(next((tmp_path / "straight").rglob(f"seed-{seed}")) / "epochs.jsonl"))


@pytest.mark.slow
@pytest.mark.faults
def test_resume_in_process_continues_from_checkpoint(data_dir, search_data, tmp_path):
    """A kill after the last checkpoint but mid-append (half a line, no summary) is repaired on re-run."""
    straight, partial = tmp_path / "straight", tmp_path / "partial"
    epochs = epochs_diagnosed_last(3)
    assert main(smoke_args(data_dir, straight, *epochs)) == 0
    assert main(smoke_args(data_dir, partial, *epochs)) == 0
    folder = next(partial.rglob("seed-0"))
    # simulate a kill after epoch 2's append and before anything else: drop the summary, keep the
    # checkpoint of epoch 3 but truncate the records to 2 complete lines plus half a line
    lines = (folder / "epochs.jsonl").read_text().splitlines(keepends=True)
    (folder / "epochs.jsonl").write_text("".join(lines[:2]) + lines[2][: len(lines[2]) // 2])
    (folder / "summary.json").unlink()
    assert main(smoke_args(data_dir, partial, *epochs)) == 0
    assert_records_close(read_jsonl(folder / "epochs.jsonl"), read_jsonl(next(straight.rglob("epochs.jsonl"))))


@pytest.mark.slow
@pytest.mark.parametrize("searcher", sorted(builtin_searchers()))
def test_every_searcher_runs_two_seeds_and_resumes_exactly(searcher, data_dir, search_data, tmp_path, capsys):
    """Smoke search of 2 seeds computed together; then a copy of it taken back to its checkpoint of epoch 2 (its
    later records and summary dropped, as a kill after that checkpoint leaves it) and resumed equals the straight
    run, so each searcher's extra state (teacher outputs, Dirichlet streams, unroll windows) survives the per-seed
    checkpoints (epoch 3's diagnostics, computed after the restart, included). How a kill or Ctrl-C reaches that
    state is the searcher-independent part, tested once for DARTS (the SIGKILL and interrupt tests here)."""
    args = ["--searcher", searcher, *epochs_diagnosed_last(3), "--seeds", "2", "--seed-batch", "2"]
    assert main(smoke_args(data_dir, tmp_path / "straight", *args)) == 0
    straight = sorted((tmp_path / "straight").rglob("epochs.jsonl"))
    assert len(straight) == 2 and all(len(read_jsonl(p)) == 3 for p in straight)

    shutil.copytree(tmp_path / "straight", tmp_path / "resumed")
    for records in sorted((tmp_path / "resumed").rglob("epochs.jsonl")):
        records.write_text(records.read_text().splitlines(keepends=True)[0])  # checkpoint 2 completes epoch 2
        (records.parent / "summary.json").unlink()
    capsys.readouterr()
    assert main(smoke_args(data_dir, tmp_path / "resumed", *args)) == 0
    assert capsys.readouterr().err.count("resuming after epoch 2/3") == 2
    for seed, reference in enumerate(straight):
        assert_records_close(read_jsonl(next((tmp_path / "resumed").rglob(f"seed-{seed}")) / "epochs.jsonl"),
                             read_jsonl(reference))


@pytest.mark.slow
@pytest.mark.faults
def test_diverging_search_stops_with_a_record_saying_so(data_dir, search_data, tmp_path, capsys):
    code = main(smoke_args(data_dir, tmp_path, "--epochs", "3", "--set", "w_lr=1e30", "--set", "w_lr_min=1e30"))
    assert code == 1
    assert "diverged in epoch" in capsys.readouterr().err
    folder = next(tmp_path.rglob("seed-0"))
    records = read_jsonl(folder / "epochs.jsonl")
    assert records[-1]["status"] == "diverged" and records[-1]["genotype"] is None
    assert records[-1]["arch_index"] is None and records[-1]["hessian_eig_max"] is None
    assert all(r["status"] == "ok" and r["genotype"] for r in records[:-1])  # no NaN genotype ever written
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["status"] == "diverged" and summary["epochs_done"] == len(records) - 1


@pytest.mark.slow
def test_threads_are_the_runs_and_recorded_then_restored(search_data, tmp_path):
    import torch

    before = torch.get_num_threads()
    assert main(smoke_args(search_data, tmp_path, "--threads", "1", "--set", "diagnostics_every=0")) == 0
    meta = json.loads(next(tmp_path.rglob("config.json")).read_text())
    assert meta["device"].endswith(", 1 thread)") and torch.get_num_threads() == before
    assert meta["thread_policy"] == "pinned"
    assert [record["threads"] for record in read_jsonl(next(tmp_path.rglob("epochs.jsonl")))] == [[1]] * 2


@pytest.mark.slow
def test_by_default_a_run_takes_the_free_cores_and_records_each_epochs_threads(search_data, tmp_path, monkeypatch):
    from harness import threads

    monkeypatch.setenv(threads.THREADS_ENV, "auto")
    monkeypatch.setattr(threads, "free_threads", lambda others: 1)  # as if the other processes kept all but one busy
    assert main(smoke_args(search_data, tmp_path, "--set", "diagnostics_every=0")) == 0
    meta = json.loads(next(tmp_path.rglob("config.json")).read_text())
    assert meta["thread_policy"] == "free cores" and meta["device"].endswith(", 1 thread)")
    assert [record["threads"] for record in read_jsonl(next(tmp_path.rglob("epochs.jsonl")))] == [[1]] * 2


@pytest.mark.slow
def test_more_evaluation_images_than_the_set_holds_is_said(search_data, tmp_path, capsys):
    assert main(smoke_args(search_data, tmp_path, "--epochs", "1", "--set", "eval_images=1000000")) == 0
    err = capsys.readouterr().err
    assert re.search(r"eval_images=1000000: the heldout evaluation set holds \d+ images; all \d+ are used", err), err


@pytest.mark.slow
def test_a_run_refused_before_its_first_epoch_leaves_no_folder(search_data, tmp_path, capsys, monkeypatch):
    from foundation.errors import UserError
    from harness import runner

    def refused(*args, **kwargs):
        raise UserError("refused for the test")

    (tmp_path / "kept").mkdir()  # the results root and what else it holds stay
    monkeypatch.setattr(runner, "device_data", refused)
    assert main(smoke_args(search_data, tmp_path, "--seeds", "2")) == 2
    assert "refused for the test" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept"]
