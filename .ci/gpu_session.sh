#!/usr/bin/env bash
# The one GPU script: what a lent GPU machine runs, prepared and dry-run here first (tests/test_gpu_session.py), so
# that no device minute is lost to a typo. Within BUDGET_S seconds (default 540), in order:
#  (0) the harness imports and CUDA is there, else it says why in env.txt and stops (the lease's time left for a rerun);
#  (a) .ci/gpu_check.py: graphed vs eager for every capturable searcher, batched vs alone for every searcher;
#  (b) `harness bench` of DARTS at the paper preset, one seed and 4 seeds batched, graphed and eager, against
#      xautodl, with peak memory;
#  (c, d) sweeps/gpu_session.yaml, the complete experiments for the time left, several runs sharing the GPU
#      (the local sweep pool, --gpus-per-run 0.25): DARTS and SD-DARTS (voted) at the paper schedule, each with
#      the reduced preset's network (C=4: the anchor for the CPU protocol) and with the paper's (C=16), 4 seeds
#      batched, CUDA graphs on; stopped when the budget ends (a stopped run's records up to its last epoch come
#      back; its checkpoints do not: a later lease starts it afresh);
#  (e) runs.tgz: the run folders without checkpoints (provenance in each config.json / summary.json).
# Everything comes back under $OUT: env.txt (each part's exit status and time), check.jsonl, bench.jsonl,
# sweep.log, runs.tgz, summary.txt, check.err, bench.err: 8 files, the most a device call brings back (keep it so;
# pip's log goes into env.txt). A part that fails or runs out of time leaves the next ones to run.
#
# On the GPU machine, after `make gpu-prepare` here (.gpu/: data copy, wheels the machine lacks, the commit):
#   run(command="bash .ci/gpu_session.sh", carry=[".gpu"], timeout_s=600)
# Dry run on this CPU (what the test suite runs): DRY_RUN=1 OUT=/tmp/out RUNS=/tmp/runs bash .ci/gpu_session.sh
set -u
cd "$(dirname "$0")/.."
BUDGET_S=${BUDGET_S:-540}; OUT=${OUT:-/tmp/out}; RUNS=${RUNS:-/tmp/runs}; DRY_RUN=${DRY_RUN:-0}
mkdir -p "$OUT" "$RUNS"
start=$(date +%s)
left() { echo $(( BUDGET_S - ($(date +%s) - start) )); }
# run PART SECONDS COMMAND...: the command under a time limit (SIGTERM, then SIGKILL 15 s later), skipped when
# fewer than 10 s are left for it; its exit status and the time it ended go to env.txt
part() {
  local name=$1 seconds=$2; shift 2
  if [ "$seconds" -lt 10 ]; then echo "$name skipped (${seconds}s left)" >> "$OUT/env.txt"; return; fi
  timeout -k 15 "$seconds" "$@"
  echo "$name rc=$? at $(( BUDGET_S - $(left) ))s" >> "$OUT/env.txt"
}
export PYTHONUNBUFFERED=1
if [ "$DRY_RUN" = 1 ]; then  # this checkout's environment and data; smoke-sized everything
  DEVICE=${DEVICE:-cpu}; PY=${PYTHON:-python3}; PARALLEL=2  # DEVICE=cuda: the refusal without a GPU (a test)
  CHECK=(--preset smoke --seeds 2 --steps 1 --budget 5)  # the plumbing: tests/test_graphed.py checks each searcher
  BENCH=(--preset smoke --steps 2 --rounds 1 --seeds 2)
  SWEEP_FILE="$(dirname "$RUNS")/sweep-dry-run.yaml"
  { sed -e 's/^preset: paper/preset: smoke/' -e 's/^seeds: 4/seeds: 2/' -e 's/channels: 16/channels: 2/' \
      sweeps/gpu_session.yaml; echo "epochs: 1"; } > "$SWEEP_FILE"
