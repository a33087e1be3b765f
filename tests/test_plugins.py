"""Searchers from outside the repository: the example plug-in (``examples/plugin_searcher``, installed by ``make
install``) through its entry point, and a searcher in a plain file through ``module:Class``, in every command:
list, run and resume, sweep (local pool and Ray), bench and report."""
from __future__ import annotations

import importlib.metadata
import json
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import md_rows
from foundation.records import RECORD_FORMAT
from harness.cli import main
from searchers import all_searchers, get_searcher

PLUGIN = "milenas"
SMOKE = ["--device", "cpu", "--preset", "smoke", "--epochs", "1"]
OUTSIDE = '''
    """A searcher written outside the repository: DARTS with a softmax temperature on the mixing weights."""
    import torch
    from pydantic import Field
    from torch.nn import functional as F

    from searchers import Darts, OptionSet


    class TemperedDarts(Darts):
        name = "tempered darts"  # sanitised to tempered_darts for the folder
        summary = "DARTS with softmax(alpha / T)"

        class Options(OptionSet):
            temperature: float = Field(2.0, gt=0)

        def expected_arch_weights(self) -> list[torch.Tensor]:
            return [F.softmax(alpha / self.options.temperature, dim=-1) for alpha in self.alphas]

        def arch_weights(self) -> list[torch.Tensor]:
            return self.expected_arch_weights()


    class Impostor(Darts):
        name = "darts"
        summary = "not the built-in DARTS"
'''


@pytest.fixture
def outside(tmp_path: Path, monkeypatch) -> Path:
    """A module ``outside_searchers.py`` in a fresh working directory, importable as ``outside_searchers:...``."""
    folder = tmp_path / "work"
    folder.mkdir()
    (folder / "outside_searchers.py").write_text(textwrap.dedent(OUTSIDE))
    monkeypatch.chdir(folder)
    monkeypatch.setenv("PYTHONPATH", str(folder))  # for sweep workers
    yield folder
    sys.modules.pop("outside_searchers", None)


def _installed() -> None:
    names = {entry.name for entry in importlib.metadata.entry_points(group="dnas_harness.searchers")}
    assert PLUGIN in names, "the example plug-in is not installed: pip install -e examples/plugin_searcher"


def test_entry_point_and_module_class_name_the_same_class(capsys):
    _installed()
    from milenas_plugin.searcher import Milenas

    assert all_searchers()[PLUGIN] is Milenas is get_searcher(PLUGIN)
    assert get_searcher("milenas_plugin.searcher:Milenas") is Milenas
    assert main(["list"]) == 0
    listing = capsys.readouterr().out
    assert "milenas" in listing and "lambda_train=1.0" in listing


def test_plugin_options_are_validated_like_built_in_ones(capsys):
    _installed()
    code = main(["run", *SMOKE, "--searcher", PLUGIN, "--set", "lambda_train=-1", "--out", "/nonexistent"])
    assert code == 2 and "milenas option lambda_train=-1" in capsys.readouterr().err


def test_a_second_class_with_a_taken_name_is_refused(outside, capsys):
    assert main(["run", *SMOKE, "--searcher", "outside_searchers:Impostor"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "two different classes are named 'darts'" in err


def test_a_plug_in_module_that_exits_on_import_is_one_line_and_exit_2(outside, capsys):
    (outside / "exits_on_import.py").write_text("import sys\nsys.exit(0)\n")
    assert main(["run", *SMOKE, "--searcher", "exits_on_import:Searcher"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "its module called sys.exit(0) on import" in err, err
    sys.modules.pop("exits_on_import", None)


@pytest.mark.slow
def test_run_resume_bench_and_report_of_plug_ins(search_data, outside, tmp_path, capsys, interrupt):
    _installed()
    out = tmp_path / "results"
    data = ["--data-dir", str(search_data)]
    assert main(["run", *SMOKE, *data, "--searcher", PLUGIN, "--out", str(out)]) == 0
    (folder,) = (out / "nb201" / PLUGIN).glob("*/seed-0")
    meta = json.loads((folder / "config.json").read_text())
    assert meta["searcher_class"] == "milenas_plugin.searcher:Milenas" and meta["overrides"] == {"epochs": 1}
    assert meta["config"]["searcher_options"] == {"lambda_train": 1.0, "lambda_valid": 1.0}
    # the same class by module:Class is the same run: already finished
    assert main(["run", *SMOKE, *data, "--searcher", "milenas_plugin.searcher:Milenas", "--out", str(out)]) == 0
    assert "already finished" in capsys.readouterr().err

    # a file outside the repository, interrupted after its first epoch and resumed
    args = ["run", "--device", "cpu", "--preset", "smoke", "--searcher", "outside_searchers:TemperedDarts",
            "--set", "temperature=4", "--out", str(out), *data]
    interrupt(2)
    assert main(args) == 130
    interrupt(None)
    assert main(args) == 0
    assert "resuming after epoch 1/2" in capsys.readouterr().err
    (tempered,) = (out / "nb201" / "tempered_darts").glob("*/seed-0")
    records = [json.loads(line) for line in (tempered / "epochs.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2] and all(r["format"] == RECORD_FORMAT for r in records)
    weights = records[-1]["arch_weights"][0][0]
    assert sum(weights) == pytest.approx(1.0)

    assert main(["bench", "--device", "cpu", "--preset", "smoke", "--searcher", PLUGIN, "--no-reference",
                 "--steps", "1", "--rounds", "1", "--json", "--out", str(tmp_path / "bench")]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["searcher"] == PLUGIN and result["cost_vs_our_darts"] > 0

    assert main(["report", str(out), "--out", str(tmp_path / "report"), "--no-figures"]) == 0
    table = (tmp_path / "report" / "tables" / "sd_darts_table4.md").read_text()
    ours = [row[:3] for row in md_rows(table)]
    assert ["milenas (smoke, epochs=1)", "ours", "1"] in ours
    assert ["tempered_darts (smoke, temperature=4.0)", "ours", "1"] in ours


SWEEP = """
preset: smoke
spaces: [nb201]
searchers: [milenas, "outside_searchers:TemperedDarts"]
seeds: 1
epochs: 1
set: {diagnostics_every: 0}
"""


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["local", pytest.param("ray", marks=pytest.mark.filterwarnings("ignore"))])
def test_sweep_of_plug_ins(backend, search_data, outside, tmp_path, capsys):
    _installed()
    if backend == "ray":
        pytest.importorskip("ray")
    sweep_file = outside / "plugins.yaml"
    sweep_file.write_text(SWEEP)
    out = tmp_path / "results"
    assert main(["sweep", str(sweep_file), "--backend", backend, "--device", "cpu", "--max-parallel", "2",
                 "--out", str(out), "--data-dir", str(search_data)]) == 0
    summaries = sorted(p.parent.parent.parent.name for p in out.rglob("summary.json"))
    assert summaries == ["milenas", "tempered_darts"]
