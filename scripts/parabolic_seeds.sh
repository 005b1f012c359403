#!/usr/bin/env bash
# Tables 7–9 on the paper's protocol (issue #8): semilinear heat, Allen–Cahn and Sine–Gordon
# (backward time, T = 0.3, width 1024, sparse R = 10, 10 000 steps, reference schedule),
# d = 10, 100, 1000 (row by row), run seeds 0–2, one run after the other with all cores.
#
#   bash scripts/parabolic_seeds.sh [steps] [seeds] [dims]      # defaults: 10000 "0 1 2" "10 100 1000"
#
# Interrupted runs are resumed from their last checkpoint (saved every 100 steps); finished ones
# (summary.json present here or in docs/runs/parabolic-seeds/, where each finished run's files but
# the checkpoint are copied) are skipped. Folders: runs/parabolic-seeds/<equation>-d<d>-s<seed>;
# one line per finished run is printed, and `python3 scripts/summarise.py runs/parabolic-seeds/*/`
# tabulates them. The binary is copied first, so rebuilding meanwhile does not disturb the runs.
# A run that exits with an error (e.g. a non-finite loss) leaves a FAILED file (exit status and
# message) beside its config and metrics in docs/runs/parabolic-seeds/ and is not retried.
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-10000}
seeds=${2:-0 1 2}
dims=${3:-10 100 1000}
OUT=${OUT:-runs/parabolic-seeds}
mkdir -p "$OUT"
bin=$(mktemp -d)/stde
cargo build --release --quiet
cp target/release/stde "$bin"
# whether a run folder holds a finished run (a summary not marked interrupted)
finished() {
  [[ -f "$1/summary.json" ]] && python3 -c "import json,sys; sys.exit(json.load(open('$1/summary.json'))['interrupted'])"
}
for d in $dims; do
  for eq in semilinear-heat allen-cahn-parabolic sine-gordon-parabolic; do
    for s in $seeds; do
      dir="$OUT/$eq-d$d-s$s"
      kept="docs/runs/parabolic-seeds/$eq-d$d-s$s"
      if [[ -f "$kept/summary.json" ]] || finished "$dir"; then continue; fi
      if [[ -f "$kept/FAILED" ]]; then continue; fi
      status=0
      if [[ -f "$dir/checkpoint.safetensors" ]]; then
        "$bin" train --quiet --resume "$dir" > /dev/null 2> "$dir.err" || status=$?
      else
        mkdir -p "$(dirname "$dir")"
        "$bin" train --quiet --overwrite --out "$dir" --equation "$eq" --dim "$d" --steps "$steps" \
          --seed "$s" > /dev/null 2> "$dir.err" || status=$?
      fi
      # interrupted (Ctrl-C: the run saved its checkpoint) or killed: stop here, resumable
      if (( status > 128 )); then exit "$status"; fi
      if [[ $status -ne 0 ]]; then
        # a run that fails (e.g. a non-finite loss) is recorded, with what it wrote, and skipped
        mkdir -p "$kept"
        cp "$dir"/{config.toml,metrics.csv} "$kept/" 2> /dev/null || true
        { echo "exit status $status"; cat "$dir.err"; } > "$kept/FAILED"
        echo "$eq d=$d seed=$s FAILED (exit $status): $(tail -1 "$dir.err")"
        continue
      fi
      # interrupted (Ctrl-C saves, writes an interrupted summary and exits 0): stop here, resumable
      if ! finished "$dir"; then echo "$eq d=$d seed=$s interrupted; rerun to resume"; exit 130; fi
      # the finished run's files without the checkpoint, kept in the repository
      mkdir -p "$kept" && cp "$dir"/{summary.json,config.toml,metrics.csv,curves.png} "$kept/"
      python3 -c "import json; s=json.load(open('$dir/summary.json')); print('$eq d=$d seed=$s best %.3e final %.3e it/s %.1f' % (s['best_rel_l1'], s['final_rel_l1'], s['it_per_s']))"
    done
  done
done