else
  DEVICE=cuda; PY=python3; PARALLEL=4
  BENCH=(--steps 10 --rounds 3 --seeds 4)
  SWEEP_FILE=sweeps/gpu_session.yaml
  export HARNESS_DATA=$PWD/.gpu/data HARNESS_CACHE=/tmp/harness-cache
  HARNESS_GIT_COMMIT=$(cat .gpu/commit 2>/dev/null); export HARNESS_GIT_COMMIT
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .gpu/wheels/*.whl \
    > /tmp/pip.log 2>&1
  echo "pip rc=$?" >> /tmp/pip.log
  export PYTHONPATH=/tmp/site:$PWD
fi
H=("$PY" -m harness.cli)
{ date -u; nvidia-smi -L 2>&1; "$PY" -c "import torch; print('torch', torch.__version__)"; nproc
  echo "commit ${HARNESS_GIT_COMMIT:-$(git rev-parse HEAD 2>/dev/null)} dry_run=$DRY_RUN budget=${BUDGET_S}s"
  [ "$DRY_RUN" = 1 ] || cat /tmp/pip.log; } > "$OUT/env.txt" 2>&1
# without a usable device every part would fail one after the other: say why and leave the lease's time for a rerun
if ! "$PY" -c "import harness.cli, yaml, torch; assert '$DEVICE' == 'cpu' or torch.cuda.is_available(), 'no CUDA'" \
    >> "$OUT/env.txt" 2>&1; then
  echo "stopped: the environment cannot run the parts (above)" >> "$OUT/env.txt"; cat "$OUT/env.txt"; exit 1
fi

# (a) one JSON line per searcher as it finishes; no searcher starts in the last third of the part's time, so that the
# one under way finishes and the closing line (device, searchers not reached) is written
seconds=$(( $(left) / 3 ))
part "(a)" $seconds "$PY" .ci/gpu_check.py --device $DEVICE --budget $(( seconds * 2 / 3 )) "${CHECK[@]}" \
  > "$OUT/check.jsonl" 2> "$OUT/check.err"

# (b)
B=("${H[@]}" bench --device $DEVICE "${BENCH[@]}" --out "$(dirname "$RUNS")/bench" --json)
part "(b) graphed" $(( $(left) / 4 )) "${B[@]}" --set cuda_graphs=true >> "$OUT/bench.jsonl" 2>> "$OUT/bench.err"
part "(b) eager" $(( $(left) / 3 )) "${B[@]}" --no-reference >> "$OUT/bench.jsonl" 2>> "$OUT/bench.err"

# (c, d), leaving 30 s to pack
part "(c)" $(( $(left) - 30 )) "${H[@]}" sweep "$SWEEP_FILE" --out "$RUNS" --device $DEVICE --gpus-per-run 0.25 \
  --max-parallel $PARALLEL --seed-batch 4 > "$OUT/sweep.log" 2>&1

# (e)
tar czf "$OUT/runs.tgz" --exclude='checkpoint-*.pt' --exclude='checkpoints.json' --exclude='.lock' \
  -C "$(dirname "$RUNS")" "$(basename "$RUNS")"
"$PY" - "$OUT" > "$OUT/summary.txt" 2>&1 <<'EOF'
import json, sys
out = sys.argv[1]
def lines(name):
    try:
        return [json.loads(line) for line in open(f"{out}/{name}") if line.strip()]
    except (OSError, ValueError) as exc:
        print(f"{name}: {exc}")
        return []
for entry in lines("check.jsonl"):
    print({k: v for k, v in entry.items() if k not in ("capturable", "error")},
          "ERROR " + entry["error"].strip().splitlines()[-1] if "error" in entry else "")
for d in lines("bench.jsonl"):
    print({k: d.get(k) for k in ("cuda_graphs", "ours_s_per_step", "reference_s_per_step", "seeds_batched_s_per_step",
                                "seeds_sequential_s_per_step", "batching_speedup", "batched_vs_reference_throughput",
                                "peak_memory_mb", "peak_memory_mb_by_step")})
EOF
cat "$OUT/env.txt" "$OUT/summary.txt"; tail -n 6 "$OUT/sweep.log" 2>/dev/null
exit 0
