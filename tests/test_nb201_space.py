"""NB201 cell space: string <-> genotype, depth and skip counts, published look-ups, bad strings, bad tables."""
from __future__ import annotations

import csv
import gzip
import io
from pathlib import Path

import pytest

from benchmarks.nb201 import space
from benchmarks.nb201.table import ACCURACY_COLUMNS, NUM_ARCHS, TABLE_FILE, load_table
from foundation.cell_metrics import cell_depth, skip_count
from foundation.errors import UserError
from foundation.integrity import verified_sha256, write_sidecar

ALL_SKIP = "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|"
ALL_NONE = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
ALL_CONV3 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"


def cell(**ops: str) -> space.Genotype:
    """Genotype from edges named e<src><dst> (e01 e02 e12 e03 e13 e23); unnamed edges are ``none``."""
    names = [f"e{src}{dst}" for src, dst in space.EDGES]
    assert set(ops) <= set(names), ops
    return tuple(ops.get(name, "none") for name in names)


# ---------------------------------------------------------------- string <-> genotype


def test_edge_order_is_nb201():
    assert space.EDGES == ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))
    assert space.genotype_to_str(cell(e01="skip_connect", e23="nor_conv_1x1")) == (
        "|skip_connect~0|+|none~0|none~1|+|none~0|none~1|nor_conv_1x1~2|")


def test_round_trip_all_genotypes():
    genotypes = space.all_genotypes()
    assert len(genotypes) == 5 ** 6 == NUM_ARCHS
    assert len(set(genotypes)) == NUM_ARCHS
    for genotype in genotypes:
        assert space.str_to_genotype(space.genotype_to_str(genotype)) == genotype


@pytest.mark.data
def test_every_genotype_is_in_table_once(nb201_table):
    indices = []
    for genotype in space.all_genotypes():
        arch = space.genotype_to_str(genotype)
        index = nb201_table.index_of[arch]
        assert nb201_table.index(arch) == index
        assert space.str_to_genotype(nb201_table.arch_strs[index]) == genotype
        indices.append(index)
    assert sorted(indices) == list(range(NUM_ARCHS))


# ---------------------------------------------------------------- depth and skips


@pytest.mark.parametrize("genotype, depth, skips", [
    # every edge present: longest path 0->1->2->3 = 3 edges; 6 skip edges
    (space.str_to_genotype(ALL_SKIP), 3, 6),
    # no edge exists: output unreachable -> 0; no skips
    (space.str_to_genotype(ALL_NONE), 0, 0),
    # all convs: same DAG as all-skip -> 3; no skips
    (space.str_to_genotype(ALL_CONV3), 3, 0),
    # only 0->3: a single edge -> 1
    (cell(e03="nor_conv_3x3"), 1, 0),
    # 0->1, 0->2, 1->2 present but every edge into node 3 is none -> 0; three skips
    (cell(e01="skip_connect", e02="skip_connect", e12="skip_connect"), 0, 3),
    # 1->2, 1->3, 2->3 present but nothing leaves node 0: nodes 1 and 2 unreachable -> 0; one skip (2->3)
    (cell(e12="nor_conv_3x3", e13="nor_conv_1x1", e23="skip_connect"), 0, 1),
    # chain 0->1->2->3, everything else none -> 3
    (cell(e01="nor_conv_3x3", e12="avg_pool_3x3", e23="skip_connect"), 3, 1),
    # 0->1->3 (2 edges) and 0->3 (1 edge); node 2's only input 1->2 is none and 0->2 is none,
    # so 2->3 comes from an unreachable node and does not count -> 2; skips on 0->1 and 1->3
    (cell(e01="skip_connect", e03="nor_conv_3x3", e13="skip_connect", e23="avg_pool_3x3"), 2, 2),
    # 0->2->3 only (node 1 unused) -> 2
    (cell(e02="nor_conv_1x1", e23="nor_conv_1x1"), 2, 0),
    # 0->1 and 0->2->3: node 1 reachable but does not feed the output; longest 0->2->3 -> 2
    (cell(e01="skip_connect", e02="skip_connect", e23="skip_connect"), 2, 3),
], ids=["all-skip", "all-none", "all-conv3", "direct-0-3", "node3-cut-off", "inputs-unreachable",
        "chain", "unreachable-node2", "via-node2", "dead-end-node1"])
