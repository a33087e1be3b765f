"""Faults (``pytest -m faults``, with the kill, truncated-line, lock and divergence tests of test_search_run):
corrupt and truncated checkpoints, a full disk while checkpointing and while appending a record. After each, a
re-run yields exactly the records of an uninterrupted run, with no duplicated or missing epoch and no temp file."""
from __future__ import annotations

import errno
import json

import pytest

import harness.checkpoints
import harness.run_folder
from conftest import assert_records_close, epochs_diagnosed_last, smoke_args
from foundation.atomic import read_jsonl
from harness.cli import main

pytestmark = [pytest.mark.data, pytest.mark.faults, pytest.mark.slow]  # every test here runs searches
EPOCHS = epochs_diagnosed_last(3)


@pytest.fixture(scope="module")
def straight(data_dir, search_data, tmp_path_factory) -> list[dict]:
    """The records of the uninterrupted run, computed once for every fault below."""
    out = tmp_path_factory.mktemp("straight")
    assert main(smoke_args(data_dir, out, *EPOCHS)) == 0
    return read_jsonl(next(out.rglob("epochs.jsonl")))


def _finished_then_reopened(data_dir, out):
    """A finished 3-epoch run whose summary is removed: a re-run resumes from its newest checkpoint."""
    assert main(smoke_args(data_dir, out, *EPOCHS)) == 0
    folder = next(out.rglob("seed-0"))
    (folder / "summary.json").unlink()
    return folder


def _assert_clean(folder) -> None:
    assert not list(folder.glob(".*.tmp"))
    manifest = json.loads((folder / "checkpoints.json").read_text())["checkpoints"]
    assert sorted(p.name for p in folder.glob("checkpoint-*.pt")) == sorted(e["file"] for e in manifest)


@pytest.mark.parametrize("damage", ["flip a byte", "truncate"])
def test_a_damaged_newest_checkpoint_falls_back_to_the_previous_one(damage, data_dir, straight, tmp_path, capsys):
    folder = _finished_then_reopened(data_dir, tmp_path / "run")
    newest = folder / "checkpoint-0003.pt"
    data = bytearray(newest.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    else:
        data[len(data) // 2] ^= 0xFF
    newest.write_bytes(bytes(data))
    capsys.readouterr()
    assert main(smoke_args(data_dir, tmp_path / "run", *EPOCHS)) == 0
    err = capsys.readouterr().err
    expected = "truncated (" if damage == "truncate" else "corrupt (SHA-256 mismatch); "
    assert f"checkpoint-0003.pt is {expected}" in err and "falling back to checkpoint-0002.pt (epoch 2)" in err
    assert_records_close(read_jsonl(folder / "epochs.jsonl"), straight)
    _assert_clean(folder)


def test_no_usable_checkpoint_is_a_one_line_error(data_dir, straight, tmp_path, capsys):
    folder = _finished_then_reopened(data_dir, tmp_path / "run")
    for path in folder.glob("checkpoint-*.pt"):
        path.write_bytes(b"not a checkpoint")
    capsys.readouterr()
    assert main(smoke_args(data_dir, tmp_path / "run", *EPOCHS)) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"harness: error: {folder}: no usable checkpoint") and len(err.splitlines()) == 1
    assert "--repair` starts the run over" in err
    assert main([*smoke_args(data_dir, tmp_path / "run", *EPOCHS), "--repair"]) == 0
    assert_records_close(read_jsonl(folder / "epochs.jsonl"), straight)


def test_a_full_disk_while_checkpointing_loses_nothing(data_dir, straight, tmp_path, monkeypatch, capsys):
    real = harness.checkpoints.atomic_write

    def half_then_full(path, write):
        if path.name != "checkpoint-0002.pt":
            return real(path, write)

        def write_half(handle):
            handle.write(b"\0" * 1000)
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, write_half)

    monkeypatch.setattr(harness.checkpoints, "atomic_write", half_then_full)
    assert main(smoke_args(data_dir, tmp_path / "run", *EPOCHS)) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[-1].startswith("harness: error: No space left on device") and "checkpoint-0002.pt" in err[-1]
    folder = next((tmp_path / "run").rglob("seed-0"))
    _assert_clean(folder)  # the temp file of the failed write is gone
    assert [r["epoch"] for r in read_jsonl(folder / "epochs.jsonl")] == [1]
    monkeypatch.setattr(harness.checkpoints, "atomic_write", real)
    assert main(smoke_args(data_dir, tmp_path / "run", *EPOCHS)) == 0
    assert_records_close(read_jsonl(folder / "epochs.jsonl"), straight)


def test_a_full_disk_while_appending_a_record_loses_nothing(data_dir, straight, tmp_path, monkeypatch, capsys):
    real = harness.run_folder.append_jsonl

    def half_line_then_full(path, record):
        if record["epoch"] != 2:
            return real(path, record)
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record)[:50])
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(harness.run_folder, "append_jsonl", half_line_then_full)
    assert main(smoke_args(data_dir, tmp_path / "run", *EPOCHS)) == 1
    assert "No space left on device" in capsys.readouterr().err
    folder = next((tmp_path / "run").rglob("seed-0"))
    assert len(read_jsonl(folder / "epochs.jsonl")) == 1  # the half line is not a record
    monkeypatch.setattr(harness.run_folder, "append_jsonl", real)
    assert main(smoke_args(data_dir, tmp_path / "run", *EPOCHS)) == 0
    assert_records_close(read_jsonl(folder / "epochs.jsonl"), straight)


def test_a_record_line_left_without_its_newline_is_not_continued(data_dir, straight, tmp_path, interrupt):
    """A kill between a record's text and its newline, past the newest checkpoint: the fragment is no record, and
    the resume rewrites the file rather than appending the next record onto it."""
    interrupt(3)
    assert main(smoke_args(data_dir, tmp_path / "run", *EPOCHS)) == 130
    interrupt(None)
    records = next((tmp_path / "run").rglob("epochs.jsonl"))
    done = len(read_jsonl(records))
    with open(records, "ab") as handle:
        handle.write(b'{"epoch": %d, "status": "o' % (done + 1))
    assert main(smoke_args(data_dir, tmp_path / "run", *EPOCHS)) == 0
    assert_records_close(read_jsonl(records), straight)
    assert main(smoke_args(data_dir, tmp_path / "run", *EPOCHS)) == 0  # and the next command reads it as finished
