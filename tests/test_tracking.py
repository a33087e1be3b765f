"""Live tracking: the scalars and the weight image of a record, and a smoke search logged to TensorBoard and W&B
(offline), interrupted and resumed: both hold each epoch exactly once, with the records' values."""
from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest

from conftest import smoke_args
from foundation.records import EpochRecord
from harness.cli import main
from harness.tracking import scalars, weights_image

RECORD = {"epoch": 3, "status": "ok", "lookup": {"cifar10_test": 91.5, "cifar100_test": None}, "skip_count": 2,
          "depth": 3, "hessian_eig_max": 0.25, "train_loss": 1.5, "w_lr": 0.02, "epoch_seconds": 12.0,
          "arch_weights": [[[0.1, 0.6, 0.3], [0.5, 0.25, 0.25]], [[0.9, 0.1]]]}


def test_scalars_and_weight_image_of_a_record():
    record = EpochRecord.from_json(RECORD, Path("x"), "")
    values = scalars(record)
    assert values["lookup/cifar10_test"] == 91.5 and "lookup/cifar100_test" not in values
    assert values["skip_count"] == 2.0 and values["w_lr"] == 0.02 and "arch_acc" not in values
    image = weights_image(record, scale=2)
    assert image.shape == (2 * 4, 2 * 3, 3) and image.dtype == np.uint8  # 2 + blank + 1 rows, 3 ops wide
    assert image[6, 0, 0] == 0 and image[0, 0, 0] > image[0, 2, 0] > 0  # the largest weight (0.9) is the darkest
    assert (image[4:6] == 255).all()  # the blank row between the two tensors
    assert weights_image(EpochRecord.from_json({**RECORD, "arch_weights": None}, Path("x"), "")) is None


def wandb_history(folder: Path) -> list[dict]:
    """The history rows of every offline W&B run file under ``folder`` (a LevelDB-style log of protobuf records:
    7-byte file header, 32 KiB blocks, records of checksum, length, type)."""
    from wandb.proto import wandb_internal_pb2

    rows = []
    for path in sorted(folder.glob("offline-run-*/run-*.wandb")):
        data, pos, pending = path.read_bytes(), 7, b""
        assert data[:4] == b":W&B"
        while pos + 7 <= len(data):
            if 32768 - pos % 32768 < 7:
                pos += 32768 - pos % 32768
                continue
            _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
            pending, pos = pending + data[pos + 7:pos + 7 + length], pos + 7 + length
            if kind in (1, 4):  # a full record, or the last part of one
                record = wandb_internal_pb2.Record()
                record.ParseFromString(pending)
                pending = b""
                if record.WhichOneof("record_type") == "history":
                    rows.append({item.key or "/".join(item.nested_key): json.loads(item.value_json)
                                 for item in record.history.item})
    return rows


@pytest.mark.slow
def test_tensorboard_and_wandb_hold_each_epoch_once_across_a_resume(search_data, tmp_path, interrupt, monkeypatch):
    pytest.importorskip("tensorboard")
    pytest.importorskip("wandb")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    args = smoke_args(search_data, tmp_path, "--log", "tensorboard", "--log", "wandb")
    interrupt(2)
    assert main(args) == 130
    interrupt(None)
    assert main(args) == 0  # resumed from epoch 1's checkpoint
    folder = tmp_path / "nb201" / "darts" / "smoke" / "seed-0"
    records = [json.loads(line) for line in (folder / "epochs.jsonl").read_text().splitlines()]
    events = EventAccumulator(str(folder / "tensorboard")).Reload()
    accuracy = events.Scalars("lookup/cifar10_test")
    assert [event.step for event in accuracy] == [1, 2]
    assert [event.value for event in accuracy] == pytest.approx([r["lookup"]["cifar10_test"] for r in records])
    assert [event.step for event in events.Scalars("skip_count")] == [1, 2]
    assert [event.step for event in events.Images("arch_weights")] == [1, 2]
    history = wandb_history(folder / "wandb")
    assert len(list((folder / "wandb").glob("offline-run-*"))) == 2  # the first process and the resumed one
    assert [row["_step"] for row in history] == [1, 2]  # the resumed process logged only epoch 2
    assert ([row["lookup/cifar10_test"] for row in history]
            == pytest.approx([r["lookup"]["cifar10_test"] for r in records]))
    assert all(row["arch_weights/_type"] == "image-file" for row in history)


def test_an_unknown_backend_is_one_line(search_data, tmp_path, capsys):
    assert main(smoke_args(search_data, tmp_path, "--log", "mlflow")) == 2
    assert "bad value --log mlflow: known: tensorboard, wandb" in capsys.readouterr().err


@pytest.mark.slow
def test_a_sweep_tracks_every_run(search_data, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    sweep_file = tmp_path / "sweep.yaml"
    sweep_file.write_text("preset: smoke\nspaces: [nb201]\nsearchers: [darts]\nseeds: 2\nepochs: 1\n")
    out = tmp_path / "out"
    assert main(["sweep", str(sweep_file), "--out", str(out), "--device", "cpu", "--max-parallel", "1",
                 "--data-dir", str(search_data), "--log", "tensorboard"]) == 0
    folders = sorted(out.rglob("seed-*"))
    assert len(folders) == 2
    for folder in folders:
        events = EventAccumulator(str(folder / "tensorboard")).Reload()
        assert [event.step for event in events.Scalars("lookup/cifar10_test")] == [1]
