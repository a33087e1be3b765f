"""Per-dataset search data: the official CIFAR-100 tarball and ImageNet16 pickles (generated here in their exact
formats: the same member names, pickle keys, dtypes and label conventions, a few images each), the NB201 search
halves of each dataset, and smoke searches on both that look up the searched dataset."""
from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmarks.images import cifar100, get_dataset, imagenet16, search_images
from conftest import smoke_args, write_tarball
from foundation.errors import UserError
from foundation.integrity import write_sidecar
from harness.cli import main


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))


def _planes(images_hwc: np.ndarray) -> np.ndarray:
    """The official row layout: each image as its red, green and blue planes, flattened."""
    return images_hwc.transpose(0, 3, 1, 2).reshape(len(images_hwc), -1)


def write_cifar100(data_dir: Path, train: int, test: int, seed: int = 0) -> dict[str, np.ndarray]:
    """``cifar-100-python.tar.gz`` as the official one is laid out (``train``, ``test``, ``meta``; bytes keys), with
    a checksum sidecar standing in for the release's MD5."""
    rng = np.random.default_rng(seed)
    arrays = {"x_train": rng.integers(0, 256, (train, 32, 32, 3), dtype=np.uint8),
              "y_train": rng.integers(0, 100, train),
              "x_test": rng.integers(0, 256, (test, 32, 32, 3), dtype=np.uint8),
              "y_test": rng.integers(0, 100, test)}
    members = {}
    for part in ("train", "test"):
        images, labels = arrays[f"x_{part}"], arrays[f"y_{part}"]
        members[part] = pickle.dumps({b"filenames": [b"x.png"] * len(labels), b"batch_label": f"{part}".encode(),
                                      b"fine_labels": labels.tolist(), b"coarse_labels": (labels // 5).tolist(),
                                      b"data": _planes(images)}, protocol=2)
    members["meta"] = pickle.dumps({b"fine_label_names": [b"c"] * 100, b"coarse_label_names": [b"s"] * 20})
    write_tarball(data_dir / cifar100.OFFICIAL_FILE, "cifar-100-python", members)
    return arrays


def write_imagenet16(folder: Path, per_batch: int, val: int, seed: int = 0) -> dict[str, np.ndarray]:
    """The official ImageNet16 folder: ``train_data_batch_1..10`` and ``val_data``, pickled dicts with str keys
    ``data`` (N x 768 uint8) and ``labels`` (a list of ints in 1..1000; train files also carry ``mean``). Every
    fifth image is of a class beyond the first 120. Returns the kept images as the reference selects them."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    kept: dict[str, list] = {"x_train": [], "y_train": [], "x_test": [], "y_test": []}
    for name in (*imagenet16.TRAIN_FILES, "val_data"):
        count = val if name == "val_data" else per_batch
        images = rng.integers(0, 256, (count, 16, 16, 3), dtype=np.uint8)
        labels = rng.integers(1, 121, count)
        labels[::5] = rng.integers(121, 1001, len(labels[::5]))
        content = {"data": _planes(images), "labels": labels.tolist()}
        if name != "val_data":
            content["mean"] = np.zeros(768, dtype=np.float64)
        (folder / name).write_bytes(pickle.dumps(content, protocol=2))
        part = "test" if name == "val_data" else "train"
        keep = labels <= 120
        kept[f"x_{part}"].append(images[keep])
        kept[f"y_{part}"].append(labels[keep] - 1)
    return {key: np.concatenate(value) for key, value in kept.items()}


def write_test_split(data_dir: Path, split_file: str, test: int) -> dict[str, list[int]]:
    """An NB201 test split (``xvalid`` / ``xtest`` halves of the test indices) for a generated test set."""
    order = np.random.default_rng(5).permutation(test)
    split = {"xvalid": sorted(order[: test // 2].tolist()), "xtest": sorted(order[test // 2:].tolist())}
    path = data_dir / split_file
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(split))
    write_sidecar(path)
    return split


def test_cifar100_tarball_is_read_in_order_with_fine_labels(tmp_path):
    arrays = write_cifar100(tmp_path, train=7, test=5)
    data = cifar100.load_cifar100(tmp_path)
    assert data.source == "official" and data.x_train.shape == (7, 32, 32, 3) and data.x_train.dtype == np.uint8
    for key in arrays:
        assert np.array_equal(getattr(data, key), arrays[key]), key
    again = cifar100.load_cifar100(tmp_path)  # from the per-user cache
    assert np.array_equal(again.x_test, arrays["x_test"])


def test_cifar100_problems_are_one_line_errors(tmp_path):
    with pytest.raises(UserError, match="cifar-100-python.tar.gz.*download-cifar100"):
        cifar100.load_cifar100(tmp_path)
    write_cifar100(tmp_path, train=3, test=3)
    path = tmp_path / cifar100.OFFICIAL_FILE
    path.write_bytes(path.read_bytes()[:-50])  # truncated after its sidecar was written
    with pytest.raises(UserError, match="failed its checksum"):
        cifar100.load_cifar100(tmp_path)


def test_cifar100_with_foreign_objects_or_bad_labels_is_refused(tmp_path):
    bad = pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"fine_labels": [3, 100]})  # 100: not a class
    write_tarball(tmp_path / cifar100.OFFICIAL_FILE, "cifar-100-python", {"train": bad, "test": bad})
    with pytest.raises(UserError, match="corrupt data file.*classes 0..99"):
        cifar100.load_cifar100(tmp_path)


def test_imagenet16_import_keeps_the_first_120_classes_and_checks_the_release_md5(tmp_path, capsys):
    folder, data_dir = tmp_path / "ImageNet16", tmp_path / "data"
    expected = write_imagenet16(folder, per_batch=10, val=12)
    with pytest.raises(UserError, match="failed the release MD5.*--allow-unofficial"):
        imagenet16.import_pickles(folder, data_dir)
    assert not (data_dir / imagenet16.CONVERTED_FILE).exists()
    assert main(["data", "import-imagenet16", str(folder), "--allow-unofficial", "--data-dir", str(data_dir)]) == 0
    assert "imagenet16-120.npz" in capsys.readouterr().out
    data = imagenet16.load_imagenet16(data_dir)
    assert data.source == "unofficial" and data.x_train.shape[1:] == (16, 16, 3)
    for key in expected:  # the reference's ImageNet16(root, train, transform, 120): labels 1..120, minus one
        assert np.array_equal(getattr(data, key), expected[key]), key
    assert data.y_train.min() >= 0 and data.y_train.max() <= 119


def test_imagenet16_import_problems_are_one_line_errors(tmp_path, capsys):
    folder = tmp_path / "ImageNet16"
    write_imagenet16(folder, per_batch=2, val=2)
    (folder / "train_data_batch_7").unlink()
    assert main(["data", "import-imagenet16", str(folder), "--allow-unofficial", "--data-dir", str(tmp_path)]) == 2
    assert "missing train_data_batch_7" in capsys.readouterr().err
    (folder / "train_data_batch_7").write_bytes(pickle.dumps({"data": np.zeros((2, 768), np.uint8), "labels": [0, 5]}))
    with pytest.raises(UserError, match="corrupt data file .*train_data_batch_7.*1..1000"):
        imagenet16.import_pickles(folder, tmp_path, allow_unofficial=True)
    with pytest.raises(UserError, match="imagenet16-120.npz.*import-imagenet16"):
        imagenet16.load_imagenet16(tmp_path)


def test_search_halves_follow_the_reference_loaders(tmp_path):
    """CIFAR-100: weights on every training image, architecture on the test set's xvalid half, held out its
    xtest half; train_images takes a random subset of each half."""
    arrays = write_cifar100(tmp_path, train=40, test=30)
    split = write_test_split(tmp_path, cifar100.SPLIT_FILE, 30)
    images = search_images(get_dataset("cifar100"), tmp_path, train_images=0, heldout_images=15)
    weight_images, weight_labels = images.weight
    assert len(weight_labels) == 40 and sorted(map(bytes, weight_images)) == sorted(map(bytes, arrays["x_train"]))
    assert np.array_equal(images.arch[0], arrays["x_test"][split["xvalid"]])
    assert np.array_equal(images.heldout[1], arrays["y_test"][split["xtest"]])
    assert images.provenance["halves"] == {"weight": "train", "arch": "test", "heldout": "test"}
    assert images.provenance["split"] == "cifar100-test-split.json" and images.provenance["images_per_half"] == [40, 15]
    reduced = search_images(get_dataset("cifar100"), tmp_path, train_images=8, heldout_images=4)
    assert [len(part[1]) for part in (reduced.weight, reduced.arch, reduced.heldout)] == [8, 8, 4]
    assert not np.array_equal(reduced.weight[0], arrays["x_train"][:8])  # a random subset, not the first images


@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["cifar100", "imagenet16-120"])
def test_smoke_search_on_each_dataset_looks_up_its_dataset(dataset, nb201_table, data_dir, tmp_path, capsys):
    """A smoke search on generated files: the run folder, records and config carry the dataset; the supernet's
    classifier has its classes; the look-ups cover every dataset as on CIFAR-10."""
    root = tmp_path / "data"
    (root / "nb201").mkdir(parents=True)
    (root / "nb201" / "nb201_table.csv.gz").symlink_to((data_dir / "nb201" / "nb201_table.csv.gz").resolve())
    if dataset == "cifar100":
        write_cifar100(root, train=160, test=300)
        write_test_split(root, cifar100.SPLIT_FILE, 300)
        size, classes = 32, 100
    else:
        write_imagenet16(tmp_path / "ImageNet16", per_batch=20, val=400)
        imagenet16.import_pickles(tmp_path / "ImageNet16", root, allow_unofficial=True)
        write_test_split(root, imagenet16.SPLIT_FILE, len(imagenet16.load_imagenet16(root).y_test))
        size, classes = 16, 120
    out = tmp_path / "out"
    assert main(smoke_args(root, out, "--set", f"dataset={dataset}")) == 0
    folder = out / "nb201" / "darts" / f"smoke-{dataset}" / "seed-0"
    config = json.loads((folder / "config.json").read_text())
    assert config["config"]["dataset"] == dataset and config["data"]["dataset"] == dataset
    assert config["data"]["halves"] == {"weight": "train", "arch": "test", "heldout": "test"}
    assert config["data"]["source"] == ("official" if dataset == "cifar100" else "unofficial")
    records = [json.loads(line) for line in (folder / "epochs.jsonl").read_text().splitlines()]
    assert len(records) == 2 and all(r["status"] == "ok" for r in records)
    assert set(records[-1]["lookup"]) == set(nb201_table.accuracies)
    assert records[-1]["lookup"] == nb201_table.accuracy(records[-1]["arch_index"])
    checkpoint = sorted(folder.glob("checkpoint-*.pt"))[-1]
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)["supernet"]
    assert state["classifier.weight"].shape[0] == classes
    assert config["data"]["image_size"] == size and "cifar10_test=" in capsys.readouterr().err
