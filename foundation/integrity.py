"""Data files verified by checksum on first use, the result cached per user.

A data file is trusted when its SHA-256 equals the digest in its ``<file>.sha256`` sidecar (written by our
importers) or one of the known digests of the releases this project was built with (the official CIFAR-10
tarballs of CIFAR-10 and CIFAR-100; the NB201 split files, the converted NB201/NB101 files and the JPEG CIFAR-10 copy of
the project's data folder). A file with neither is used on the strength of its format checks alone. A mismatch is a
one-line error naming the file: it was modified, truncated or replaced. Hashing happens once per (path, size,
modification time): the verified digest is cached in ``<cache>/verified.json``.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from foundation.atomic import atomic_write, atomic_write_json
from foundation.errors import UserError
from foundation.paths import cache_dir

# file name -> (algorithm, digests of the known releases); the official tarball is known by its published MD5
KNOWN_DIGESTS: dict[str, tuple[str, frozenset[str]]] = {
    "cifar-10-python.tar.gz": ("md5", frozenset({"c58f30108f718f92721af3b95e74349a"})),
    "cifar-100-python.tar.gz": ("md5", frozenset({"eb9058c3a382ffc7106e4002c42a8d85"})),
    "cifar10_jpeg_q75.npz": ("sha256", frozenset({"d18053244b3721e5daa26c0b71e1b71193e233142a9840e12bbf7c1c6c667db9"})),
    "nb201_table.csv.gz": ("sha256", frozenset({"5219aae11dc442fe735b2a93d0b19eb9b0030f524d75d69cde1a5281b9cc4539"})),
    "cifar-split.json": ("sha256", frozenset({"85ed4c131320a55847bdd7d76beee0c220cf47fd97d0b55c4a0f3c600f4e8aa8"})),
    "cifar100-test-split.json": (
        "sha256", frozenset({"90fee50b01d7be5952f2af7b0089ff72bcafa32cd491770e1d82dff1ace4aaec"})),
    "imagenet16-120-test-split.json": (
        "sha256", frozenset({"c036a2ef4e24ee9bc826def4edffd5d10429676d6dbba35e583113e7e9523675"})),
    "oneshot1_space_nb101_hashes.csv.gz": (
        "sha256", frozenset({"c184481feee6504a2901bc289ac4d387405d0058562d031b9f7a9a0926cdff27"})),
}
CACHE_FILE = "verified.json"


def digest_of(path: Path, algorithm: str = "sha256") -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def write_sidecar(path: Path) -> None:
    """Record a file we produced (an import) as trusted."""
    digest = digest_of(path)
    atomic_write(_sidecar(path), lambda handle: handle.write(f"{digest}  {path.name}\n".encode()))


def verified_sha256(path: Path) -> str:
    """The file's SHA-256, after checking it against its sidecar or the known releases (cached)."""
    path = Path(path).resolve()
    stat = path.stat()
    key = f"{path}|{stat.st_size}|{stat.st_mtime_ns}"
    cache = cache_dir() / CACHE_FILE
    try:
        known = json.loads(cache.read_text()) if cache.is_file() else {}
    except ValueError:
        known = {}
    if key in known:
        return known[key]
    digest = digest_of(path)
    sidecar = _sidecar(path)
    if sidecar.is_file() and sidecar.read_text().strip():
        algorithm, expected = "sha256", frozenset({sidecar.read_text().split()[0]})
    else:
        algorithm, expected = KNOWN_DIGESTS.get(path.name, ("sha256", None))
    if expected is not None:
        actual = digest if algorithm == "sha256" else digest_of(path, algorithm)
        if actual not in expected:
            raise UserError(f"data file {path} failed its checksum ({algorithm} {actual[:16]}..., expected "
                            f"{' or '.join(e[:16] + '...' for e in sorted(expected))}): it was modified, "
                            "truncated or replaced; restore it or re-import it")
    known = {k: v for k, v in known.items() if Path(k.split("|")[0]).exists()}  # forget deleted files
    known[key] = digest
    atomic_write_json(cache, known)
    return digest
