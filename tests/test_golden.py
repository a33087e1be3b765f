"""Golden trajectories: a smoke search (seed 0, CPU) of every built-in searcher on NB201 and of DARTS and GDAS on
a 1shot1 space, recorded once in ``golden/``; any code change that alters what a searcher computes fails here,
with the list of every (epoch, field) that moved.

Regenerating is a deliberate act, reviewed like code: ``python tests/test_golden.py --regenerate [SPACE/SEARCHER
...]`` (all cases when none is named; the diff of ``tests/golden/*.json`` shows what changed). The searches run in
float64 (``precision=fp64``) on ``THREADS`` CPU threads, so that a recording holds on any CPU: in float32 the
rounding of AVX2 and AVX512 kernels (and of the thread count) is amplified by the TSE searchers' unrolled windows
past any useful tolerance within two epochs, and a near-tie of alphas at smoke scale then derives another cell;
in float64 that rounding stays orders of magnitude below the tolerances. The trajectory's floats are compared to
1e-4 (relative and absolute): tight enough to catch any change of maths. The diagnostics are looser: the Hessian
eigenvalue to 5 % (Lanczos stops on a residual, and at smoke scale, a near-random supernet with close top
eigenvalues, a rounding-level change of the products moves its stopping point) and the accuracies on the 64
evaluation images to 2 points (one image is 1.6). A recording is specific to its CIFAR-10 source (the JPEG copy and
the official tarball give different images): with another source the test is skipped, saying so.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

GOLDEN_DIR = Path(__file__).with_name("golden")
TOLERANCE = 1e-4
DIAGNOSTIC_TOLERANCE = {"hessian_eig_max": {"rel": 0.05}, "supernet_acc": {"abs": 2.0}, "discrete_acc": {"abs": 2.0}}
THREADS = 2
RECORDED = ("epoch", "genotype", "arch_index", "depth", "skip_count", "arch_weights", "train_loss", "train_acc",
            "arch_loss", "arch_acc", "w_lr", "hessian_eig_max", "supernet_acc", "discrete_acc")


def cases() -> list[tuple[str, str]]:
    """(space, searcher): every built-in searcher on NB201, and DARTS and GDAS (its sampled forward differs
    there) on 1shot1 space 2."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from searchers import builtin_searchers

    return [("nb201", name) for name in builtin_searchers()] + [("1shot1-s2", "darts"), ("1shot1-s2", "gdas")]


def golden_file(space: str, searcher: str) -> Path:
    return GOLDEN_DIR / f"smoke_{space}_{searcher}_seed0.json"


def trajectory(space: str, searcher: str, data_dir: Path, out: Path) -> dict:
    import torch

    from foundation.atomic import read_jsonl
    from harness.cli import main

    args = ["run", "--searcher", searcher, "--space", space, "--preset", "smoke", "--set", "precision=fp64", "--seed",
            "0", "--threads", str(THREADS), "--device", "cpu", "--data-dir", str(data_dir), "--out", str(out)]
    assert main(args) == 0
    folder = next(Path(out).rglob("seed-0"))
    meta = json.loads((folder / "config.json").read_text())
    records = [{key: record[key] for key in RECORDED} for record in read_jsonl(folder / "epochs.jsonl")]
    return {"command": "harness " + " ".join(args[:-4]), "data_source_sha256": meta["data"]["source_sha256"],
            "torch_version": meta["torch_version"], "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "records": records}


def _flatten(value) -> list:
    return [x for item in value for x in _flatten(item)] if isinstance(value, list) else [value]


def differences(now: list[dict], recorded: list[dict]) -> list[str]:
    """Every (epoch, field) whose value moved beyond the tolerance, as readable lines."""
    if len(now) != len(recorded):
        return [f"{len(now)} epochs recorded, {len(recorded)} in the golden file"]
    moved = []
    for ours, golden in zip(now, recorded):
        for key in RECORDED:
            tolerance = DIAGNOSTIC_TOLERANCE.get(key, {"rel": TOLERANCE, "abs": TOLERANCE})
            same = (_flatten(ours[key]) == pytest.approx(_flatten(golden[key]), **tolerance)
                    if isinstance(golden[key], (float, list)) else ours[key] == golden[key])
            if not same:
                shown = lambda value: json.dumps(value)[:120]  # noqa: E731
                moved.append(f"epoch {golden['epoch']} {key}: now {shown(ours[key])}, golden {shown(golden[key])}")
    return moved


def test_a_moved_value_is_named_with_its_epoch_and_field():
    record = {key: 1.0 for key in RECORDED} | {"epoch": 1, "genotype": "g", "arch_weights": [[0.5, 0.5]]}
    assert differences([record], [dict(record)]) == []
    moved = differences([record | {"train_loss": 1.01, "genotype": "h"}], [record])
    assert moved == ['epoch 1 genotype: now "h", golden "g"', "epoch 1 train_loss: now 1.01, golden 1.0"]
    assert differences([record, record], [record]) == ["2 epochs recorded, 1 in the golden file"]


@pytest.mark.slow
@pytest.mark.data
@pytest.mark.parametrize("space,searcher", cases(), ids=lambda value: value)
def test_smoke_trajectory_is_unchanged(space, searcher, data_dir, nb201_table, tmp_path):
    if not (data_dir / "cifar10").is_dir():
        pytest.skip(f"CIFAR-10 not found under {data_dir}")
    golden = json.loads(golden_file(space, searcher).read_text())
    now = trajectory(space, searcher, data_dir, tmp_path)
    if now["data_source_sha256"] != golden["data_source_sha256"]:
        pytest.skip("the golden trajectory was recorded with another CIFAR-10 source file")
    moved = differences(now["records"], golden["records"])
    assert not moved, (f"{space}/{searcher} computes something else than its golden trajectory "
                       f"(regenerate on purpose: python tests/test_golden.py --regenerate {space}/{searcher}):\n"
                       + "\n".join(moved))


if __name__ == "__main__":
    if sys.argv[1:2] != ["--regenerate"]:
        sys.exit("usage: python tests/test_golden.py --regenerate [SPACE/SEARCHER ...]   (rewrites golden "
                 "trajectories; review the diff)")
    import tempfile

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from foundation.paths import resolve_data_dir

    chosen = [tuple(name.split("/", 1)) for name in sys.argv[2:]] or cases()
    for space, searcher in chosen:
        with tempfile.TemporaryDirectory() as tmp:
            result = trajectory(space, searcher, resolve_data_dir(None), Path(tmp))
        path = golden_file(space, searcher)
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
        print(f"wrote {path}")
