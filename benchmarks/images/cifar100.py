"""CIFAR-100 from the official python tarball ``<data>/cifar100/cifar-100-python.tar.gz``.

The tarball holds ``cifar-100-python/train`` (50,000 images) and ``cifar-100-python/test`` (10,000): pickled dicts
with ``data`` (N x 3072 uint8, the red, green and blue planes of a 32x32 image) and ``fine_labels`` (0..99, the
100 classes NB201 uses; ``coarse_labels`` are the 20 superclasses). ``harness data download-cifar100`` fetches it
and checks its published MD5. The search split is NB201's (``benchmarks.images``: weights on all training
images, architecture on the test set's ``xvalid`` half).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmarks.images import Augmentation, Dataset, ImageSet, test_split
from benchmarks.images.archive import cached_images, download, tarball_batches
from foundation.errors import UserError

OFFICIAL_FILE = "cifar100/cifar-100-python.tar.gz"
OFFICIAL_URL = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
OFFICIAL_MD5 = "eb9058c3a382ffc7106e4002c42a8d85"
SPLIT_FILE = "nb201/cifar100-test-split.json"
NUM_TRAIN, NUM_TEST, NUM_CLASSES = 50000, 10000, 100


def load_cifar100(data_dir: Path) -> ImageSet:
    path = Path(data_dir) / OFFICIAL_FILE
    if not path.is_file():
        raise UserError(f"missing data file {OFFICIAL_FILE}: expected in {path.parent} (run "
                        "`harness data download-cifar100` online, or copy the official tarball there)")
    return cached_images("cifar100", "official", path, _decode_official)


def _decode_official(path: Path) -> dict[str, np.ndarray]:
    (x_train, y_train), (x_test, y_test) = tarball_batches(path, "cifar-100-python", ("train", "test"),
                                                           b"fine_labels", NUM_CLASSES)
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


def download_official(data_dir: Path, url: str = OFFICIAL_URL) -> Path:
    return download(url, Path(data_dir) / OFFICIAL_FILE, OFFICIAL_MD5)


DATASET = Dataset(
    "cifar100", NUM_CLASSES, NUM_TRAIN, NUM_TEST, (NUM_TRAIN, NUM_TEST // 2),
    # the reference's constants: mean (129.3, 124.1, 112.4) / 255, std (68.2, 65.4, 70.4) / 255
    Augmentation(32, 4, tuple(v / 255 for v in (129.3, 124.1, 112.4)), tuple(v / 255 for v in (68.2, 65.4, 70.4))),
    load_cifar100, test_split(SPLIT_FILE, NUM_TEST),
    "`harness data download-cifar100` (the official cifar-100-python.tar.gz into <data>/cifar100/)")
