"""The packages are layered: harness > analysis > searchers > benchmarks > foundation (``[importlinter]`` in
setup.cfg). An import of a higher layer from a lower one, lazy imports inside functions included, fails here."""
from __future__ import annotations

import pytest

from conftest import REPO


def test_no_package_imports_a_layer_above_it(monkeypatch):
    cli = pytest.importorskip("importlinter.cli")
    monkeypatch.chdir(REPO)
    assert cli.lint_imports(config_filename=str(REPO / "setup.cfg"), no_cache=True) == 0
