"""Read the official NB101 files (``nasbench_only108.tfrecord`` / ``nasbench_full.tfrecord``) without TensorFlow.

Framing (TFRecord): per record a little-endian uint64 length, a uint32 masked CRC of the length, the payload, a
uint32 masked CRC of the payload. The length's CRC (CRC-32C) is checked, so that a file of another format is
rejected at its first record instead of being read as a huge length; payload CRCs are not (a truncated file is
still detected by its framing, a flipped payload byte by the JSON/protobuf parser).
Payload (NB101's ``api.py``): a JSON list ``[module_hash, epochs, adjacency bits, comma-joined ops, metrics]``,
metrics being base64 of a ``ModelMetrics`` protobuf: ``repeated EvaluationData evaluation_data = 1;
int32 trainable_parameters = 2; double total_time = 3`` with ``EvaluationData {double current_epoch = 1;
double training_time = 2; double train_accuracy = 3; double validation_accuracy = 4; double test_accuracy = 5;
string checkpoint_path = 6}``. The last evaluation of a run is the one at its final epoch.
"""
from __future__ import annotations

import base64
import csv
import gzip
import io
import json
import struct
from collections import defaultdict
from pathlib import Path
from typing import Any, BinaryIO, Iterator

from foundation.atomic import atomic_write
from foundation.errors import UserError
from foundation.integrity import write_sidecar

TABLE_COLUMNS = ("hash", "epochs", "valid_acc_runs", "test_acc_runs", "params", "train_time_s_runs")


def _crc32c_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
        table.append(crc)
    return table


_CRC32C = _crc32c_table()


def masked_crc32c(data: bytes) -> int:
    """TFRecord's checksum: CRC-32C (Castagnoli), rotated right by 15 bits plus a constant."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC32C[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    crc ^= 0xFFFFFFFF
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def read_records(handle: BinaryIO, name: str) -> Iterator[bytes]:
    while True:
        header = handle.read(12)
        if not header:
            return
        if len(header) < 12:
            raise UserError(f"corrupt data file {name}: truncated record header")
        if struct.unpack("<I", header[8:])[0] != masked_crc32c(header[:8]):
            raise UserError(f"corrupt data file {name}: record header checksum mismatch (not a TFRecord file?)")
        (length,) = struct.unpack("<Q", header[:8])
        payload = handle.read(length)
        if len(payload) < length or len(handle.read(4)) < 4:
            raise UserError(f"corrupt data file {name}: truncated record")
        yield payload


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def parse_message(data: bytes) -> dict[int, list[Any]]:
    """Protobuf wire format to {field number: [raw values]} (varint int, fixed64 double, bytes, fixed32 float)."""
    fields: dict[int, list[Any]] = defaultdict(list)
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 1:
            (value,), pos = struct.unpack("<d", data[pos:pos + 8]), pos + 8
        elif wire == 2:
            length, pos = _varint(data, pos)
            value, pos = data[pos:pos + length], pos + length
        elif wire == 5:
            (value,), pos = struct.unpack("<f", data[pos:pos + 4]), pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        fields[number].append(value)
    return fields


def parse_record(payload: bytes) -> dict[str, Any]:
    module_hash, epochs, _adjacency, _ops, metrics_b64 = json.loads(payload.decode())
    metrics = parse_message(base64.b64decode(metrics_b64))
    final = parse_message(metrics[1][-1])
    return {"hash": module_hash, "epochs": int(epochs), "valid_acc": 100.0 * final[4][0],
            "test_acc": 100.0 * final[5][0], "params": metrics.get(2, [None])[0],
            "train_time_s": final[2][0] if 2 in final else None}


def import_tfrecord(path: Path, out_path: Path, epochs: int = 108) -> int:
    """Convert the official file into the compact table (one row per hash, runs ';'-joined); returns rows."""
    runs: dict[str, list[dict[str, Any]]] = defaultdict(list)
    try:
        with open(path, "rb") as handle:
            for payload in read_records(handle, str(path)):
                record = parse_record(payload)
                if record["epochs"] == epochs:
                    runs[record["hash"]].append(record)
    except (ValueError, KeyError, IndexError, UnicodeDecodeError, struct.error) as exc:
        raise UserError(f"corrupt data file {path}: {exc}") from None
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(TABLE_COLUMNS)
    for module_hash in sorted(runs):
        rows = runs[module_hash]
        writer.writerow([module_hash, epochs, ";".join(repr(r["valid_acc"]) for r in rows),
                         ";".join(repr(r["test_acc"]) for r in rows), rows[0]["params"],
                         ";".join(repr(r["train_time_s"]) for r in rows)])
    payload = gzip.compress(text.getvalue().encode())
    atomic_write(out_path, lambda handle: handle.write(payload))
    write_sidecar(out_path)
    return len(runs)
