#!/usr/bin/env bash
# One lease on a GPU (device tool) for issue 16, in this order: the batched step captured as a CUDA graph checked
# against the eager one (.ci/gpu_seed_batch.py); `harness bench --seeds 4` (4 seeds batched vs sequential vs
# xautodl, graphed and eager); then 4-seed paper-protocol DARTS and SD-DARTS runs, batched, with graphs where the
# searcher allows, for the time left (they resume: re-run the script with the runs restored to /tmp/runs).
# Run from the repository root with .devdata/ (a copy of the data dir: NB201 table, split, CIFAR-10) and .whl/
# (the xautodl wheel) carried, e.g. run(command="BUDGET_S=540 bash .ci/gpu_seed_batch.sh", carry=[".devdata",
# ".whl"], timeout_s=600). Everything comes back under $OUT; runs.tgz holds the run folders without checkpoints,
# to be unpacked under results/reference/.
set -u
BUDGET_S=${BUDGET_S:-540}; OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
start=$(date +%s); left() { echo $(( BUDGET_S - ($(date +%s) - start) )); }
export PYTHONUNBUFFERED=1 HARNESS_DATA=$PWD/.devdata HARNESS_CACHE=/tmp/harness-cache
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl 2>/dev/null
export PYTHONPATH=/tmp/site:$PWD
H="python3 -m harness.cli"
{ nvidia-smi -L; python3 -c "import torch; print('torch', torch.__version__)"; } > "$OUT/env.txt" 2>&1
timeout 150 python3 .ci/gpu_seed_batch.py > "$OUT/graphs_check.json" 2> "$OUT/graphs_check.err"
echo "check rc=$?" >> "$OUT/env.txt"
B="$H bench --device cuda --steps 10 --rounds 3 --out /tmp/benchres --json --seeds 4"
timeout 120 $B --set cuda_graphs=true >> "$OUT/bench.jsonl" 2>> "$OUT/bench.err"
timeout 90 $B --no-reference >> "$OUT/bench.jsonl" 2>> "$OUT/bench.err"
run_s=$(( $(left) - 20 )); echo "runs get ${run_s}s" >> "$OUT/env.txt"
for searcher in darts sd_darts; do
  [ "$run_s" -gt 30 ] && timeout $(( run_s / 2 )) $H run --searcher $searcher --preset paper --device cuda --seeds 4 \
    --seed-batch 4 --set cuda_graphs=true --out /tmp/runs > "$OUT/run-$searcher.log" 2>&1
done
tar czf "$OUT/runs.tgz" --exclude='checkpoint-*.pt' --exclude='checkpoints.json' -C /tmp runs 2>/dev/null
cat "$OUT/env.txt" "$OUT/graphs_check.json"; tail -c 1500 "$OUT/graphs_check.err"; tail -c 1000 "$OUT/bench.err"
python3 -c "
import json
for line in open('$OUT/bench.jsonl'):
    d = json.loads(line)
    print({k: d.get(k) for k in ('cuda_graphs', 'ours_s_per_step', 'reference_s_per_step', 'seeds_batched_s_per_step',
                                'seeds_sequential_s_per_step', 'batching_speedup', 'seeds_per_hour_batched',
                                'reference_seeds_per_hour', 'batched_vs_reference_throughput', 'peak_memory_mb_by_step')})"
tail -n 4 "$OUT"/run-*.log
