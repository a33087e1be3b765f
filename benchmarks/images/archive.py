"""What the official image files have in common: pickled dicts of numpy arrays read without trusting any other
object, decoding done once and cached per user (keyed by the source file's SHA-256, never next to the data), and
downloads verified by their published MD5 before they take their final name."""
from __future__ import annotations

import hashlib
import pickle
import sys
import tarfile
import zipfile
from pathlib import Path
from typing import IO, Any, Callable, Sequence

import numpy as np

from benchmarks.images import ImageSet
from foundation.atomic import atomic_write
from foundation.errors import UserError
from foundation.integrity import verified_sha256
from foundation.paths import cache_dir

DECODE_ERRORS = (OSError, EOFError, KeyError, ValueError, TypeError, pickle.UnpicklingError, tarfile.TarError)
CACHE_DAMAGE = (zipfile.BadZipFile, OSError, EOFError, KeyError, ValueError)


class ArrayUnpickler(pickle.Unpickler):
    """The official batches are pickled dicts of numpy arrays and lists; refuse any other global but the one
    that Python 3's pickle protocols 0-2 write for bytes (``_codecs.encode``)."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"unexpected object {module}.{name} in an image batch")
        return super().find_class(module, name)


def load_pickle(handle: IO[bytes], encoding: str = "bytes") -> Any:
    return ArrayUnpickler(handle, encoding=encoding).load()


def hwc(flat: Any, size: int) -> np.ndarray:
    """Rows of ``3 * size * size`` bytes (the official layout: the red plane, then green, then blue) as HWC."""
    images = np.asarray(flat, dtype=np.uint8).reshape(-1, 3, size, size).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images)


def tarball_batches(path: Path, folder: str, names: Sequence[str], label_key: bytes,
                    classes: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Images (HWC) and labels of the pickled batches ``folder/<name>`` of an official CIFAR python tarball, each
    label checked to be a class 0..classes-1."""
    parts = []
    with tarfile.open(path, "r:gz") as tar:
        for name in names:
            member = tar.extractfile(f"{folder}/{name}")
            if member is None:
                raise KeyError(name)
            content = load_pickle(member)
            images, labels = hwc(content[b"data"], 32), np.asarray(content[label_key], dtype=np.int64)
            if len(images) != len(labels) or (len(labels) and not 0 <= labels.min() <= labels.max() < classes):
                raise ValueError(f"{name}: {len(images)} images, {len(labels)} labels in "
                                 f"{labels.min()}..{labels.max()} (expected classes 0..{classes - 1})")
            parts.append((images, labels))
    return parts


def cached_images(name: str, source: str, path: Path, decode: Callable[[Path], dict[str, np.ndarray]]) -> ImageSet:
    """``decode(path)`` (x/y train/test arrays), done once per file content and cached per user."""
    sha = verified_sha256(path)
    cached = cache_dir() / f"{name}-{source}-{sha[:16]}.npz"
    if cached.is_file():
        try:
            return read_images(cached, source, sha)
        except CACHE_DAMAGE as exc:  # truncated or foreign: derived data, so rebuilt rather than trusted
            print(f"harness: warning: decoded-image cache {cached} is unreadable ({type(exc).__name__}); rebuilding it",
                  file=sys.stderr)
            cached.unlink(missing_ok=True)
    try:
        arrays = decode(path)
    except DECODE_ERRORS as exc:
        raise UserError(f"corrupt data file {path}: {exc}") from None
    atomic_write(cached, lambda handle: np.savez(handle, **arrays))
    return read_images(cached, source, sha)


def read_images(path: Path, source: str, sha: str) -> ImageSet:
    with np.load(path) as arrays:
        data = ImageSet(arrays["x_train"], arrays["y_train"].astype(np.int64), arrays["x_test"],
                        arrays["y_test"].astype(np.int64), source, sha)
    if len(data.x_train) != len(data.y_train) or len(data.x_test) != len(data.y_test):
        raise ValueError("images and labels of different lengths")
    return data


def download(url: str, target: Path, md5_expected: str) -> Path:
    """Fetch ``url`` to ``target`` with a progress bar; the MD5 is checked before the file takes its name."""
    import urllib.request

    from tqdm import tqdm

    md5 = hashlib.md5()
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            total = int(response.headers.get("Content-Length") or 0)
            with tqdm(total=total, unit="B", unit_scale=True, desc=target.name) as bar:
                def write(handle) -> None:
                    for block in iter(lambda: response.read(1 << 20), b""):
                        md5.update(block)
                        handle.write(block)
                        bar.update(len(block))
                    if md5.hexdigest() != md5_expected:
                        raise UserError(f"download of {url} failed its checksum (md5 {md5.hexdigest()}, expected "
                                        f"{md5_expected})")

                atomic_write(target, write)
    except OSError as exc:
        raise UserError(f"cannot download {url}: {exc}") from None
    return target
