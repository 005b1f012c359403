#!/usr/bin/env bash
# Scaling of data-parallel training over MPI ranks and threads (issue #12): two-body Allen–Cahn,
# d = 10^6, B = 100 weight sharing, R = 16, 100 points per step. Prints one table row per
# placement; it/s is training time only (summary.json), after the run's own first steps.
# Usage: cargo build --release --features mpi && bash scripts/mpi_scaling.sh [steps]
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${1:-30}
BIN=./target/release/stde
OUT=${OUT:-/tmp/stde-mpi-scaling}
rm -rf "$OUT" && mkdir -p "$OUT"
ARGS=(train --equation allen-cahn-two-body --dim 1000000 --block-size 100 --rand-batch 16
      --steps "$STEPS" --eval-every "$STEPS" --test-points 100 --quiet)
MPI=(mpirun --allow-run-as-root --oversubscribe)
run() { # name, threads per rank, launcher...
  local name=$1 threads=$2; shift 2
  /usr/bin/time -f "%e" -o "$OUT/$name.time" "$@" $BIN "${ARGS[@]}" --threads "$threads" --out "$OUT/$name" > "$OUT/$name.log" 2>&1
  python3 - "$OUT/$name" "$name" "$(cat "$OUT/$name.time")" <<'PY'
import json, sys
s = json.load(open(sys.argv[1] + "/summary.json"))
t = s["time_s"]; n = s["steps"]
print(f"| {sys.argv[2]} | {s['it_per_s']:.3f} | {1/s['it_per_s']:.3f} | "
      f"{t['sample']/n:.3f} | {t['source']/n:.3f} | {t['network']/n:.3f} | {t['update']/n:.3f} | "
      f"{t.get('reduce', 0)/n:.4f} | {s['peak_rss_mb']:.0f} | {s['best_rel_l2']:.3e} | {sys.argv[3]} |")
PY
}
echo "| placement | it/s | s/step | sample | source | network | Adam | reduce | rank-0 peak RSS MiB | rel-L2 | wall s |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
run "1 process x 1 thread" 1
run "1 process x 2 threads" 2
run "2 ranks x 1 thread, one per core" 1 "${MPI[@]}" -n 2 --bind-to core
run "2 ranks x 1 thread, unbound" 1 "${MPI[@]}" -n 2 --bind-to none
run "2 ranks x 2 threads, unbound (oversubscribed)" 2 "${MPI[@]}" -n 2 --bind-to none
