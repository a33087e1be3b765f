"""CIFAR-10 images as uint8 arrays, from the official tarball or the offline JPEG copy, plus the NB201 search split.

Sources, in order of preference, inside ``<data>/cifar10/``:

1. ``cifar-10-python.tar.gz`` — the official lossless file (``harness data download-cifar10`` fetches it and
   checks its MD5).
2. ``cifar10_jpeg_q75.npz`` — the genuine images re-encoded as JPEG quality 75 (lossy: absolute accuracies run
   2-3 points low, rankings hold; see its README). Every run records which source it used.

Decoding is done once and cached per user (keyed by the source file's SHA-256), never next to the data.
"""
from __future__ import annotations

import hashlib
import io
import json
import pickle
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from foundation.atomic import atomic_write
from foundation.errors import UserError
from foundation.integrity import verified_sha256
from foundation.paths import cache_dir

OFFICIAL_FILE = "cifar10/cifar-10-python.tar.gz"
OFFICIAL_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
OFFICIAL_MD5 = "c58f30108f718f92721af3b95e74349a"
JPEG_FILE = "cifar10/cifar10_jpeg_q75.npz"
SPLIT_FILE = "nb201/cifar-split.json"
NUM_TRAIN = 50000
MEAN = (0.4914, 0.4822, 0.4465)  # the standard constants of the NB201 reference pipeline
STD = (0.2470, 0.2435, 0.2616)


@dataclass(frozen=True)
class Cifar10:
    x_train: np.ndarray  # (50000, 32, 32, 3) uint8, official order
    y_train: np.ndarray  # (50000,) int64
    x_test: np.ndarray
    y_test: np.ndarray
    source: str  # "official" or "jpeg_q75"
    source_sha256: str


def load_cifar10(data_dir: Path) -> Cifar10:
    data_dir = Path(data_dir)
    official, jpeg = data_dir / OFFICIAL_FILE, data_dir / JPEG_FILE
    if official.is_file():
        source, path, decode = "official", official, _decode_official
    elif jpeg.is_file():
        source, path, decode = "jpeg_q75", jpeg, _decode_jpeg
    else:
        raise UserError(
            f"missing data file {OFFICIAL_FILE} (or {JPEG_FILE}): expected in {data_dir / 'cifar10'} "
            "(run `harness data download-cifar10` online, or copy the official tarball there)")
    sha = verified_sha256(path)
    cached = cache_dir() / f"cifar10-{source}-{sha[:16]}.npz"
    if cached.is_file():
        try:
            return _read_cache(cached, source, sha)
        except CACHE_DAMAGE as exc:  # truncated or foreign: derived data, so rebuilt rather than trusted
            print(f"harness: warning: decoded-image cache {cached} is unreadable ({type(exc).__name__}); rebuilding it",
                  file=sys.stderr)
            cached.unlink(missing_ok=True)
    try:
        arrays = decode(path)
    except (OSError, EOFError, KeyError, ValueError, pickle.UnpicklingError, tarfile.TarError) as exc:
        raise UserError(f"corrupt data file {path}: {exc}") from None
    atomic_write(cached, lambda handle: np.savez(handle, **arrays))
    return _read_cache(cached, source, sha)


CACHE_DAMAGE = (zipfile.BadZipFile, OSError, EOFError, KeyError, ValueError)


def _read_cache(cached: Path, source: str, sha: str) -> Cifar10:
    with np.load(cached) as arrays:
        data = Cifar10(arrays["x_train"], arrays["y_train"].astype(np.int64), arrays["x_test"],
                       arrays["y_test"].astype(np.int64), source, sha)
    if len(data.x_train) != len(data.y_train) or len(data.x_test) != len(data.y_test):
        raise ValueError("images and labels of different lengths")
    return data


