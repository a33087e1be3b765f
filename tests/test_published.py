"""The transcribed published numbers are well-formed, and the pure table look-ups among them reproduce."""
from __future__ import annotations

import pytest

from analysis.published import lookup_discrepancies, published_rows
from benchmarks.nb201.table import ACCURACY_COLUMNS
from searchers import SEARCHERS

NB101_KEYS = {"nb101_test"}


def test_rows_are_well_formed():
    rows = published_rows()
    assert len(rows) == 33
    assert {r.table for r in rows if r.paper == "sd_darts"} == {"Table 4"}
    assert {r.table for r in rows if r.paper == "tse"} == {"Table 1", "Table 3", "Table 4"}
    for row in rows:
        assert row.searcher is None or row.searcher in SEARCHERS
        keys = set(row.values)
        assert keys <= (set(ACCURACY_COLUMNS) if row.space == "nb201" else NB101_KEYS), row
        assert all(0 <= mean <= 100 and std >= 0 for mean, std in row.values.values())


@pytest.mark.data
def test_pure_lookup_rows_reproduce_from_the_table(nb201_table):
    assert {row.method for row in published_rows() if row.lookup_arch} == {"DARTS (1st)", "DARTS (2nd)", "TSE-DrNAS"}
    assert lookup_discrepancies(nb201_table) == []


@pytest.mark.data
def test_a_wrong_table_value_is_caught(nb201_table):
    """The check can fail: the all-skip cell's CIFAR-10 test accuracy off by 0.01 is reported, with the key."""

    class ShiftedTable:
        index = staticmethod(nb201_table.index)

        @staticmethod
        def accuracy(index):
            values = dict(nb201_table.accuracy(index))
            values["cifar10_test"] += 0.01
            return values

    problems = lookup_discrepancies(ShiftedTable())
    assert len(problems) == 3 and all("cifar10_test" in p for p in problems)
