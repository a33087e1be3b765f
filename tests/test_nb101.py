"""NB101 cells and NAS-Bench-1shot1 spaces: fingerprints, pruning, enumeration, discretised cells, look-ups."""
from __future__ import annotations

import csv
import gzip
import json

import pytest
import torch

from benchmarks.nb101.graph import Cell, depth, fingerprint, parse_cell, prune
from benchmarks.nb101.table import MEMBERSHIP_FILE, PARTIAL_FILES, load_table, space_hashes
from benchmarks.oneshot1.space import DEFINITIONS
from foundation.errors import UserError
from harness.cli import main


def _rows(data_dir, name):
    path = data_dir / name
    if not path.is_file():
        pytest.skip(f"NB101 data not found at {path}; set HARNESS_DATA")
    with gzip.open(path, "rt", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.data
def test_fingerprint_reproduces_the_published_hashes(data_dir):
    rows = [r for r in _rows(data_dir, PARTIAL_FILES[0]) if r["matrix"]]
    rows += [r for r in _rows(data_dir, PARTIAL_FILES[1]) if r["matrix"]]
    assert len(rows) > 5000
    for row in rows:
        assert fingerprint(prune(parse_cell(row["matrix"], row["ops"]))) == row["hash"], row
    assert fingerprint(prune(parse_cell("0100110;0010000;0001001;0000010;0000010;0000001;0000000",
                                        "input,conv3x3-bn-relu,maxpool3x3,conv3x3-bn-relu,conv3x3-bn-relu,"
                                        "conv1x1-bn-relu,output"))) == "00005c142e6f48ac74fdcf73e3439874"


@pytest.mark.data
@pytest.mark.parametrize("space,configurations,unique", [
    (1, 14580, 2685), (2, 29160, 7773), pytest.param(3, 1312200, 55854, marks=pytest.mark.slow)])
def test_enumerated_spaces_reach_exactly_the_listed_hashes(space, configurations, unique, data_dir):
    definition = DEFINITIONS[space]
    hashes, count, memo = set(), 0, {}
    for ops, parents in definition.configurations():
        count += 1
        pruned = prune(definition.cell(ops, parents))
        if pruned is not None:
            key = (pruned.matrix, pruned.ops)
            if key not in memo:
                memo[key] = fingerprint(pruned)
            hashes.add(memo[key])
    assert count == configurations and len(hashes) == unique
    if (data_dir / MEMBERSHIP_FILE).is_file():
        assert hashes == space_hashes(data_dir, space)


def test_space_one_cell_has_the_inserted_unused_conv1x1_vertex():
    cell = DEFINITIONS[1].cell(("maxpool3x3", "maxpool3x3", "conv3x3-bn-relu", "maxpool3x3"),
                               ((0,), (0, 1), (1, 2), (2, 3), (1, 4)))
    assert cell.matrix_str() == "0110000;0011001;0001100;0000100;0000001;0000000;0000000"
    assert cell.ops == ("input", "maxpool3x3", "maxpool3x3", "conv3x3-bn-relu", "maxpool3x3", "conv1x1-bn-relu",
                        "output")
    assert fingerprint(prune(cell)) == "002f55ba58e6261f4fcca611cd885142"  # the membership file's first row
    space3 = DEFINITIONS[3].cell(("conv3x3-bn-relu",) * 5, ((0,), (1,), (2,), (2, 3), (3, 4), (4, 5)))
    assert len(space3.matrix) == 7 and depth(prune(space3)) == 6


def test_pruning_and_depth_by_hand():
    # 0 -> 1 -> 3, and 2 hangs off the input without reaching the output: vertex 2 is pruned
    cell = parse_cell("0110;0001;0000;0000", "in,c3,mp,out")
    pruned = prune(cell)
    assert pruned == Cell(((0, 1, 0), (0, 0, 1), (0, 0, 0)), ("input", "conv3x3-bn-relu", "output"))
    assert depth(pruned) == 2
    assert prune(parse_cell("0100;0000;0001;0000", "in,c3,mp,out")) is None  # output cut off


@pytest.mark.parametrize("matrix,ops,message", [
    ("0110;0001;0001;0100", "in,c3,mp,out", "upper triangular"),
    ("011;001", "in,c3,out", "not square"),
    ("01;00;00", "in,out", "not square"),
    ("0" * 8 + (";" + "0" * 8) * 7, "in,c3,c3,c3,c3,c3,c3,out", "vertices"),
    ("0120;0001;0001;0000", "in,c3,mp,out", "rows of 0/1"),
    ("0110;0001;0001;0000", "in,c3,conv5x5,out", "unknown op"),
    ("0110;0001;0001;0000", "in,c3,out", "3 ops for 4 vertices"),
    ("0110;0001;0001;0000", "c3,in,mp,out", "input first"),
])
def test_malformed_cells_are_user_errors(matrix, ops, message):
    with pytest.raises(UserError, match=message):
        parse_cell(matrix, ops)


@pytest.mark.data
def test_lookup_in_and_out_of_the_partial_table(data_dir, capsys):
    _rows(data_dir, PARTIAL_FILES[0])
    table = load_table(data_dir)
    known = table.lookup("00005c142e6f48ac74fdcf73e3439874")
    assert known["in_table"] and known["valid_acc"] == pytest.approx(93.04887652397156) and known["test_acc"] is None
    unknown = table.lookup("0" * 32)
    assert unknown == {"hash": "0" * 32, "in_table": False, "valid_acc": None, "valid_runs": None,
                       "test_acc": None, "table": None}
    # CLI: unpruned input accepted, short op names accepted, JSON row with the flag
    code = main(["lookup", "--space", "1shot1-s1", "--data-dir", str(data_dir), "--json",
                 "--matrix", "0100110;0010000;0001001;0000010;0000010;0000001;0000000",
                 "--ops", "in,c3,mp,c3,c3,c1,out"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0 and result["hash"] == "00005c142e6f48ac74fdcf73e3439874" and result["depth"] == 5
    assert main(["lookup", "--space", "1shot1-s1", "--data-dir", str(data_dir), "--json",
                 "--matrix", "0110;0001;0001;0000", "--ops", "in,c3,c3,out"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["in_table"] is False and result["accuracy"] is None


def test_discretisation_of_hand_made_alphas():
    from benchmarks.oneshot1.search_space import OneShot1Space2 as space2

    weights = [torch.tensor([[0.1, 0.8, 0.1], [0.7, 0.2, 0.1], [0.2, 0.2, 0.6], [0.5, 0.3, 0.2]]),
               torch.tensor([0.05, 0.3, 0.05, 0.4, 0.2]),  # output: 3 parents among input, nodes 1-4
               torch.tensor([0.9, 0.1]),                   # node 2: 1 parent among input, node 1
               torch.tensor([0.1, 0.5, 0.4]),              # node 3: 2 parents among input, nodes 1, 2
               torch.tensor([0.3, 0.1, 0.2, 0.4])]         # node 4: 2 parents among input, nodes 1-3
    ops, parents = space2.derive(weights)
    assert ops == ("conv1x1-bn-relu", "conv3x3-bn-relu", "maxpool3x3", "conv3x3-bn-relu")
    assert parents == ((0,), (0,), (1, 2), (0, 3), (1, 3, 4))
    cell = space2.definition.cell(ops, parents)
    # input -> nodes 1, 2, 4; node 1 -> node 3, output; node 2 -> node 3; node 3 -> node 4, output; node 4 -> output
    assert cell.matrix_str() == "0110100;0001001;0001000;0000101;0000001;0000000;0000000"
    discrete = space2.discrete_weights(weights)
    assert discrete[0].argmax(-1).tolist() == [1, 0, 2, 0] and discrete[1].tolist() == [0, 1, 0, 1, 1]
    assert [d.tolist() for d in discrete[2:]] == [[1, 0], [0, 1, 1], [1, 0, 0, 1]]


@pytest.mark.slow
@pytest.mark.data
@pytest.mark.parametrize("space", ["1shot1-s1", "1shot1-s2", "1shot1-s3"])
def test_smoke_search_in_each_space(space, data_dir, tmp_path):
    if not (data_dir / "cifar10").is_dir() or not (data_dir / MEMBERSHIP_FILE).is_file():
        pytest.skip(f"CIFAR-10 or NB101 data not found under {data_dir}; set HARNESS_DATA")
    searcher = "darts" if space != "1shot1-s3" else "tse_drnas"  # any searcher, same interface
    assert main(["run", "--space", space, "--searcher", searcher, "--preset", "smoke", "--device", "cpu",
                 "--data-dir", str(data_dir), "--out", str(tmp_path)]) == 0
    folder = next(tmp_path.rglob("seed-0"))
    records = [json.loads(line) for line in (folder / "epochs.jsonl").read_text().splitlines()]
    summary = json.loads((folder / "summary.json").read_text())
    assert len(records) == 2 and summary["lookup_coverage"] == sum(r["in_table"] for r in records) / 2
    for record in records:
        matrix, ops = record["genotype"].split(" ")
        pruned = prune(parse_cell(matrix, ops))
        assert record["arch_index"] == fingerprint(pruned) and record["depth"] == depth(pruned)
        assert record["arch_index"] in space_hashes(data_dir, int(space[-1]))
        assert record["skip_count"] == 0 and isinstance(record["hessian_eig_max"], float)
        if record["in_table"]:
            assert record["lookup"]["nb101_valid"] > 0 and record["lookup"]["nb101_test"] is None
        else:
            assert record["lookup"] == {"nb101_valid": None, "nb101_test": None} and record["regret"] is None


@pytest.mark.data
def test_a_space_lists_the_look_ups_of_every_cell_its_table_holds(data_dir):
    """The random-cell population of a 1shot1 space (the report's random-cell row): the look-up of each of the
    space's cells (by hash) that the installed table holds, no cell twice."""
    from benchmarks import get_space

    if not (data_dir / MEMBERSHIP_FILE).is_file():
        pytest.skip(f"{MEMBERSHIP_FILE} not under {data_dir}")
    table = load_table(data_dir)
    held = [table.lookup(h) for h in space_hashes(data_dir, 1)]
    valid = sorted(row["valid_acc"] for row in held if row["valid_acc"] is not None)  # the table's column
    values = get_space("1shot1-s1")(data_dir).cell_values()
    assert list(values["nb101_valid"]) == valid and 0 < len(valid) <= 2685