def test_depth_and_skips(genotype, depth, skips):
    assert space.depth(genotype) == depth
    assert space.skips(genotype) == skips


def test_cell_depth_ignores_edges_from_unreachable_nodes():
    # 5 nodes, output 4. Node 2 has no live input (0->2 is none), so 2->3->4 (which would make
    # 0..->4 a 3-edge path if node 2 counted) is ignored; the live path is 0->1->4 = 2 edges.
    edges = [(3, 4, "conv"), (2, 3, "conv"), (1, 4, "skip_connect"), (0, 2, "none"), (0, 1, "conv")]
    assert cell_depth(5, edges) == 2
    # Same, but only the unreachable chain leads to the output -> 0.
    assert cell_depth(5, [(0, 1, "conv"), (2, 3, "conv"), (3, 4, "conv")]) == 0
    # Make node 2 reachable and the 4-edge path 0->1->2->3->4 wins, whatever the input order.
    assert cell_depth(5, [(3, 4, "x"), (1, 2, "x"), (2, 3, "x"), (0, 1, "x"), (0, 4, "x")]) == 4
    assert skip_count(edges) == 1


# ---------------------------------------------------------------- published look-ups


@pytest.mark.data
def test_all_skip_cell_lookup(nb201_table):
    index = nb201_table.index(ALL_SKIP)
    assert index == 1835
    acc = {key: round(value, 2) for key, value in nb201_table.accuracy(index).items()}
    assert list(acc) == list(ACCURACY_COLUMNS)
    assert acc == {"cifar10_valid": 39.77, "cifar10_test": 54.30, "cifar100_valid": 15.03,
                   "cifar100_test": 15.61, "imagenet16_valid": 16.43, "imagenet16_test": 16.32}


@pytest.mark.data
def test_best_cifar10_test(nb201_table):
    values = nb201_table.accuracies["cifar10_test"]
    best = max(range(len(values)), key=values.__getitem__)
    assert best == 6111
    assert round(values[best], 2) == 94.37


@pytest.mark.data
def test_all_conv3x3_lookup(nb201_table):
    acc = nb201_table.accuracy(nb201_table.index(ALL_CONV3))
    assert round(acc["cifar10_test"], 2) == 93.76
    assert round(acc["cifar100_test"], 2) == 71.11
    assert round(acc["imagenet16_test"], 2) == 41.44


# ---------------------------------------------------------------- malformed strings

MALFORMED = {
    "empty": "",
    "blank": "   ",
    "two-nodes": "|none~0|+|none~0|none~1|",
    "four-nodes": ALL_NONE + "+|none~0|none~1|none~2|none~3|",
    "trailing-plus": ALL_NONE + "+",
    "unknown-op": "|conv_5x5~0|+|none~0|none~1|+|none~0|none~1|none~2|",
    "uppercase-op": "|None~0|+|none~0|none~1|+|none~0|none~1|none~2|",
    "wrong-input-index": "|none~1|+|none~0|none~1|+|none~0|none~1|none~2|",
    "inputs-out-of-order": "|none~0|+|none~1|none~0|+|none~0|none~1|none~2|",
    "too-many-inputs": "|none~0|none~1|+|none~0|none~1|+|none~0|none~1|none~2|",
    "too-few-inputs": "|none~0|+|none~0|+|none~0|none~1|none~2|",
    "two-digit-index": "|none~00|+|none~0|none~1|+|none~0|none~1|none~2|",
    "missing-index": "|none|+|none~0|none~1|+|none~0|none~1|none~2|",
    "missing-outer-pipes": "none~0+none~0|none~1+none~0|none~1|none~2",
    "missing-inner-pipe": "|none~0|+|none~0none~1|+|none~0|none~1|none~2|",
    "space-before-plus": "|none~0| +|none~0|none~1|+|none~0|none~1|none~2|",
    "space-in-op": "|none ~0|+|none~0|none~1|+|none~0|none~1|none~2|",
    "comma-separated": "none,none,none,none,none,none",
}


