"""Data: directory resolution, the official CIFAR-10 tarball reader, the search split, device augmentation."""
from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch

from benchmarks.data_stream import DeviceImages, SearchData, epoch_generator
from benchmarks.images import cifar10
from conftest import write_tarball
from foundation.errors import UserError
from foundation.paths import resolve_data_dir

AUGMENT = cifar10.DATASET.augmentation


@pytest.fixture
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_data_dir_resolution_order(monkeypatch, tmp_path):
    monkeypatch.setenv("HARNESS_DATA", str(tmp_path / "env"))
    assert resolve_data_dir(str(tmp_path / "flag")) == tmp_path / "flag"
    assert resolve_data_dir(None) == tmp_path / "env"
    monkeypatch.delenv("HARNESS_DATA")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert resolve_data_dir(None) == tmp_path / "xdg" / "dnas-harness"


def _batch_pickle(images_chw: np.ndarray, labels: list[int]) -> bytes:
    return pickle.dumps({b"data": images_chw.reshape(len(labels), -1), b"labels": labels, b"batch_label": b"x"})


def test_official_tarball_is_read_in_order_and_preferred(tmp_path, private_cache, capsys):
    rng = np.random.default_rng(0)
    batches = {f"data_batch_{i}": rng.integers(0, 256, (2, 3, 32, 32), dtype=np.uint8) for i in range(1, 6)}
    test = rng.integers(0, 256, (3, 3, 32, 32), dtype=np.uint8)
    members = {name: _batch_pickle(images, [i, i + 1]) for i, (name, images) in enumerate(batches.items())}
    members["test_batch"] = _batch_pickle(test, [7, 8, 9])
    write_tarball(tmp_path / cifar10.OFFICIAL_FILE, "cifar-10-batches-py", members)
    (tmp_path / cifar10.JPEG_FILE).write_bytes(b"not used when the official file exists")
    data = cifar10.load_cifar10(tmp_path)
    assert data.source == "official" and data.x_train.shape == (10, 32, 32, 3)
    expected = np.concatenate(list(batches.values())).transpose(0, 2, 3, 1)  # CHW planes -> HWC
    assert np.array_equal(data.x_train, expected) and np.array_equal(data.x_test, test.transpose(0, 2, 3, 1))
    assert data.y_train.tolist() == [0, 1, 1, 2, 2, 3, 3, 4, 4, 5] and data.y_test.tolist() == [7, 8, 9]
    (cached,) = private_cache.glob("cifar10-official-*.npz")  # decoded once, cached per user
    cached.write_bytes(cached.read_bytes()[:-100])  # a cache cut short (a full disk, a killed copy)
    again = cifar10.load_cifar10(tmp_path)
    assert np.array_equal(again.x_train, expected) and again.y_test.tolist() == [7, 8, 9]
    assert "decoded-image cache" in capsys.readouterr().err and cached.stat().st_size > 1000  # rebuilt


def test_tarball_with_foreign_objects_is_refused(tmp_path, private_cache):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    members = {f"data_batch_{i}": pickle.dumps(Evil()) for i in range(1, 6)}
    members["test_batch"] = pickle.dumps(Evil())
    write_tarball(tmp_path / cifar10.OFFICIAL_FILE, "cifar-10-batches-py", members)
    with pytest.raises(UserError, match="corrupt data file"):
        cifar10.load_cifar10(tmp_path)


def test_a_folder_in_place_of_the_split_file_is_refused(tmp_path):
    (tmp_path / cifar10.SPLIT_FILE).mkdir(parents=True)
    with pytest.raises(UserError, match="is not a file"):
        cifar10.search_split(tmp_path)


def test_missing_cifar_names_file_and_remedy(tmp_path):
    with pytest.raises(UserError, match="cifar-10-python.tar.gz.*download-cifar10"):
        cifar10.load_cifar10(tmp_path)


def test_split_file_and_documented_fallback(tmp_path, data_dir):
    split = cifar10.search_split(tmp_path)  # no split file: fallback
    weight_half, arch_half = split.weight.indices, split.arch.indices
    assert split.source == "seeded-split-rng0" and split.arch.images == split.weight.images == "train"
    assert len(weight_half) == len(arch_half) == 25000
    assert sorted(np.concatenate([weight_half, arch_half]).tolist()) == list(range(50000))
    if (data_dir / cifar10.SPLIT_FILE).is_file():
        split = cifar10.search_split(data_dir)
        assert split.source == "nb201-cifar-split" and not set(split.weight.indices) & set(split.arch.indices)
        assert len(split.weight.indices) == len(split.arch.indices) == 25000
        assert split.heldout.images == "test" and len(split.heldout.indices) == 10000


def _images(count: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    return rng.integers(0, 256, (count, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, count)


def test_augmented_batches_are_crops_or_flips_of_the_padded_images():
    images, labels = _images(20)
    half = DeviceImages(images, labels, torch.device("cpu"), AUGMENT)
    padded = torch.nn.functional.pad(torch.from_numpy(images).permute(0, 3, 1, 2), (4,) * 4).float()
    seen = []
    for batch in half.batches(8, epoch_generator(0, 1, 0)):
        raw = (batch.images + half.shift) / half.scale  # undo normalisation
        for image, index, label in zip(raw, batch.indices.tolist(), batch.labels.tolist()):
            assert label == labels[index]
            candidates = [padded[index, :, dy:dy + 32, dx:dx + 32] for dy in range(9) for dx in range(9)]
            candidates += [c.flip(-1) for c in candidates]
            assert min(float((image - c).abs().max()) for c in candidates) < 1e-3
            seen.append(index)
    assert sorted(seen) == list(range(20))  # every image once per epoch; last batch smaller


def test_unaugmented_batches_are_the_normalised_images():
    images, labels = _images(5)
    half = DeviceImages(images, labels, torch.device("cpu"), AUGMENT)
    batch = next(half.batches(5, epoch_generator(0, 1, 0), augment=False))
    expected = (torch.from_numpy(images[batch.indices.numpy()]).permute(0, 3, 1, 2).float() / 255
                - torch.tensor(AUGMENT.mean).view(1, 3, 1, 1)) / torch.tensor(AUGMENT.std).view(1, 3, 1, 1)
    assert torch.allclose(batch.images, expected, atol=1e-5)


def test_epochs_are_reproducible_and_differ_between_epochs():
    images, labels = _images(40)
    data = SearchData(DeviceImages(images[:20], labels[:20], torch.device("cpu"), AUGMENT),
                      DeviceImages(images[20:], labels[20:], torch.device("cpu"), AUGMENT))

    def indices(seed: int, epoch: int) -> list[list[int]]:
        return [w.indices.tolist() + a.indices.tolist() for w, a in data.epoch(seed, epoch, 8)]

    assert indices(0, 1) == indices(0, 1)
    assert indices(0, 1) != indices(0, 2) and indices(0, 1) != indices(1, 1)
    assert len(indices(0, 1)) == data.steps_per_epoch(8) == 3
