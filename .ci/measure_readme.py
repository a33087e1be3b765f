"""Measure, on this machine, the times docs/timings.md states: the NB201 table load, a smoke and a quick search
(the first estimate the run prints against the time it took), the smoke16 sweep, and the test suites.

Usage: python .ci/measure_readme.py [--quick] [--sweep] [--tests] > timings.json
Each measurement is one JSON object on stdout with the machine it ran on; docs/timings.md quotes them with that
machine and the date.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ESTIMATE = re.compile(r"about ([0-9.]+) (s|min|h) for (\d+) epoch")
UNITS = {"s": 1, "min": 60, "h": 3600}


def machine() -> dict:
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")),
                 platform.processor() or platform.machine())
    memory = next((int(line.split()[1]) // 2**20 for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal")), None) if Path("/proc/meminfo").exists() else None
    return {"cpu": model, "cores": os.cpu_count(), "memory_gib": memory, "python": platform.python_version()}


def timed(command: list[str], env: dict | None = None) -> tuple[float, str]:
    started = time.perf_counter()
    proc = subprocess.run(command, cwd=REPO, env={**os.environ, **(env or {})}, capture_output=True, text=True)
    if proc.returncode not in (0,):
        sys.exit(f"{' '.join(command)} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return time.perf_counter() - started, proc.stderr


def search(preset: str, out: Path) -> dict:
    """A search's first printed estimate (search epochs) against the time the search took (epoch lines)."""
    seconds, log = timed([sys.executable, "-m", "harness.cli", "run", "--preset", preset, "--device", "cpu",
                          "--out", str(out / preset)])
    match = ESTIMATE.search(log)
    epochs = [tuple(map(float, m)) for m in re.findall(r" ([0-9.]+)s\+([0-9.]+)s (?:eta|done)", log)]
    search_s, diagnostics_s = sum(e[0] for e in epochs), sum(e[1] for e in epochs)
    estimate = float(match.group(1)) * UNITS[match.group(2)] if match else None
    return {"what": f"{preset} search (darts, nb201, seed 0)", "command_seconds": round(seconds, 1),
            "epochs_seconds": round(search_s, 1), "diagnostics_seconds": round(diagnostics_s, 1),
            "first_estimate_seconds": estimate,
            "estimate_error": round(estimate / (search_s + diagnostics_s) - 1, 3) if estimate and search_s else None}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="also the quick preset (minutes)")
    parser.add_argument("--sweep", action="store_true", help="also sweeps/smoke16.yaml on the local pool")
    parser.add_argument("--tests", action="store_true", help="also the test suites (minutes)")
    args = parser.parse_args()
    where = machine()

    def emit(result: dict) -> None:
        print(json.dumps({**result, "machine": where, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}), flush=True)

    code = ("import time, sys; from foundation.paths import resolve_data_dir; from benchmarks.nb201.table import "
            "load_table; t = time.perf_counter(); load_table(resolve_data_dir(None)); print(time.perf_counter() - t)")
    emit({"what": "NB201 table load (15,625 cells, fresh process)",
          "seconds": round(float(subprocess.check_output([sys.executable, "-c", code], cwd=REPO, text=True)), 2)})
    with tempfile.TemporaryDirectory() as tmp:
        emit(search("smoke", Path(tmp)))
        if args.quick:
            emit(search("quick", Path(tmp)))
        if args.sweep:
            seconds, _ = timed([sys.executable, "-m", "harness.cli", "sweep", "sweeps/smoke16.yaml", "--device", "cpu",
                                "--out", str(Path(tmp) / "sweep")])
            emit({"what": "sweeps/smoke16.yaml, local pool", "seconds": round(seconds, 1)})
    if args.tests:
        for label, extra in (("make test-fast", ["-m", "not slow"]), ("make test", [])):
            seconds, _ = timed([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *extra])
            emit({"what": label, "seconds": round(seconds, 1)})


if __name__ == "__main__":
    main()
