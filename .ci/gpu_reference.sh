#!/usr/bin/env bash
# One lease on a GPU machine (device tool): smoke check on CUDA, `harness bench` against xautodl, then
# paper-preset DARTS seeds 0-3 run concurrently until the time budget ends. Everything comes back under $OUT.
# Needs in the working tree: .devdata/ (copy of the data dir) and .whl/ (the xautodl wheel), both carried.
# Variables: BUDGET_S (seconds for the whole script), DEVICE, PRESET, SEEDS.
set -u
BUDGET_S=${BUDGET_S:-500}; DEVICE=${DEVICE:-cuda}; PRESET=${PRESET:-paper}; SEEDS=${SEEDS:-"0 1 2 3"}
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
start=$(date +%s)
left() { echo $(( BUDGET_S - ($(date +%s) - start) )); }
export PYTHONUNBUFFERED=1 HARNESS_DATA=$PWD/.devdata HARNESS_CACHE=/tmp/harness-cache
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD
H="python3 -m harness.cli"
{ nvidia-smi -L; python3 -c "import torch; print('torch', torch.__version__)"; } > "$OUT/env.txt" 2>&1
timeout 90 $H run --preset smoke --device "$DEVICE" --out /tmp/smoke > "$OUT/smoke.log" 2>&1; echo "smoke rc=$?" >> "$OUT/smoke.log"
for spec in "fp32:" "tf32:--no-reference" "bf16:--no-reference"; do
  prec=${spec%%:*}; extra=${spec#*:}
  timeout 90 $H bench --device "$DEVICE" --preset "$PRESET" --set precision=$prec --steps 20 --rounds 3 $extra \
    --out /tmp/benchres --json >> "$OUT/bench.jsonl" 2>> "$OUT/bench.err"
done
run_s=$(( $(left) - 25 ))
echo "runs get ${run_s}s" >> "$OUT/env.txt"
[ "$run_s" -gt 20 ] && for s in $SEEDS; do
  timeout "$run_s" $H run --preset "$PRESET" --device "$DEVICE" --seed "$s" --out /tmp/runs > "$OUT/seed-$s.log" 2>&1 &
done
wait
tar czf "$OUT/runs.tgz" --exclude='checkpoint-*.pt' -C /tmp runs
tail -n 3 "$OUT"/seed-*.log; cat "$OUT/bench.jsonl"; cat "$OUT/smoke.log" | tail -3
