#!/usr/bin/env bash
# Table 12 with several run seeds (issue #8): two-body Allen–Cahn / Sine–Gordon at d = $DIM (100),
# gPINN weight 0.1 and none, 20 000 steps, 20 000 test points, problem seed 0, run seeds 0–2.
# Usage: [DIM=1000] bash scripts/gpinn_seeds.sh [equations...]; then python3 scripts/summarise.py-like reading
# of runs/gpinn-seeds/*/summary.json (this script prints one line per run).
set -euo pipefail
cd "$(dirname "$0")/.."
DIM=${DIM:-100}
OUT=${OUT:-runs/gpinn-seeds}
mkdir -p "$OUT"
for eq in ${@:-allen-cahn-two-body sine-gordon-two-body}; do
  for seed in 0 1 2; do
    for w in 0 0.1; do
      dir="$OUT/$eq-d$DIM-gpinn$w-s$seed"
      ./target/release/stde train --equation "$eq" --dim "$DIM" --gpinn-weight "$w" --steps 20000 \
        --test-points 20000 --seed "$seed" --quiet --overwrite --out "$dir" > /dev/null
      python3 -c "import json,sys; s=json.load(open('$dir/summary.json')); print('$eq', 'd=$DIM', 'gpinn=$w', 'seed=$seed', 'best %.3e final %.3e it/s %.1f' % (s['best_rel_l2'], s['final_rel_l2'], s['it_per_s']))"
    done
  done
done
