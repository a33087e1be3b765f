"""The NB101 TFRecord reader, against files written here by a small TFRecord + protobuf writer."""
from __future__ import annotations

import base64
import json
import struct

import pytest

from benchmarks.nb101.table import OFFICIAL_FILE, load_table
from benchmarks.nb101.tfrecord import masked_crc32c, parse_message
from harness.cli import main


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _double(number: int, value: float) -> bytes:
    return _varint(number << 3 | 1) + struct.pack("<d", value)


def _bytes(number: int, value: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(value)) + value


def evaluation(epoch: float, seconds: float, train: float, valid: float, test: float) -> bytes:
    return (_double(1, epoch) + _double(2, seconds) + _double(3, train) + _double(4, valid) + _double(5, test)
            + _bytes(6, b"/tmp/ckpt"))


def record(module_hash: str, epochs: int, valid: float, test: float, params: int) -> bytes:
    metrics = (_bytes(1, evaluation(epochs / 2, 100.0, 0.5, 0.4, 0.3))
               + _bytes(1, evaluation(epochs, 200.0, 1.0, valid, test))
               + _varint(2 << 3 | 0) + _varint(params) + _double(3, 210.0))
    payload = json.dumps([module_hash, epochs, "0110001000100000", "input,conv3x3-bn-relu,maxpool3x3,output",
                          base64.b64encode(metrics).decode()]).encode()
    length = struct.pack("<Q", len(payload))
    return length + struct.pack("<I", masked_crc32c(length)) + payload + b"\0" * 4  # payload CRCs are not checked


def test_crc32c_check_value():
    """CRC-32C("123456789") = 0xE3069283 (the standard check value), after undoing TFRecord's mask."""
    masked = masked_crc32c(b"123456789")
    rotated = (masked - 0xA282EAD8) & 0xFFFFFFFF
    assert ((rotated << 15) | (rotated >> 17)) & 0xFFFFFFFF == 0xE3069283


def test_a_file_of_another_format_is_rejected_at_its_first_header(tmp_path, capsys):
    source = tmp_path / "table.csv"
    source.write_text("hash,valid,test\n" * 10)
    assert main(["data", "import-nb101", str(source), "--data-dir", str(tmp_path / "d")]) == 2
    assert "header checksum mismatch" in capsys.readouterr().err


def test_protobuf_wire_format():
    fields = parse_message(_double(4, 0.93) + _varint(2 << 3) + _varint(300) + _bytes(6, b"x"))
    assert fields[4] == [0.93] and fields[2] == [300] and fields[6] == [b"x"]


def test_import_round_trip_and_lookup(tmp_path, capsys):
    source = tmp_path / "nasbench_only108.tfrecord"
    source.write_bytes(record("a" * 32, 108, 0.91, 0.90, 1234) + record("a" * 32, 108, 0.93, 0.92, 1234)
                       + record("b" * 32, 108, 0.80, 0.81, 99) + record("b" * 32, 36, 0.5, 0.5, 99))
    data_dir = tmp_path / "data"
    assert main(["data", "import-nb101", str(source), "--data-dir", str(data_dir)]) == 0
    assert "wrote 2 NB101 cells" in capsys.readouterr().out
    table = load_table(data_dir)
    row = table.lookup("a" * 32)
    assert row["table"] == "official" and row["valid_runs"] == pytest.approx([91.0, 93.0])
    assert row["valid_acc"] == pytest.approx(92.0) and row["test_acc"] == pytest.approx(91.0)
    assert table.lookup("b" * 32)["valid_runs"] == pytest.approx([80.0])  # the 36-epoch run is left out
    assert table.lookup("c" * 32)["in_table"] is False
    assert (data_dir / OFFICIAL_FILE).is_file()


def test_truncated_tfrecord_is_a_clear_error(tmp_path, capsys):
    source = tmp_path / "cut.tfrecord"
    source.write_bytes(record("a" * 32, 108, 0.91, 0.90, 1)[:-10])
    assert main(["data", "import-nb101", str(source), "--data-dir", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err
    assert "corrupt data file" in err and "cut.tfrecord" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "d" / OFFICIAL_FILE).exists()