@pytest.mark.parametrize("arch", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_strings_raise_user_error(arch):
    with pytest.raises(UserError, match="bad NB201 architecture string"):
        space.str_to_genotype(arch)


def test_newline_inside_string_raises_user_error():
    with pytest.raises(UserError):
        space.str_to_genotype("|none~0|\n+|none~0|none~1|+|none~0|none~1|none~2|")


def test_surrounding_whitespace_is_accepted():
    assert space.str_to_genotype(f"  {ALL_NONE}\n") == ("none",) * 6


# ---------------------------------------------------------------- bad table files


def _table_bytes(data_dir: Path) -> bytes:
    path = data_dir / TABLE_FILE
    if not path.is_file():
        pytest.skip(f"benchmark data not found at {path}; set HARNESS_DATA")
    return path.read_bytes()


def _write_table(root: Path, payload: bytes) -> Path:
    path = root / TABLE_FILE
    path.parent.mkdir(parents=True)
    path.write_bytes(payload)
    return path


def _rewrite_csv(raw: bytes, transform) -> bytes:
    rows = list(csv.reader(io.StringIO(gzip.decompress(raw).decode())))
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(transform(rows))
    return gzip.compress(out.getvalue().encode())


def _drop_column(rows, name="acc200_cifar100_xtest"):
    col = rows[0].index(name)
    return [row[:col] + row[col + 1:] for row in rows]


BAD_TABLES = {
    "truncated-gzip": (lambda raw: raw[: len(raw) // 2], "corrupt data file"),
    "not-gzip": (lambda raw: b"arch_index,arch_str\n0,x\n", "corrupt data file"),
    "missing-column": (lambda raw: _rewrite_csv(raw, _drop_column), "missing columns acc200_cifar100_xtest"),
    "ten-rows": (lambda raw: _rewrite_csv(raw, lambda rows: rows[:11]), "expected 15625 rows"),
    "bad-number": (lambda raw: _rewrite_csv(
        raw, lambda rows: [rows[0], [c if i != rows[0].index("acc200_cifar10_oritest") else "n/a"
                                     for i, c in enumerate(rows[1])], *rows[2:]]), "corrupt data file"),
}


@pytest.mark.data
@pytest.mark.parametrize("make, fragment", BAD_TABLES.values(), ids=BAD_TABLES.keys())
def test_bad_table_raises_user_error_naming_file(data_dir, tmp_path, make, fragment, monkeypatch):
    """Format errors of a file trusted as written (its sidecar matches), so the format checks are reached."""
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    path = _write_table(tmp_path, make(_table_bytes(data_dir)))
    write_sidecar(path)
    with pytest.raises(UserError) as info:
        load_table(tmp_path)
    message = str(info.value)
    assert str(path.resolve()) in message
    assert fragment in message
    assert "\n" not in message


def test_missing_table_names_file(tmp_path):
    with pytest.raises(UserError, match="nb201/nb201_table.csv.gz"):
        load_table(tmp_path)


def test_a_modified_table_fails_its_checksum_once_verified_it_is_not_rehashed(data_dir, tmp_path, monkeypatch):
    import foundation.integrity

    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    raw = _table_bytes(data_dir)
    path = _write_table(tmp_path, raw)  # the known release, copied: verified by its known digest
    hashed = []
    real = foundation.integrity.digest_of
    monkeypatch.setattr(foundation.integrity, "digest_of", lambda p, a="sha256": hashed.append(p) or real(p, a))
    assert verified_sha256(path) == verified_sha256(path) and len(hashed) == 1  # cached by path, size, mtime
    path.write_bytes(raw[:-1])  # truncated by one byte: not the known release (size changes the cache key)
    with pytest.raises(UserError, match=f"data file {path.resolve()} failed its checksum"):
        verified_sha256(path)
    write_sidecar(path)  # an import of our own is trusted by its sidecar ...
    verified_sha256(path)
    path.write_bytes(raw + b"x")  # ... and a later change to it is caught
    with pytest.raises(UserError, match="modified, truncated or replaced"):
        verified_sha256(path)
