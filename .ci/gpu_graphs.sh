#!/usr/bin/env bash
# One lease on a GPU (device tool) for issue 8: the CUDA-graph step checked against the eager step, `harness
# bench` eager and graphed against xautodl, tf32/bf16, 4 seeds concurrent vs sequential, then a paper-preset
# DARTS run with graphs for the time left. Needs .devdata/ and .whl/ carried (see gpu_reference.sh).
set -u
BUDGET_S=${BUDGET_S:-420}; OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
start=$(date +%s); left() { echo $(( BUDGET_S - ($(date +%s) - start) )); }
export PYTHONUNBUFFERED=1 HARNESS_DATA=$PWD/.devdata HARNESS_CACHE=/tmp/harness-cache
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD
H="python3 -m harness.cli"
{ nvidia-smi -L; python3 -c "import torch; print('torch', torch.__version__)"; } > "$OUT/env.txt" 2>&1
timeout 120 python3 .ci/gpu_graphs.py > "$OUT/graphs_check.json" 2> "$OUT/graphs_check.err"; echo "check rc=$?" >> "$OUT/env.txt"
B="$H bench --device cuda --steps 20 --rounds 3 --out /tmp/benchres --json"
timeout 90 $B --set cuda_graphs=true >> "$OUT/bench.jsonl" 2>> "$OUT/bench.err"
timeout 60 $B --no-reference >> "$OUT/bench.jsonl" 2>> "$OUT/bench.err"
timeout 60 $B --no-reference --set cuda_graphs=true --set precision=tf32 >> "$OUT/bench.jsonl" 2>> "$OUT/bench.err"
timeout 60 $B --no-reference --set cuda_graphs=true --set precision=bf16 >> "$OUT/bench.jsonl" 2>> "$OUT/bench.err"
timeout 90 $H bench --device cuda --steps 10 --rounds 3 --out /tmp/benchres --json --no-reference --seeds 4 \
  --set cuda_graphs=true >> "$OUT/bench.jsonl" 2>> "$OUT/bench.err"
run_s=$(( $(left) - 15 )); echo "run gets ${run_s}s" >> "$OUT/env.txt"
[ "$run_s" -gt 30 ] && timeout "$run_s" $H run --preset paper --device cuda --seed 0 --set cuda_graphs=true \
  --set diagnostics_every=5 --out /tmp/runs > "$OUT/run.log" 2>&1
tar czf "$OUT/runs.tgz" --exclude='checkpoint-*.pt' -C /tmp runs 2>/dev/null
cat "$OUT/env.txt" "$OUT/graphs_check.json"; tail -c 1500 "$OUT/graphs_check.err"; tail -c 1500 "$OUT/bench.err"
python3 -c "
import json,sys
for l in open('$OUT/bench.jsonl'):
    d=json.loads(l); print({k:d.get(k) for k in ('precision','cuda_graphs','ours_s_per_step','reference_s_per_step','speedup_vs_reference','multi_seed_speedup','seeds_sequential_s_per_step','seeds_concurrent_s_per_step','estimated_search_s')})"
tail -n 6 "$OUT/run.log"
