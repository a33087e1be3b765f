"""The image datasets a search runs on, and which images form the weight half, the architecture half and the
held-out evaluation set of each.

The halves follow AutoDL-Projects' ``get_nas_search_loaders`` (``xautodl/datasets/get_dataset_with_transform.py``,
the loader of the NB201 reference search scripts):

- ``cifar10``: weights on ``cifar-split.json``'s ``train`` half of the 50,000 training images, architecture on its
  ``valid`` half (both from the training set).
- ``cifar100`` and ``imagenet16-120``: weights on *all* training images (50,000; 151,700), architecture on the
  ``xvalid`` half of the test set (``cifar100-test-split.json``: 5,000 of 10,000; ``imagenet16-120-test-split.json``:
  3,000 of 6,000), shown with the training augmentation ("search_valid_data.transform = train_data.transform").

The held-out set is what no searcher trains on: the CIFAR-10 test set; the ``xtest`` half of the other two test
sets. Each dataset's augmentation is the reference's training transform (``get_datasets``): random crop with zero
padding (4 pixels at 32x32, 2 at 16x16), horizontal flip, normalisation by the reference's per-channel constants.

Without a split file the halves come from a fixed, documented split (``numpy.random.default_rng(0)``), said in
the run's ``config.json``. Every index list is in an order whose prefixes are random subsets, so the reduced
presets' ``train_images`` take the first n of a half.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from foundation.errors import UserError
from foundation.integrity import verified_sha256


@dataclass(frozen=True)
class ImageSet:
    """A dataset's images as uint8 HWC arrays in the official order, labels from 0, and where they came from."""

    x_train: np.ndarray
    y_train: np.ndarray  # int64
    x_test: np.ndarray
    y_test: np.ndarray
    source: str  # "official", or what else was read (the lossy CIFAR-10 copy: "jpeg_q75")
    source_sha256: str


@dataclass(frozen=True)
class Augmentation:
    """The reference training transform: RandomCrop(size, padding) + RandomHorizontalFlip + Normalize(mean, std)."""

    size: int
    padding: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


@dataclass(frozen=True)
class Part:
    """Images of one role: which official set ("train" or "test") and the indices into it."""

    images: str
    indices: np.ndarray


@dataclass(frozen=True)
class SearchSplit:
    weight: Part
    arch: Part
    heldout: Part
    source: str  # the split file's name, or "seeded-split-rng0"


@dataclass(frozen=True)
class Dataset:
    name: str
    num_classes: int
    num_train: int
    num_test: int
    halves: tuple[int, int]  # images of the weight and the architecture half with the official files
    augmentation: Augmentation
    load: Callable[[Path], ImageSet]
    split: Callable[[Path, int], SearchSplit]  # (data directory, training images) -> the roles' indices
    how_to_get: str  # for the README and the missing-file error


@dataclass(frozen=True)
class SearchImages:
    """The three roles' images and labels, and the provenance ``config.json`` records."""

    weight: tuple[np.ndarray, np.ndarray]
    arch: tuple[np.ndarray, np.ndarray]
    heldout: tuple[np.ndarray, np.ndarray]
    provenance: dict


def read_split_file(path: Path, keys: tuple[str, str]) -> tuple[np.ndarray, np.ndarray] | None:
    """The two index lists of an NB201 split file (None when there is none), checked by ``verified_sha256``."""
    if path.exists() and not path.is_file():
        raise UserError(f"{path} is not a file (the NB201 split belongs there; remove it to use the documented "
                        "seeded split)")
    if not path.is_file():
        return None
    verified_sha256(path)
    try:
        split = json.loads(path.read_text())
        return tuple(np.asarray(split[key], np.int64) for key in keys)  # type: ignore[return-value]
    except (ValueError, KeyError, TypeError) as exc:
        raise UserError(f"corrupt data file {path}: {exc}") from None


def seeded_halves(count: int) -> tuple[np.ndarray, np.ndarray]:
    """The documented fallback split of ``count`` images: a permutation by ``numpy.random.default_rng(0)``, first
    half and second half (each sorted)."""
    order = np.random.default_rng(0).permutation(count)
    return np.sort(order[: count // 2]), np.sort(order[count // 2:])


def shuffled(count: int) -> np.ndarray:
    """All ``count`` images in a fixed random order (``default_rng(0)``): its prefixes are random subsets."""
    return np.random.default_rng(0).permutation(count)


def test_split(split_file: str, num_test: int) -> Callable[[Path, int], SearchSplit]:
    """The per-dataset search of CIFAR-100 and ImageNet16-120: weights on every training image, architecture on
    the test set's ``xvalid`` half, held out its ``xtest`` half."""
    def split(data_dir: Path, num_train: int) -> SearchSplit:
        halves = read_split_file(Path(data_dir) / split_file, ("xvalid", "xtest"))
        source = Path(split_file).name if halves is not None else "seeded-split-rng0"
        xvalid, xtest = halves if halves is not None else seeded_halves(num_test)
        return SearchSplit(Part("train", shuffled(num_train)), Part("test", xvalid), Part("test", xtest), source)

    return split


def search_images(dataset: Dataset, data_dir: Path, train_images: int, heldout_images: int) -> SearchImages:
    """The images of each role (``train_images`` > 0: the first n of each half; the first ``heldout_images`` of
    the held-out set)."""
    data = dataset.load(Path(data_dir))
    split = dataset.split(Path(data_dir), len(data.y_train))
    sets = {"train": (data.x_train, data.y_train), "test": (data.x_test, data.y_test)}

    def take(part: Part, count: int) -> tuple[np.ndarray, np.ndarray]:
        indices = part.indices[:count] if count else part.indices
        images, labels = sets[part.images]
        if len(indices) and indices.max() >= len(labels):
            raise UserError(f"the {dataset.name} split ({split.source}) names image {indices.max()} of the "
                            f"{part.images} set, which has {len(labels)}: the split does not belong to these images")
        return images[indices], labels[indices]

    weight, arch = take(split.weight, train_images), take(split.arch, train_images)
    provenance = {"dataset": dataset.name, "source": data.source, "source_sha256": data.source_sha256,
                  "split": split.source, "images_per_half": [len(weight[1]), len(arch[1])],
                  "image_size": dataset.augmentation.size,
                  "halves": {"weight": split.weight.images, "arch": split.arch.images,
                             "heldout": split.heldout.images}}
    return SearchImages(weight, arch, take(split.heldout, heldout_images), provenance)


def _registry() -> dict[str, Dataset]:
    from benchmarks.images import cifar10, cifar100, imagenet16

    return {module.DATASET.name: module.DATASET for module in (cifar10, cifar100, imagenet16)}


def get_dataset(name: str) -> Dataset:
    datasets = _registry()
    if name not in datasets:
        raise UserError(f"unknown dataset {name!r} (known: {', '.join(datasets)})")
    return datasets[name]


def dataset_names() -> list[str]:
    return list(_registry())
