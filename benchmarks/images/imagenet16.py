"""ImageNet16-120: the 16x16 downsampled ImageNet of Chrabaszcz et al. (2017) restricted to its first 120
classes, as NB201 uses it (151,700 training images, 6,000 test images).

The official files are the folder NB201 asks for (``ImageNet16/``): ``train_data_batch_1`` .. ``_10`` and
``val_data``, pickled dicts with ``data`` (N x 768 uint8: the red, green and blue 16x16 planes) and ``labels``
(1..1000). ``harness data import-imagenet16 FOLDER`` checks each file's MD5 against the release (the digests the
NB201 reference loader checks, ``xautodl/datasets/DownsampledImageNet.py``), keeps the images whose label is in
1..120 and stores them, labels shifted to 0..119, as one ``<data>/imagenet16-120/imagenet16-120.npz`` with a
checksum sidecar: the same selection as the reference's ``ImageNet16(root, train, transform, 120)``.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from benchmarks.images import Augmentation, Dataset, ImageSet, test_split
from benchmarks.images.archive import CACHE_DAMAGE, DECODE_ERRORS, hwc, load_pickle, read_images
from foundation.atomic import atomic_write
from foundation.errors import UserError
from foundation.integrity import verified_sha256, write_sidecar

CONVERTED_FILE = "imagenet16-120/imagenet16-120.npz"
SPLIT_FILE = "nb201/imagenet16-120-test-split.json"
NUM_TRAIN, NUM_TEST, NUM_CLASSES = 151700, 6000, 120
SIZE = 16
OFFICIAL_MD5 = {
    "train_data_batch_1": "27846dcaa50de8e21a7d1a35f30f0e91", "train_data_batch_2": "c7254a054e0e795c69120a5727050e3f",
    "train_data_batch_3": "4333d3df2e5ffb114b05d2ffc19b1e87", "train_data_batch_4": "1620cdf193304f4a92677b695d70d10f",
    "train_data_batch_5": "348b3c2fdbb3940c4e9e834affd3b18d", "train_data_batch_6": "6e765307c242a1b3d7d5ef9139b48945",
    "train_data_batch_7": "564926d8cbf8fc4818ba23d2faac7564", "train_data_batch_8": "f4755871f718ccb653440b9dd0ebac66",
    "train_data_batch_9": "bb6dd660c38c58552125b1a92f86b5d4", "train_data_batch_10": "8f03f34ac4b42271a294f91bf480f29b",
    "val_data": "3410e3017fdaefba8d5073aaa65e4bd6",
}
TRAIN_FILES = tuple(f"train_data_batch_{i}" for i in range(1, 11))


def load_imagenet16(data_dir: Path) -> ImageSet:
    path = Path(data_dir) / CONVERTED_FILE
    if not path.is_file():
        raise UserError(f"missing data file {CONVERTED_FILE}: expected in {path.parent} (run `harness data "
                        "import-imagenet16 FOLDER` on the official ImageNet16 folder: train_data_batch_1..10, "
                        "val_data)")
    sha = verified_sha256(path)
    try:
        with np.load(path) as arrays:
            source = str(arrays["source"])
        return read_images(path, source, sha)
    except CACHE_DAMAGE as exc:
        raise UserError(f"corrupt data file {path}: {exc}") from None


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _first_classes(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The images of one official file whose label is 1..120, and their labels shifted to 0..119."""
    with open(path, "rb") as handle:
        content = load_pickle(handle, encoding="latin1")
    labels = np.asarray(content["labels"], dtype=np.int64)
    images = hwc(content["data"], SIZE)
    if len(images) != len(labels) or (len(labels) and not 1 <= labels.min() <= labels.max() <= 1000):
        raise ValueError(f"{len(images)} images and {len(labels)} labels (expected as many, labels in 1..1000)")
    keep = (labels >= 1) & (labels <= NUM_CLASSES)
    return images[keep], labels[keep] - 1


def import_pickles(folder: Path, data_dir: Path, allow_unofficial: bool = False,
                   say=lambda message: None) -> Path:
    """Check and convert the official folder into ``<data_dir>/imagenet16-120/imagenet16-120.npz``. A file whose MD5
    is not the release's is refused (``allow_unofficial``: converted anyway, and every run records the data as
    ``unofficial``)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"bad value {folder}: not a folder (expected the official ImageNet16 folder)")
    missing = [name for name in OFFICIAL_MD5 if not (folder / name).is_file()]
    if missing:
        raise UserError(f"missing {', '.join(missing)} in {folder} (expected train_data_batch_1..10 and val_data)")
    differing = [name for name, md5 in OFFICIAL_MD5.items() if _md5(folder / name) != md5]
    if differing and not allow_unofficial:
        raise UserError(f"{', '.join(differing)} in {folder} failed the release MD5 (modified, truncated or another "
                        "version); pass --allow-unofficial to convert them anyway")
    parts = {}
    for name in OFFICIAL_MD5:
        say(f"reading {name}")
        try:
            parts[name] = _first_classes(folder / name)
        except DECODE_ERRORS as exc:
            raise UserError(f"corrupt data file {folder / name}: {exc}") from None
    arrays = {"x_train": np.concatenate([parts[name][0] for name in TRAIN_FILES]),
              "y_train": np.concatenate([parts[name][1] for name in TRAIN_FILES]),
              "x_test": parts["val_data"][0], "y_test": parts["val_data"][1],
              "source": np.asarray("unofficial" if differing else "official")}
    if not differing and (len(arrays["y_train"]), len(arrays["y_test"])) != (NUM_TRAIN, NUM_TEST):
        raise UserError(f"the release files gave {len(arrays['y_train'])} training and {len(arrays['y_test'])} test "
                        f"images of the first 120 classes, not {NUM_TRAIN} and {NUM_TEST}")
    target = Path(data_dir) / CONVERTED_FILE
    atomic_write(target, lambda handle: np.savez(handle, **arrays))
    write_sidecar(target)
    return target


DATASET = Dataset(
    "imagenet16-120", NUM_CLASSES, NUM_TRAIN, NUM_TEST, (NUM_TRAIN, NUM_TEST // 2),
    # the reference's constants: mean (122.68, 116.66, 104.01) / 255, std (63.22, 61.26, 65.09) / 255
    Augmentation(SIZE, 2, tuple(v / 255 for v in (122.68, 116.66, 104.01)),
                 tuple(v / 255 for v in (63.22, 61.26, 65.09))),
    load_imagenet16, test_split(SPLIT_FILE, NUM_TEST),
    "the official ImageNet16 folder (downsampled ImageNet 16x16, the files NB201 distributes), converted by "
    "`harness data import-imagenet16 FOLDER`")
