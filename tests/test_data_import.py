"""Converters for real users' official files: NB201 via its API object, CIFAR-10 download with MD5 check."""
from __future__ import annotations

import hashlib

import pytest

from benchmarks.images import cifar10
from benchmarks.nb201 import space
from benchmarks.nb201.importer import convert
from benchmarks.nb201.table import TABLE_FILE, load_table
from foundation.errors import UserError


class FakeTopologyAPI:
    """The calls the converter makes on ``nats_bench``'s topology API, answering from formulas."""

    def __init__(self) -> None:
        self.archs = [space.genotype_to_str(g) for g in space.all_genotypes()]

    def __len__(self) -> int:
        return len(self.archs)

    def arch(self, index: int) -> str:
        return self.archs[index]

    def get_unique_str(self, index: int) -> str:
        return f"u{index % 6466}"

    def get_more_info(self, index: int, dataset: str, hp: str, is_random: bool) -> dict:
        assert is_random is False  # mean over seeds
        if hp == "12" and dataset == "ImageNet16-120":
            raise KeyError("no 12-epoch results")
        base = {"cifar10-valid": 80.0, "cifar10": 85.0, "cifar100": 60.0, "ImageNet16-120": 30.0}[dataset]
        offset = (index % 97) / 10 + (0 if hp == "200" else -20)
        return {"valid-accuracy": base + offset, "test-accuracy": base + offset + 1}

    def get_cost_info(self, index: int, dataset: str, hp: str) -> dict:
        return {"flops": 10.0 + index % 7, "params": 0.1 + (index % 5) / 100}


def test_import_nb201_produces_a_loadable_table(tmp_path):
    api = FakeTopologyAPI()
    assert convert(api, tmp_path / TABLE_FILE) == 15625
    table = load_table(tmp_path)
    index = 4321
    assert table.arch_strs[index] == api.arch(index)
    assert table.accuracy(index)["cifar10_test"] == pytest.approx(85.0 + (index % 97) / 10 + 1)
    assert table.accuracy(index)["cifar100_valid"] == pytest.approx(60.0 + (index % 97) / 10)
    row = table.row(index)
    assert (row["acc12_imagenet16_xvalid"] == ""
            and float(row["acc12_cifar10_oritest"]) == pytest.approx(85.0 + (index % 97) / 10 - 20 + 1))
    assert row["unique_str"] == f"u{index % 6466}" and float(row["flops_M_cifar100"]) == 10.0 + index % 7


def _fake_tarball(tmp_path):
    payload = b"not really a tarball, but bytes with a known checksum"
    source = tmp_path / "remote.tar.gz"
    source.write_bytes(payload)
    return source, hashlib.md5(payload).hexdigest()


def test_download_checks_the_md5_before_keeping_the_file(tmp_path, monkeypatch):
    source, md5 = _fake_tarball(tmp_path)
    data_dir = tmp_path / "data"
    with pytest.raises(UserError, match="failed its checksum"):
        cifar10.download_official(data_dir, url=source.as_uri())
    assert not (data_dir / cifar10.OFFICIAL_FILE).exists()  # nothing half-written or unverified is left
    monkeypatch.setattr(cifar10, "OFFICIAL_MD5", md5)
    saved = cifar10.download_official(data_dir, url=source.as_uri())
    assert saved.read_bytes() == source.read_bytes()


def test_download_failure_is_one_user_error(tmp_path):
    with pytest.raises(UserError, match="cannot download"):
        cifar10.download_official(tmp_path, url=(tmp_path / "missing.tar.gz").as_uri())
