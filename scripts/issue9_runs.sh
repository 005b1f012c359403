#!/usr/bin/env bash
# The runs behind the high-order rows of docs/RESULTS.md (spec §8.2 protocol: 10K steps, N_r = 100,
# N_b = 100 with weight 20, 20 000 test points every 1000 steps), then the speed of the Table 11
# network shapes (depth 8, width 512; 1000 steps each).
#
#   bash scripts/issue9_runs.sh [seeds] [threads]
#
# Defaults: seeds "0 1 2", all cores. Folders: runs/issue9/...;
# summary: python3 scripts/summarise.py runs/issue9/*/
set -euo pipefail
seeds=${1:-0 1 2}
threads=${2:-0}
bin=$(mktemp -d)/stde
if [[ -n "${STDE_BIN:-}" ]]; then cp "$STDE_BIN" "$bin"; else cargo build --release --quiet; cp target/release/stde "$bin"; fi
run() { local out=$1; shift; [[ -f "$out/summary.json" ]] && return 0; "$bin" train --quiet --threads "$threads" --out "$out" "$@" > /dev/null; }
eqs="kdv-2d kp-2d gkdv-1d kdv-2d-soliton kp-2d-soliton gkdv-1d-soliton"
for s in $seeds; do
  for eq in $eqs; do
    run "runs/issue9/$eq-s$s" --equation "$eq" --seed "$s"
  done
done
for eq in kdv-2d kp-2d gkdv-1d; do
  run "runs/issue9/speed-$eq-depth8" --equation "$eq" --depth 8 --steps 1000
  run "runs/issue9/speed-$eq-width512" --equation "$eq" --width 512 --steps 1000
done
python3 scripts/summarise.py runs/issue9/*/
