"""CIFAR-10 from the official tarball or the offline JPEG copy; NB201's search split of its training set.

Sources, in order of preference, inside ``<data>/cifar10/``:

1. ``cifar-10-python.tar.gz`` — the official lossless file (``harness data download-cifar10`` fetches it and
   checks its MD5).
2. ``cifar10_jpeg_q75.npz`` — the genuine images re-encoded as JPEG quality 75 (lossy: absolute accuracies run
   2-3 points low, rankings hold; see its README). Every run records which source it used.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from benchmarks.images import Augmentation, Dataset, ImageSet, Part, SearchSplit, read_split_file, seeded_halves
from benchmarks.images.archive import cached_images, download, tarball_batches
from foundation.errors import UserError

OFFICIAL_FILE = "cifar10/cifar-10-python.tar.gz"
OFFICIAL_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
OFFICIAL_MD5 = "c58f30108f718f92721af3b95e74349a"
JPEG_FILE = "cifar10/cifar10_jpeg_q75.npz"
SPLIT_FILE = "nb201/cifar-split.json"
NUM_TRAIN, NUM_TEST = 50000, 10000


def load_cifar10(data_dir: Path) -> ImageSet:
    data_dir = Path(data_dir)
    official, jpeg = data_dir / OFFICIAL_FILE, data_dir / JPEG_FILE
    if official.is_file():
        return cached_images("cifar10", "official", official, _decode_official)
    if jpeg.is_file():
        return cached_images("cifar10", "jpeg_q75", jpeg, _decode_jpeg)
    raise UserError(
        f"missing data file {OFFICIAL_FILE} (or {JPEG_FILE}): expected in {data_dir / 'cifar10'} "
        "(run `harness data download-cifar10` online, or copy the official tarball there)")


def _decode_jpeg(path: Path) -> dict[str, np.ndarray]:
    from PIL import Image

    with np.load(path) as z:
        def decode(buf: np.ndarray, offsets: np.ndarray) -> np.ndarray:
            raw = buf.tobytes()
            return np.stack([np.asarray(Image.open(io.BytesIO(raw[offsets[i]:offsets[i + 1]])).convert("RGB"))
                             for i in range(len(offsets) - 1)])

        return {"x_train": decode(z["train_jpeg"], z["train_offsets"]), "y_train": z["y_train"],
                "x_test": decode(z["test_jpeg"], z["test_offsets"]), "y_test": z["y_test"]}


def _decode_official(path: Path) -> dict[str, np.ndarray]:
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    *train, (x_test, y_test) = tarball_batches(path, "cifar-10-batches-py", names, b"labels", 10)
    return {"x_train": np.concatenate([x for x, _ in train]), "y_train": np.concatenate([y for _, y in train]),
            "x_test": x_test, "y_test": y_test}


def search_split(data_dir: Path, num_train: int = NUM_TRAIN) -> SearchSplit:
    """NB201's search scripts train weights on ``train`` and architecture parameters on ``valid`` of
    ``cifar-split.json`` (two halves of the training set); without that file, the documented seeded split."""
    halves = read_split_file(Path(data_dir) / SPLIT_FILE, ("train", "valid"))
    source = "nb201-cifar-split" if halves is not None else "seeded-split-rng0"
    weight_half, arch_half = halves if halves is not None else seeded_halves(num_train)
    return SearchSplit(Part("train", weight_half), Part("train", arch_half), Part("test", np.arange(NUM_TEST)),
                       source)


def download_official(data_dir: Path, url: str = OFFICIAL_URL) -> Path:
    return download(url, Path(data_dir) / OFFICIAL_FILE, OFFICIAL_MD5)


DATASET = Dataset(
    "cifar10", 10, NUM_TRAIN, NUM_TEST, (NUM_TRAIN // 2, NUM_TRAIN // 2),
    # the reference's constants: mean (125.3, 123.0, 113.9) / 255, std (63.0, 62.1, 66.7) / 255
    Augmentation(32, 4, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    load_cifar10, search_split,
    "`harness data download-cifar10` (the official cifar-10-python.tar.gz into <data>/cifar10/)")
