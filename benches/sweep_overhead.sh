#!/usr/bin/env bash
# Wall time of the same 4-task sweep on the local backend and on Slurm (needs `sbatch`: start a
# single-node cluster with `sudo .ci/slurm-up`), both running 2 tasks at once, and the scheduling
# latency per task read from the sweep's own records (submission → the task's first record).
#
#   benches/sweep_overhead.sh [REPS] [QUANTDECK_BINARY]
set -euo pipefail
reps=${1:-3}
bin=${2:-$(dirname "$0")/../target/debug/quantdeck}
bin=$(realpath "$bin")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat > "$work/small.toml" <<'TOML'
[universe]
equities = ["SYNA", "SYNB"]
crypto = []
[data]
end = "2024-03-28"
[features]
window = 8
[ppo]
device = "cpu"
n_envs = 8
n_steps = 32
minibatch = 64
epochs = 1
validation_interval = 5
hidden_dims = [16]
total_timesteps = 2048
[gating]
min_trades = 1
min_days = 2
[live]
confidence_threshold = 0.0
[walk_forward]
folds = 2
[slurm]
cpus_per_task = 1
TOML
qd() { "$bin" --home "$work/home" --config "$work/small.toml" "$@"; }
qd fetch SYNA SYNB -q >/dev/null
latency() { # mean seconds from the submission to each task's first record
  python3 - "$1" <<'PY'
import json, sys, glob, os, datetime as dt
d = sys.argv[1]
plan = json.load(open(os.path.join(d, "sweep.json")))
t0 = dt.datetime.fromisoformat(plan["submissions"][0]["at"].replace("Z", "+00:00")[:26] + "+00:00")
lat, run, end = [], [], []
for f in glob.glob(os.path.join(d, "tasks", "*", "log.jsonl")):
    recs = [json.loads(l) for l in open(f)]
    ts = [dt.datetime.fromisoformat(r["at"][:26] + "+00:00") for r in recs]
    lat.append((ts[0] - t0).total_seconds()); run.append((ts[-1] - ts[0]).total_seconds())
    end.append((ts[-1] - t0).total_seconds())
print(f"submission → last task's end {max(end):.2f} s; submission → a task's first record: mean {sum(lat)/len(lat):.2f} s, max {max(lat):.2f} s; a task's own run time: mean {sum(run)/len(run):.2f} s")
PY
}
for backend in local slurm; do
  for r in $(seq 1 "$reps"); do
    t0=$(date +%s.%N)
    qd sweep SYNA SYNB --seeds 2 --no-fetch --backend "$backend" --workers 2 --wait -q >/dev/null
    t1=$(date +%s.%N)
    dir=$(ls -d "$work"/home/runs/sweep-* | tail -n1)
    printf '%s rep %s: %.2f s wall; ' "$backend" "$r" "$(echo "$t1 - $t0" | bc)"
    latency "$dir"
    sleep 1
  done
done
