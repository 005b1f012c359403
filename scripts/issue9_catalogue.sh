#!/usr/bin/env bash
# The §9 rows of docs/RESULTS.md: each reference-catalogue equation at d = 100, 10K steps, seed 0
# (defaults of `stde train --equation NAME`), then the Table 11 speed rows (1000 steps each, all
# cores: base network, depth 8, width 512).
#
#   bash scripts/issue9_catalogue.sh [threads-for-training-runs]
set -euo pipefail
threads=${1:-0}
bin=$(mktemp -d)/stde
if [[ -n "${STDE_BIN:-}" ]]; then cp "$STDE_BIN" "$bin"; else cargo build --release --quiet; cp target/release/stde "$bin"; fi
run() { local out=$1; shift; [[ -f "$out/summary.json" ]] && return 0; "$bin" train --quiet --out "$out" "$@" > /dev/null; }
for eq in kdv-2d kp-2d gkdv-1d; do
  run "runs/issue9-speed/$eq-base" --equation "$eq" --steps 1000 --eval-every 1000 --test-points 1000
  run "runs/issue9-speed/$eq-depth8" --equation "$eq" --depth 8 --steps 1000 --eval-every 1000 --test-points 1000
  run "runs/issue9-speed/$eq-width512" --equation "$eq" --width 512 --steps 1000 --eval-every 1000 --test-points 1000
done
for eq in poisson-houman hjb-lin hjb-lqg wave black-scholes-barenblatt poisson-cube; do
  run "runs/issue9-catalogue/$eq-d100" --equation "$eq" --dim 100 --threads "$threads"
done
for f in runs/issue9-speed/*/summary.json; do
  python3 -c "import json,sys; s=json.load(open('$f')); print('$f'.split('/')[2], round(s['it_per_s'],1))"
done
python3 scripts/summarise.py runs/issue9-catalogue/*/
