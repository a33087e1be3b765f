"""A run folder's checkpoints: the last two, each verified by its SHA-256 before it is trusted.

Layout: ``checkpoint-<epoch>.pt`` files and ``checkpoints.json``, the manifest naming the current and the
previous one with their digests. A save writes the new file atomically, then atomically replaces the manifest,
then deletes files the manifest no longer names: a kill at any moment leaves a manifest whose files exist.
A load tries the current checkpoint, and when it is missing, truncated or altered (digest mismatch, unreadable)
falls back to the previous one and says so; the epochs after it are simply redone. Temp files left by a writer
that was killed mid-write are removed (the caller holds the folder's lock, so no writer is running).
"""
from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any, Callable

import torch
from pydantic import Field, StrictInt

from foundation.atomic import atomic_write, atomic_write_json
from foundation.records import DamagedFile, StoredSchema, read_json_file

MANIFEST = "checkpoints.json"
KEEP = 2


class Entry(StoredSchema):
    file: str = Field(pattern=r"^checkpoint-\d+\.pt$")
    epoch: StrictInt = Field(ge=1)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    bytes: StrictInt = Field(ge=0)


class Manifest(StoredSchema):
    checkpoints: list[Entry]


class CheckpointStore:
    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def _entries(self) -> list[dict[str, Any]]:
        """The manifest's entries, newest first; a ``DamagedFile`` when it is not a valid manifest."""
        path = self.folder / MANIFEST
        if not path.is_file():
            return []
        try:
            manifest = read_json_file(path, Manifest)
        except DamagedFile as damage:
            raise DamagedFile(path, f"checkpoint manifest {damage.problem}") from None
        return [entry.model_dump() for entry in manifest.checkpoints]

    def clear(self) -> None:
        """Forget every checkpoint (a run started over): the manifest first, then the files."""
        (self.folder / MANIFEST).unlink(missing_ok=True)
        self._remove_unlisted(set())

    def save(self, state: dict[str, Any], epoch: int) -> None:
        buffer = io.BytesIO()
        torch.save(state, buffer)
        data = buffer.getvalue()
        name = f"checkpoint-{epoch:04d}.pt"
        atomic_write(self.folder / name, lambda handle: handle.write(data))
        kept = [e for e in self._entries() if e["file"] != name and e["epoch"] < epoch]
        entries = [{"file": name, "epoch": epoch, "sha256": hashlib.sha256(data).hexdigest(),
                    "bytes": len(data)}] + kept[:KEEP - 1]
        atomic_write_json(self.folder / MANIFEST, {"checkpoints": entries})
        self._remove_unlisted({e["file"] for e in entries})

    def _remove_unlisted(self, listed: set[str]) -> None:
        for path in self.folder.glob("checkpoint-*.pt"):
            if path.name not in listed:
                path.unlink(missing_ok=True)

    def remove_stale_temp_files(self) -> None:
        for path in self.folder.glob(".*.tmp"):
            path.unlink(missing_ok=True)

    def load(self, device: torch.device, log: Callable[[str], None],
             max_epoch: int | None = None) -> dict[str, Any] | None:
        """The newest checkpoint (of at most ``max_epoch``) that verifies, or None when there is none; UserError
        when every one is bad."""
        entries = [e for e in self._entries() if max_epoch is None or e["epoch"] <= max_epoch]
        problems = []
        for entry in entries:
            path = self.folder / entry["file"]
            data, problem = _read_verified(path, entry)
            if problem is None:
                try:
                    state = torch.load(io.BytesIO(data), map_location=device, weights_only=False)
                except Exception as exc:  # noqa: BLE001 - any unreadable file is reported the same way
                    problem = f"unreadable ({type(exc).__name__})"
            if problem is None:
                if problems:
                    log(f"checkpoint {problems[-1]}; falling back to {path.name} (epoch {entry['epoch']}), the "
                        "epochs after it are redone")
                return state
            problems.append(f"{path} is {problem}")
        if problems:
            raise DamagedFile(self.folder, "no usable checkpoint (" + "; ".join(problems) + ")")
        return None


def _read_verified(path: Path, entry: dict[str, Any]) -> tuple[bytes, str | None]:
    """The file's bytes (read once) and what is wrong with them, if anything."""
    if not path.is_file():
        return b"", "missing"
    data = path.read_bytes()
    if len(data) != entry["bytes"]:
        return data, f"truncated ({len(data)} of {entry['bytes']} bytes)"
    if hashlib.sha256(data).hexdigest() != entry["sha256"]:
        return data, "corrupt (SHA-256 mismatch)"
    return data, None
