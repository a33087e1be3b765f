"""The transcribed published numbers are well-formed, and the pure table look-ups among them reproduce."""
from __future__ import annotations

import pytest

from analysis.published import published_rows
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
    lookups = [row for row in published_rows() if row.lookup_arch]
    assert {row.method for row in lookups} == {"DARTS (1st)", "DARTS (2nd)", "TSE-DrNAS"}
    for row in lookups:
        accuracy = nb201_table.accuracy(nb201_table.index(row.lookup_arch))
        for key, (mean, std) in row.values.items():
            assert std == 0 and round(accuracy[key], 2) == mean, (row.method, key)