def _decode_jpeg(path: Path) -> dict[str, np.ndarray]:
    from PIL import Image

    with np.load(path) as z:
        def decode(buf: np.ndarray, offsets: np.ndarray) -> np.ndarray:
            raw = buf.tobytes()
            return np.stack([np.asarray(Image.open(io.BytesIO(raw[offsets[i]:offsets[i + 1]])).convert("RGB"))
                             for i in range(len(offsets) - 1)])

        return {"x_train": decode(z["train_jpeg"], z["train_offsets"]), "y_train": z["y_train"],
                "x_test": decode(z["test_jpeg"], z["test_offsets"]), "y_test": z["y_test"]}


class _ArrayUnpickler(pickle.Unpickler):
    """The official batches are pickled dicts of numpy arrays; refuse any other global."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype")}

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"unexpected object {module}.{name} in CIFAR-10 batch")
        return super().find_class(module, name)


def _decode_official(path: Path) -> dict[str, np.ndarray]:
    with tarfile.open(path, "r:gz") as tar:
        def batch(name: str) -> tuple[np.ndarray, np.ndarray]:
            member = tar.extractfile(f"cifar-10-batches-py/{name}")
            if member is None:
                raise KeyError(name)
            content = _ArrayUnpickler(member, encoding="bytes").load()
            images = np.asarray(content[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
            return np.ascontiguousarray(images), np.asarray(content[b"labels"], dtype=np.uint8)

        train = [batch(f"data_batch_{i}") for i in range(1, 6)]
        x_test, y_test = batch("test_batch")
    return {"x_train": np.concatenate([x for x, _ in train]), "y_train": np.concatenate([y for _, y in train]),
            "x_test": x_test, "y_test": y_test}


def search_split(data_dir: Path) -> tuple[np.ndarray, np.ndarray, str]:
    """(weight-half indices, architecture-half indices, provenance) of the 50k training images.

    NB201's search scripts train weights on ``train`` and architecture parameters on ``valid`` of
    ``cifar-split.json``. Without that file we fall back to a fixed, documented split: a permutation of
    0..49999 by ``numpy.random.default_rng(0)``, first half for weights.
    """
    path = Path(data_dir) / SPLIT_FILE
    if path.exists() and not path.is_file():
        raise UserError(f"{path} is not a file (the NB201 split belongs there; remove it to use the documented "
                        "seeded split)")
    if path.is_file():
        verified_sha256(path)
        try:
            split = json.loads(path.read_text())
            weight_half, arch_half = np.asarray(split["train"], np.int64), np.asarray(split["valid"], np.int64)
        except (ValueError, KeyError, TypeError) as exc:
            raise UserError(f"corrupt data file {path}: {exc}") from None
        return weight_half, arch_half, "nb201-cifar-split"
    order = np.random.default_rng(0).permutation(NUM_TRAIN)
    return np.sort(order[: NUM_TRAIN // 2]), np.sort(order[NUM_TRAIN // 2:]), "seeded-split-rng0"


def download_official(data_dir: Path, url: str = OFFICIAL_URL) -> Path:
    """Fetch the official tarball with a progress bar and verify its MD5 before it takes the final name."""
    import urllib.request

    from tqdm import tqdm

    target = Path(data_dir) / OFFICIAL_FILE
    md5 = hashlib.md5()
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            total = int(response.headers.get("Content-Length") or 0)
            with tqdm(total=total, unit="B", unit_scale=True, desc="cifar-10-python.tar.gz") as bar:
                def write(handle) -> None:
                    for block in iter(lambda: response.read(1 << 20), b""):
                        md5.update(block)
                        handle.write(block)
                        bar.update(len(block))
                    if md5.hexdigest() != OFFICIAL_MD5:
                        raise UserError(f"download of {url} failed its checksum (md5 {md5.hexdigest()}, expected {OFFICIAL_MD5})")

                atomic_write(target, write)
    except OSError as exc:
        raise UserError(f"cannot download {url}: {exc}") from None
    return target
