"""``harness`` CLI: bad input exits 2 with exactly one stderr line (no traceback); look-ups and list work."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from foundation.errors import UserError
from harness.cli import main

REPO = Path(__file__).resolve().parents[1]
ALL_SKIP = "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|"

# Placeholders in argv: DATA -> the benchmark data dir (fixture), EMPTY -> an empty tmp dir, OUT -> tmp results.
# Every ``run`` case points --data-dir at EMPTY and --out at OUT, so a missed check can never start a search.
RUN = ["run", "--device", "cpu", "--out", "OUT", "--data-dir", "EMPTY"]
NB101 = ["lookup", "--space", "1shot1-s1", "--data-dir", "DATA", "--matrix"]
BAD_INPUTS = [
    # id, argv, fragment expected in the stderr line
    ("unknown-searcher", [*RUN, "--searcher", "nope"], "unknown searcher 'nope'"),
    ("unknown-space", [*RUN, "--space", "nope"], "unknown space 'nope'"),
    ("searcher-space-mismatch", [*RUN, "--searcher", "lambda_darts", "--space", "1shot1-s2"],
     "lambda_darts needs a supernet with op-mixing weights per search cell"),
    ("empty-searcher", [*RUN, "--searcher", ""], "bad value --searcher '': a name"),  # an unset shell variable
    ("empty-space", [*RUN, "--space", " "], "bad value --space ' ': a name"),
    ("unknown-preset", [*RUN, "--preset", "nope"], "unknown preset 'nope'"),
    ("set-no-equals", [*RUN, "--set", "epochs"], "malformed --set 'epochs'"),
    ("set-empty-value", [*RUN, "--set", "epochs="], "malformed --set"),
    ("set-unknown-key", [*RUN, "--set", "nope=1"], "unknown --set key 'nope'"),
    ("set-not-settable-key", [*RUN, "--set", "space=nb201"], "unknown --set key 'space'"),
    ("set-epochs-abc", [*RUN, "--set", "epochs=abc"], "epochs=abc: Input should be a valid integer"),
    ("set-epochs-fraction", [*RUN, "--set", "epochs=1.5"], "epochs=1.5"),
    ("set-epochs-zero", [*RUN, "--set", "epochs=0"], "epochs=0"),
    ("set-precision-fp8", [*RUN, "--set", "precision=fp8"], "precision=fp8"),
    ("set-w-lr-negative", [*RUN, "--set", "w_lr=-1"], "w_lr=-1"),
    ("set-w-lr-nan", [*RUN, "--set", "w_lr=nan"], "w_lr=nan: Input should be a finite number"),
    ("set-w-lr-inf", [*RUN, "--set", "w_lr=inf"], "finite number"),
    ("set-w-lr-overflow", [*RUN, "--set", "w_lr=1e999"], "finite number"),
    ("set-w-lr-min-above-w-lr", [*RUN, "--set", "w_lr_min=0.5"], "w_lr_min=0.5 must be <= w_lr=0.025"),
    ("set-momentum-one", [*RUN, "--set", "w_momentum=1"], "w_momentum=1"),
    ("set-bool-junk", [*RUN, "--set", "channels_last=maybe"], "channels_last=maybe: Input should be a valid boolean"),
    ("set-fd-radius-zero", [*RUN, "--searcher", "darts2", "--set", "fd_radius=0"], "darts2 option fd_radius=0"),
    ("set-fd-radius-inf", [*RUN, "--searcher", "darts2", "--set", "fd_radius=inf"], "finite number"),
    ("set-distill-weight-inf", [*RUN, "--searcher", "sd_darts", "--set", "distill_weight=inf"], "finite number"),
    ("set-kl-direction-junk", [*RUN, "--searcher", "sd_darts", "--set", "kl_direction=up"], "kl_direction=up"),
    ("set-option-of-another-searcher", [*RUN, "--set", "warmup_epochs=3"], "unknown --set key 'warmup_epochs'"),
    ("searcher-module-missing", [*RUN, "--searcher", "no_such_module_xyz:Searcher"], "cannot load searcher"),
    ("searcher-class-missing", [*RUN, "--searcher", "searchers.darts:Nope"], "has no attribute 'Nope'"),
    ("searcher-not-a-searcher", [*RUN, "--searcher", "pathlib:Path"],
     "is not a subclass of searchers.searcher.Searcher"),
    ("space-not-a-space", [*RUN, "--space", "pathlib:Path"], "is not a subclass of benchmarks.search_space"),
    ("threads-zero", [*RUN, "--threads", "0"], "bad value --threads 0: must be >= 1"),
    ("seeds-zero", [*RUN, "--seeds", "0"], "--seeds 0"),
    ("seeds-a-billion", [*RUN, "--seeds", "1000000000"], "--seeds 1000000000: must be in 1..10000"),
    ("seed-beyond-64-bits", [*RUN, "--seed", str(2**64)], f"--seed {2**64}: seeds are integers in 0..4294967295"),
    ("run-out-is-a-file", [*RUN, "--out", "FILE"], "a file, where a folder is expected"),
    ("run-out-under-a-file", [*RUN, "--out", "FILE/results"], "under the file"),
    ("run-out-empty", [*RUN, "--out", ""], "bad value --out '': a folder"),
    ("export-under-a-file", ["export", "EMPTY", "--out", "FILE/runs.csv"], "--out's folder"),
    ("report-of-a-file", ["report", "FILE", "--out", "OUT"], "a-file is a file"),
    ("set-huge-value", [*RUN, "--set", "a_lr=" + "9" * 100_000], "characters cut"),
    ("sweep-out-empty", ["sweep", "FILE", "--out", " "], "bad value --out ' ': a folder"),
    ("sweep-out-is-a-file", ["sweep", "FILE", "--out", "FILE"], "a file, where a folder is expected"),
    ("report-out-is-a-file", ["report", "EMPTY", "--out", "FILE"], "a file, where a folder is expected"),
    ("supernet-too-large", ["run", "--device", "cpu", "--out", "OUT", "--data-dir", "DATA", "--set", "channels=4096"],
     "a search with channels=4096, cells_per_stage=5, batch_size=64, precision=fp32 needs about"),
    ("train-images-beyond-the-split", ["run", "--device", "cpu", "--out", "OUT", "--data-dir", "DATA", "--preset",
                                       "smoke", "--set", "train_images=30000"], "a half of the split has 25000"),
    ("batch-beyond-the-split", ["run", "--device", "cpu", "--out", "OUT", "--data-dir", "DATA", "--preset", "smoke",
                                "--set", "train_images=0", "--set", "batch_size=25001"],
     "larger than the 25000 images"),
    ("seed-negative", [*RUN, "--seed", "-1"], "--seed -1"),
    ("epochs-zero", [*RUN, "--epochs", "0"], "--epochs 0"),
    ("epochs-not-int", [*RUN, "--epochs", "x"], "invalid int value"),
    ("run-device-tpu", [*RUN, "--device", "tpu"], "unknown device 'tpu'"),
    ("run-missing-data", [*RUN, "--preset", "smoke"], "nb201/nb201_table.csv.gz"),
    ("lookup-bad-arch", ["lookup", "--data-dir", "DATA", "--arch", "|nope~0|"], "bad NB201 architecture string"),
    ("lookup-unknown-op", ["lookup", "--data-dir", "DATA", "--arch", ALL_SKIP.replace("skip_connect~2", "conv~2")],
     "unknown op 'conv'"),
    ("lookup-index-99999", ["lookup", "--data-dir", "DATA", "--index", "99999"], "bad NB201 index 99999"),
    ("lookup-index-minus-1", ["lookup", "--data-dir", "DATA", "--index", "-1"], "bad NB201 index -1"),
    ("lookup-unknown-space", ["lookup", "--data-dir", "DATA", "--space", "nope", "--index", "0"],
     "unknown space 'nope'"),
    ("lookup-arch-and-index", ["lookup", "--data-dir", "DATA", "--index", "0", "--arch", ALL_SKIP],
     "not allowed with argument"),
    ("lookup-neither", ["lookup", "--data-dir", "DATA"], "one of the arguments --arch --index is required"),
    ("lookup-flag-of-another-space", ["lookup", "--data-dir", "DATA", "--index", "0", "--matrix", "01;00"],
     "unrecognized arguments"),
    ("lookup-missing-data", ["lookup", "--data-dir", "EMPTY", "--index", "0"], "nb201/nb201_table.csv.gz"),
    ("unknown-subcommand", ["frobnicate"], "invalid choice: 'frobnicate'"),
    ("no-subcommand", [], "required"),
    ("unknown-flag", ["list", "--nope"], "unrecognized arguments: --nope"),
    ("bench-steps-zero", ["bench", "--device", "cpu", "--out", "OUT", "--steps", "0"], "--steps 0"),
    ("bench-rounds-zero", ["bench", "--device", "cpu", "--out", "OUT", "--rounds", "0"], "--rounds 0"),
    ("data-import-missing-file", ["data", "import-nb201", "EMPTY/nope.pth", "--data-dir", "EMPTY"],
     "no such file"),
    ("data-import-nb101-not-tfrecord", ["data", "import-nb101", "JUNK", "--data-dir", "EMPTY"], "corrupt data file"),
    ("nb101-ops-count", [*NB101, "0110;0001;0001;0000", "--ops", "in,c3,mp"], "3 ops for 4 vertices"),
    ("nb101-not-a-dag", [*NB101, "011;001;011", "--ops", "in,c3,out"], "strictly upper triangular"),
    ("nb101-not-square", [*NB101, "01;00;00", "--ops", "in,out"], "not square"),
    ("nb101-not-binary", [*NB101, "0120;0001;0001;0000", "--ops", "in,c3,mp,out"], "rows of 0/1"),
    ("nb101-unknown-op", [*NB101, "0110;0001;0001;0000", "--ops", "in,c9,mp,out"], "unknown op 'c9'"),
    ("nb101-output-unreachable", [*NB101, "0100;0000;0001;0000", "--ops", "in,c3,mp,out"], "not reachable"),
    ("nb101-too-many-vertices", [*NB101, ";".join("0" * (i + 1) + "1" + "0" * (6 - i) for i in range(7)) + ";00000000",
                                 "--ops", "in,c3,c3,c3,c3,c3,c3,out"], "vertices"),
    ("nb101-ops-without-matrix", ["lookup", "--space", "1shot1-s2", "--data-dir", "DATA", "--ops", "in,out"],
     "the following arguments are required: --matrix"),
    ("report-bad-format", ["report", "EMPTY", "--format", "md,docx"], "bad value --format 'md,docx'"),
    ("report-missing-folder", ["report", "EMPTY/nope"], "does not exist"),
    ("bench-seeds-zero", ["bench", "--device", "cpu", "--out", "OUT", "--seeds", "0"], "--seeds 0"),
]


def _argv(argv, tmp_path: Path, request) -> list[str]:
    empty = tmp_path / "empty"
    empty.mkdir(exist_ok=True)
    out = []
    for arg in argv:
        if arg == "DATA":  # these cases need the table to reach their error: skip without it
            request.getfixturevalue("nb201_table")
            out.append(str(request.getfixturevalue("data_dir")))
        else:
            junk = tmp_path / "junk.tfrecord"
            junk.write_text("not a tfrecord\n")
            a_file = tmp_path / "a-file"
            a_file.write_text("not a folder\n")
            out.append(arg.replace("EMPTY", str(empty)).replace("OUT", str(tmp_path / "results"))
                       .replace("JUNK", str(junk)).replace("FILE", str(a_file)))
    return out


def run_cli(argv, capsys) -> tuple[int, str, str]:
    """``main(argv)`` in-process; argparse errors arrive as SystemExit, UserErrors as a return value."""
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("case_id, argv, fragment", [
    pytest.param(*case, marks=[pytest.mark.data] if "DATA" in case[1] else []) for case in BAD_INPUTS],
    ids=[case[0] for case in BAD_INPUTS])
def test_bad_input_exits_2_with_one_line(case_id, argv, fragment, tmp_path, capsys, request, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    code, out, err = run_cli(_argv(argv, tmp_path, request), capsys)
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].strip(), err
    assert "Traceback" not in err
    assert fragment in lines[0], lines[0][:2000]
    assert len(lines[0]) < 1200  # a long value is cut, the message is not
    assert lines[0].startswith("harness")
    if case_id != "run-missing-data":  # rejected before any run folder could be made
        assert not (tmp_path / "results").exists()


@pytest.mark.data
def test_lookup_arch_with_inner_newline_exits_2(data_dir, nb201_table, capsys):
    arch = "|none~0|\n+|none~0|none~1|+|none~0|none~1|none~2|"
    code, _, err = run_cli(["lookup", "--data-dir", str(data_dir), "--arch", arch], capsys)
    assert code == 2
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("command, resumes", [(["lookup", "--index", "0"], False), (["run"], True)])
def test_an_os_error_says_resume_only_where_a_rerun_resumes(command, resumes, monkeypatch, capsys):
    import harness.cli as cli

    def full_disk(*args):
        raise OSError(28, "No space left on device", "/results/x")

    monkeypatch.setattr(cli, "cmd_lookup", full_disk)
    monkeypatch.setitem(cli.COMMANDS, "run", full_disk)
    code, _, err = run_cli(command, capsys)
    assert code == 1 and err.startswith("harness: error: No space left on device (/results/x)")
    assert ("resumes from its last checkpoint" in err) == resumes


def test_real_process_exit_code(tmp_path):
    env = {**os.environ, "HARNESS_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run(
        [sys.executable, "-m", "harness.cli", "lookup", "--data-dir", str(tmp_path), "--index", "0"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "nb201/nb201_table.csv.gz" in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""

    proc = subprocess.run([sys.executable, "-m", "harness.cli", "frobnicate"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.data
def test_lookup_index_json(data_dir, nb201_table, capsys):
    code, out, err = run_cli(["lookup", "--data-dir", str(data_dir), "--index", "1835", "--json"], capsys)
    assert code == 0, err
    result = json.loads(out)
    assert result["arch_index"] == 1835
    assert result["arch_str"] == ALL_SKIP
    assert result["depth"] == 3
    assert result["skip_count"] == 6
    acc = {key: round(value, 2) for key, value in result["accuracy"].items()}
    assert acc == {"cifar10_valid": 39.77, "cifar10_test": 54.30, "cifar100_valid": 15.03,
                   "cifar100_test": 15.61, "imagenet16_valid": 16.43, "imagenet16_test": 16.32}


@pytest.mark.data
def test_lookup_arch_text(data_dir, nb201_table, capsys):
    code, out, err = run_cli(["lookup", "--data-dir", str(data_dir), "--arch", ALL_SKIP], capsys)
    assert code == 0, err
    assert "1835" in out
    assert "54.30" in out
    assert err == ""


def test_list(capsys):
    code, out, err = run_cli(["list"], capsys)
    assert code == 0, err
    for name in ("darts", "nb201", "paper", "quick", "smoke"):
        assert name in out


def test_seed_batch_has_one_rule_for_run_and_sweep(tmp_path, capsys):
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text("preset: smoke\nspaces: [nb201]\nsearchers: [darts]\n")
    assert main([*RUN, "--seed-batch", "10001", "--out", str(tmp_path / "a")]) == 2
    assert main(["sweep", str(sweep), "--seed-batch", "10001", "--out", str(tmp_path / "b")]) == 2
    run_error, sweep_error = capsys.readouterr().err.splitlines()
    assert run_error == sweep_error == "harness: error: bad value --seed-batch 10001: must be in 1..10000"


@pytest.mark.parametrize("name, fragment", [
    ("cuda:x", "unknown device 'cuda:x' (use cpu, cuda or cuda:N"), ("cuda:", "unknown device 'cuda:'"),
    ("cuda:-1", "unknown device 'cuda:-1'"), ("cuda:7", "this machine has 2 GPU(s), cuda:0 to cuda:1")])
def test_a_malformed_or_absent_gpu_index_is_one_line_on_a_machine_with_cuda(name, fragment, monkeypatch):
    """Simulated CUDA (this machine has none): torch's own parse would raise ``Invalid device string``."""
    import torch

    from harness.device import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(UserError, match=re.escape(fragment)):
        resolve_device(name)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)


def test_memory_sizes_are_shown_in_a_unit_that_shows_them():
    from harness.memory import size

    assert [size(n) for n in (3 * 2**30, 1.5 * 2**20, 2048, 12)] == ["3 GiB", "1.5 MiB", "2 KiB", "12 B"]
