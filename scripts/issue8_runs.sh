#!/usr/bin/env bash
# The runs behind the parabolic (Tables 7-9) and gPINN (Table 12) rows of docs/RESULTS.md, one
# after another with all cores (so each run's it/s is that of a run on an idle machine).
#
#   bash scripts/issue8_runs.sh [parabolic-steps] [gpinn-steps] [seeds]
#
# Defaults: 2000 parabolic steps (the paper: 10000), 20000 gPINN steps (the paper's), seed 0.
# Folders: runs/issue8/...; summary: python3 scripts/summarise.py runs/issue8/*/
set -euo pipefail
psteps=${1:-2000}
gsteps=${2:-20000}
seeds=${3:-0}
bin=$(mktemp -d)/stde
if [[ -n "${STDE_BIN:-}" ]]; then cp "$STDE_BIN" "$bin"; else cargo build --release --quiet; cp target/release/stde "$bin"; fi
run() { local out=$1; shift; [[ -f "$out/summary.json" ]] && return 0; "$bin" train --quiet --out "$out" "$@" > /dev/null; }
for s in $seeds; do
  for d in 10 100; do
    for eq in semilinear-heat allen-cahn-parabolic sine-gordon-parabolic; do
      run "runs/issue8/$eq-d$d-s$s" --equation "$eq" --dim "$d" --steps "$psteps" --seed "$s"
    done
  done
  for eq in allen-cahn-two-body sine-gordon-two-body; do
    run "runs/issue8/$eq-gpinn-d100-s$s" --equation "$eq" --dim 100 --gpinn-weight 0.1 --steps "$gsteps" --test-points 20000 --seed "$s"
    run "runs/issue8/$eq-none-d100-s$s" --equation "$eq" --dim 100 --steps "$gsteps" --test-points 20000 --seed "$s"
  done
  for eq in semilinear-heat allen-cahn-parabolic sine-gordon-parabolic; do
    run "runs/issue8/$eq-d1000-s$s" --equation "$eq" --dim 1000 --steps "$psteps" --seed "$s"
  done
  for eq in allen-cahn-two-body sine-gordon-two-body; do
    run "runs/issue8/$eq-gpinn-d1000-s$s" --equation "$eq" --dim 1000 --gpinn-weight 0.1 --steps "$gsteps" --test-points 20000 --seed "$s"
    run "runs/issue8/$eq-none-d1000-s$s" --equation "$eq" --dim 1000 --steps "$gsteps" --test-points 20000 --seed "$s"
  done
done
python3 scripts/summarise.py runs/issue8/*/
