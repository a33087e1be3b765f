"""The Python API and the DataFrame example of the README, executed as written."""
from __future__ import annotations

import re

import pytest

from conftest import REPO
from foundation.errors import UserError
from harness.api import run_search


def readme_example() -> str:
    section = (REPO / "README.md").read_text().split("## Python API and DataFrames", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.mark.slow
def test_readme_example_runs_a_search_and_reads_it_back(search_data, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HARNESS_DATA", str(search_data))
    exec(compile(readme_example(), "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert out.count(": done") == 0 and out.count(" done ") == 2  # a line per seed: folder, status, accuracy
    assert "darts" in out and "mean" in out and (tmp_path / "accuracy.png").stat().st_size > 1000
    again = run_search(searcher="darts", preset="smoke", seeds=[1, 0], device="cpu", out="results",
                       data_dir=search_data)  # finished seeds are skipped, in seed order
    assert [folder.name for folder, _ in again] == ["seed-0", "seed-1"]
    assert "already finished" in capsys.readouterr().err


def test_bad_arguments_are_one_line_errors(tmp_path):
    with pytest.raises(UserError, match="unknown --set key 'warmup'"):
        run_search(searcher="sd_darts", preset="smoke", settings={"warmup": 1}, out=tmp_path)
    with pytest.raises(UserError, match="bad value --seed -1"):
        run_search(seeds=[-1], out=tmp_path)
    (tmp_path / "file").write_text("")
    with pytest.raises(UserError, match="a file, where a folder is expected"):
        run_search(out=tmp_path / "file")
