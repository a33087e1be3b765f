"""The golden trajectory: a smoke DARTS search (seed 0, CPU, fp32) recorded once in ``golden/``; any code change
that alters what a search computes fails here.

Regenerating is a deliberate act, reviewed like code: ``python tests/test_golden.py --regenerate`` (the diff of
``tests/golden/smoke_darts_seed0.json`` shows what changed). Floats are compared to 1e-4 (relative and absolute):
tight enough to catch any change of maths, loose enough for another CPU's summation order. The recording is
specific to its CIFAR-10 source (the JPEG copy and the official tarball give different images): with another
source the test is skipped, saying so.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

GOLDEN = Path(__file__).with_name("golden") / "smoke_darts_seed0.json"
TOLERANCE = 1e-4
RECORDED = ("epoch", "genotype", "arch_index", "depth", "skip_count", "arch_weights", "train_loss", "train_acc",
            "arch_loss", "arch_acc", "w_lr", "hessian_eig_max", "supernet_acc", "discrete_acc")


def trajectory(data_dir: Path, out: Path) -> dict:
    from foundation.atomic import read_jsonl
    from harness.cli import main

    args = ["run", "--searcher", "darts", "--space", "nb201", "--preset", "smoke", "--seed", "0", "--device", "cpu",
            "--data-dir", str(data_dir), "--out", str(out)]
    assert main(args) == 0
    folder = next(Path(out).rglob("seed-0"))
    meta = json.loads((folder / "config.json").read_text())
    records = [{key: record[key] for key in RECORDED} for record in read_jsonl(folder / "epochs.jsonl")]
    return {"command": "harness " + " ".join(args[:-4]), "data_source_sha256": meta["data"]["source_sha256"],
            "torch_version": meta["torch_version"], "records": records}


def _flatten(value) -> list:
    return [x for item in value for x in _flatten(item)] if isinstance(value, list) else [value]


@pytest.mark.slow
@pytest.mark.data
def test_smoke_trajectory_is_unchanged(data_dir, nb201_table, tmp_path):
    if not (data_dir / "cifar10").is_dir():
        pytest.skip(f"CIFAR-10 not found under {data_dir}")
    golden = json.loads(GOLDEN.read_text())
    now = trajectory(data_dir, tmp_path)
    if now["data_source_sha256"] != golden["data_source_sha256"]:
        pytest.skip("the golden trajectory was recorded with another CIFAR-10 source file")
    assert len(now["records"]) == len(golden["records"])
    for ours, recorded in zip(now["records"], golden["records"]):
        for key in RECORDED:
            if isinstance(recorded[key], (float, list)):
                assert _flatten(ours[key]) == pytest.approx(_flatten(recorded[key]), rel=TOLERANCE, abs=TOLERANCE), \
                    (recorded["epoch"], key)
            else:
                assert ours[key] == recorded[key], (recorded["epoch"], key)


if __name__ == "__main__":
    if sys.argv[1:] != ["--regenerate"]:
        sys.exit("usage: python tests/test_golden.py --regenerate   (rewrites the golden trajectory; review the diff)")
    import tempfile

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from foundation.paths import resolve_data_dir

    with tempfile.TemporaryDirectory() as tmp:
        result = trajectory(resolve_data_dir(None), Path(tmp))
    GOLDEN.parent.mkdir(exist_ok=True)
    GOLDEN.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    print(f"wrote {GOLDEN}")
