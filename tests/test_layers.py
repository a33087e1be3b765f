"""The packages are layered: harness > analysis > searchers > benchmarks > foundation (``[importlinter]`` in
setup.cfg). An import of a higher layer from a lower one, lazy imports inside functions included, fails here.
The report side (``analysis``) reads run folders without torch: in-loop measurement lives in ``harness``."""
from __future__ import annotations

import subprocess
import sys

from importlinter import cli  # a test dependency (setup.cfg ``test`` extra): missing, this file fails to import

from conftest import REPO


def test_no_package_imports_a_layer_above_it(monkeypatch):
    monkeypatch.chdir(REPO)
    assert cli.lint_imports(config_filename=str(REPO / "setup.cfg"), no_cache=True) == 0


def test_the_report_and_the_table_layouts_load_without_torch():
    code = ("import sys, analysis.report, analysis.frame; from analysis.tables import layouts; layouts(); "
            "assert 'torch' not in sys.modules, sorted(m for m in sys.modules if m.startswith('torch'))[:3]")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
