"""Damaged run folders and exhausted resources (``pytest -m faults``): each damage is one line naming the file and
``--repair``; ``--repair`` then yields exactly the records of the undamaged run. Resuming on other data, running
out of memory mid-run and SIGTERM are one line too, with the last checkpoint kept."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import pytest
import torch

from conftest import REPO, assert_records_close, smoke_args
from foundation.atomic import read_jsonl
from harness.cli import main

pytestmark = [pytest.mark.data, pytest.mark.faults, pytest.mark.slow]  # every test here runs searches
FOLDER = Path("nb201") / "darts" / "smoke" / "seed-0"


@pytest.fixture(scope="module")
def finished(tmp_path_factory, search_data) -> Path:
    """A finished smoke search (2 epochs, seed 0), copied by each test before it damages it."""
    out = tmp_path_factory.mktemp("finished")
    assert main(smoke_args(search_data, out)) == 0
    return out


def _lines(path: Path, edit: Callable[[list[bytes]], list[bytes]]) -> None:
    path.write_bytes(b"".join(edit(path.read_bytes().splitlines(keepends=True))))


def _unfinished(folder: Path) -> None:
    (folder / "summary.json").unlink()


DAMAGES: dict[str, tuple[str, Callable[[Path], None], str]] = {
    # id: (file named in the error, damage to the run folder, fragment of the error)
    "records-garbage-line": ("epochs.jsonl", lambda f: _lines(f / "epochs.jsonl", lambda ls: [b"garbage\n", *ls[1:]]),
                             "line 1: not JSON"),
    "records-not-utf8": ("epochs.jsonl", lambda f: _lines(f / "epochs.jsonl", lambda ls: [ls[0], b"\xff\xfe\n"]),
                         "line 2: not UTF-8 text"),
    "records-bad-field": ("epochs.jsonl", lambda f: _lines(
        f / "epochs.jsonl", lambda ls: [ls[0], ls[1].replace(b'"epoch": 2', b'"epoch": "two"')]),
        "line 2: bad field epoch"),
    "records-lost-last": ("epochs.jsonl", lambda f: _lines(f / "epochs.jsonl", lambda ls: ls[:1]),
                          "1 records where summary.json counts 2 epochs"),
    "records-after-summary": ("epochs.jsonl", lambda f: _lines(
        f / "epochs.jsonl", lambda ls: [*ls, ls[-1].replace(b'"epoch": 2', b'"epoch": 3')]),
                              "3 epochs recorded where summary.json counts 2: records were added after the run ended"),
    "config-not-json": ("config.json", lambda f: (f / "config.json").write_text("{"), "not JSON"),
    "config-a-list": ("config.json", lambda f: (f / "config.json").write_text("[1, 2]"),
                      "a JSON list where an object was expected"),
    "summary-truncated": ("summary.json", lambda f: _lines(f / "summary.json", lambda ls: ls[:3]), "not JSON"),
    "summary-other-format": ("summary.json", lambda f: (f / "summary.json").write_text('{"status": "done"}'),
                             "bad field epochs_done"),
    "summary-a-string": ("summary.json", lambda f: (f / "summary.json").write_text('"done"'),
                         "a JSON str where an object was expected"),
    "manifest-lacks-fields": ("checkpoints.json", lambda f: (
        _unfinished(f), (f / "checkpoints.json").write_text('{"checkpoints": [{"file": "checkpoint-0002.pt"}]}')),
        "checkpoint manifest bad field checkpoints.0.epoch"),
    "manifest-not-json": ("checkpoints.json", lambda f: (_unfinished(f), (f / "checkpoints.json").write_text("[")),
                          "checkpoint manifest not JSON"),
}


@pytest.mark.parametrize("case", DAMAGES, ids=list(DAMAGES))
def test_a_damaged_file_is_named_and_repaired(case, finished, search_data, tmp_path, capsys):
    name, damage, fragment = DAMAGES[case]
    out = tmp_path / "out"
    shutil.copytree(finished, out)
    reference = read_jsonl(finished / FOLDER / "epochs.jsonl")
    damage(out / FOLDER)
    capsys.readouterr()
    assert main(smoke_args(search_data, out)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert name in err and fragment in err and "--repair" in err, err

    assert main([*smoke_args(search_data, out), "--repair"]) == 0
    repaired = capsys.readouterr().err
    assert repaired.count(fragment) <= 2 and repaired.count("finishing the run again") <= 1, repaired  # said once
    folder = out / FOLDER
    assert_records_close(read_jsonl(folder / "epochs.jsonl"), reference)
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["status"] == "done" and summary["epochs_done"] == 2
    assert json.loads((folder / "config.json").read_text())["config"]["preset"] == "smoke"
    assert main(smoke_args(search_data, out)) == 0  # and it is an ordinary finished run again
    assert "already finished" in capsys.readouterr().err


def _edit_config(folder: Path, **fields) -> None:
    meta = json.loads((folder / "config.json").read_text())
    meta["config"].update(fields)
    (folder / "config.json").write_text(json.dumps(meta))


def _unfinished_copy_as_seed_1(out: Path) -> None:
    _unfinished(out / FOLDER)
    shutil.copytree(out / FOLDER, out / FOLDER.with_name("seed-1"))


MISPLACED: dict[str, tuple[Callable[[Path], None], tuple[str, ...], str]] = {
    # id: (what is done to the finished run's results, arguments of the command, fragment of the error)
    "seed-folder-copied-as-another-seed": (_unfinished_copy_as_seed_1, ("--seed", "1"),
                                           "seed-1 but its config.json describes nb201/darts/smoke/seed-0"),
    "config-edited-to-another-searcher": (lambda out: _edit_config(out / FOLDER, searcher="gdas"), (),
                                          "describes nb201/gdas/smoke/seed-0"),
    "config-edited-to-another-space": (lambda out: _edit_config(out / FOLDER, space="1shot1-s2"), (),
                                       "describes 1shot1-s2/darts/smoke/seed-0"),
    "config-edited-epochs": (lambda out: _edit_config(out / FOLDER, epochs=3), (),
                             "holds a different configuration"),
}


@pytest.mark.parametrize("case", MISPLACED, ids=list(MISPLACED))
def test_a_folder_that_is_not_this_run_is_refused_by_run_and_skipped_by_report(case, finished, search_data, tmp_path,
                                                                               capsys):
    """Finished or not, a folder whose config.json describes another run (copied, renamed, edited) is never
    resumed, skipped as finished or averaged in."""
    change, extra, fragment = MISPLACED[case]
    out = tmp_path / "out"
    shutil.copytree(finished, out)
    change(out)
    capsys.readouterr()
    assert main(smoke_args(search_data, out, *extra)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err and fragment in err, err
    if case != "config-edited-epochs":  # its folder name carries no hash: the report cannot tell
        assert main(["report", str(out), "--out", str(tmp_path / "report"), "--no-figures"]) in (0, 2)
        said = capsys.readouterr()
        assert "skipping" in said.out + said.err and fragment.split(" but ")[-1] in said.out + said.err


def test_a_class_of_the_same_name_does_not_take_over_a_finished_run(finished, search_data, tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(finished, out)
    meta = json.loads((out / FOLDER / "config.json").read_text())
    meta["searcher_class"] = "someone_elses_package:Darts"
    (out / FOLDER / "config.json").write_text(json.dumps(meta))
    capsys.readouterr()
    assert main(smoke_args(search_data, out)) == 2
    err = capsys.readouterr().err.strip()
    assert "was made by someone_elses_package:Darts, not searchers.darts:Darts" in err, err


def test_resuming_on_other_data_is_refused(search_data, tmp_path, capsys, interrupt):
    out = tmp_path / "out"
    interrupt(2)
    assert main(smoke_args(search_data, out)) == 130
    interrupt(None)
    other = tmp_path / "other-data"  # the same table and images, without the NB201 split file
    (other / "nb201").mkdir(parents=True)
    for path in (search_data / "nb201").glob("nb201_table.csv.gz*"):
        (other / "nb201" / path.name).symlink_to(path)
    (other / "cifar10").symlink_to(search_data / "cifar10")
    capsys.readouterr()
    assert main(smoke_args(other, out)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "was searched on other data (split=nb201-cifar-split)" in err, err
    assert "(split=seeded-split-rng0)" in err
    assert main(smoke_args(search_data, out)) == 0  # the data it was made with: it resumes


def test_out_of_memory_mid_run_names_the_settings_and_keeps_the_checkpoint(search_data, tmp_path, capsys,
                                                                           monkeypatch, finished):
    from harness.epoch import EpochRunner

    original = EpochRunner.run

    def exhausted(self, searcher, step_fn, batch, epoch, clock):
        if epoch == 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return original(self, searcher, step_fn, batch, epoch, clock)

    monkeypatch.setattr(EpochRunner, "run", exhausted)
    out = tmp_path / "out"
    assert main(smoke_args(search_data, out)) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and err.count("harness: error") == 1, err  # after the progress lines
    assert ("out of cpu memory in epoch 2 with channels=2, cells_per_stage=1, batch_size=32, precision=fp32; the "
            "checkpoint of epoch 1 is kept") in err
    monkeypatch.setattr(EpochRunner, "run", original)
    assert main(smoke_args(search_data, out)) == 0
    assert_records_close(read_jsonl(out / FOLDER / "epochs.jsonl"), read_jsonl(finished / FOLDER / "epochs.jsonl"))


def _wait_for(condition: Callable[[], bool], timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline and not condition():
        time.sleep(0.05)


def _children(pid: int) -> list[int]:
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return children


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_sigterm_ends_a_run_with_a_message_and_a_killed_sweep_takes_its_workers(search_data, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "harness.cli", *smoke_args(search_data, out, "--epochs", "30")],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(lambda: any(read_jsonl(path) for path in out.rglob("epochs.jsonl")))
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM
    assert err.strip().splitlines()[-1] == ("harness: terminated (SIGTERM); the run resumes from its last checkpoint "
                                           "when re-run")

    sweep = tmp_path / "sweep.yaml"
    sweep.write_text("preset: smoke\nspaces: [nb201]\nsearchers: [darts]\nseeds: 2\nepochs: 30\n")
    proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "sweep", str(sweep), "--device", "cpu",
                             "--max-parallel", "1", "--data-dir", str(search_data), "--out", str(tmp_path / "sweep")],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for(lambda: any(read_jsonl(path) for path in (tmp_path / "sweep").rglob("epochs.jsonl")))
    workers = _children(proc.pid)  # the pool's workers (and multiprocessing's resource tracker)
    assert workers, "the sweep started no worker"
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    _wait_for(lambda: not any(_alive(pid) for pid in workers), timeout=30)
    assert not any(_alive(pid) for pid in workers), "a worker outlived the killed sweep"


def test_a_folder_written_before_a_run_field_existed_is_still_this_run(finished, search_data, tmp_path, capsys):
    """A run field added later (``run_config.ADDED_FIELDS``) is read at the value the code used before it: the
    older finished folder is skipped as finished, not refused, and a hashed name keeps its hash."""
    from foundation.run_config import ADDED_FIELDS, config_hash

    out = tmp_path / "out"
    shutil.copytree(finished, out)
    meta = json.loads((out / FOLDER / "config.json").read_text())
    current = dict(meta["config"])
    for key in ADDED_FIELDS:
        del meta["config"][key]
    (out / FOLDER / "config.json").write_text(json.dumps(meta))
    capsys.readouterr()
    assert main(smoke_args(search_data, out)) == 0
    said = capsys.readouterr()
    assert "already finished" in said.out + said.err, said
    assert config_hash(meta["config"]) == config_hash(current)
    assert all(config_hash({**current, key: "other"}) != config_hash(current) for key in ADDED_FIELDS)
