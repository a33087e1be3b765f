"""The transcribed published numbers are well-formed, and the pure table look-ups among them reproduce."""
from __future__ import annotations

import pytest

from analysis.published import lookup_discrepancies, published_rows
from benchmarks.nb201.table import ACCURACY_COLUMNS
from searchers import builtin_searchers

NB101_KEYS = {"nb101_test"}


def test_rows_are_well_formed():
    rows = published_rows()
    assert len(rows) == 33
    assert {r.table for r in rows if r.paper == "sd_darts"} == {"Table 4"}
    assert {r.table for r in rows if r.paper == "tse"} == {"Table 1", "Table 3", "Table 4"}
    for row in rows:
        assert row.searcher is None or row.searcher in builtin_searchers()
        keys = set(row.values)
        assert keys <= (set(ACCURACY_COLUMNS) if row.space == "nb201" else NB101_KEYS), row
        assert all(0 <= mean <= 100 and std >= 0 for mean, std in row.values.values())


@pytest.mark.data
def test_pure_lookup_rows_reproduce_from_the_table(data_dir, nb201_table):
    assert {row.method for row in published_rows() if row.lookup_arch} == {"DARTS (1st)", "DARTS (2nd)", "TSE-DrNAS"}
    assert lookup_discrepancies(data_dir) == []


@pytest.mark.data
def test_a_wrong_table_value_is_caught(data_dir, nb201_table, monkeypatch):
    """The check can fail: the all-skip cell's CIFAR-10 test accuracy off by 0.01 is reported, with the key."""
    from benchmarks.nb201.search_space import NB201Space

    def shifted(self, genotype):
        values = dict(nb201_table.accuracy(nb201_table.index(genotype)))
        values["cifar10_test"] += 0.01
        return values

    monkeypatch.setattr(NB201Space, "lookup_genotype", shifted)
    problems = lookup_discrepancies(data_dir)
    assert len(problems) == 3 and all("cifar10_test" in p for p in problems)
