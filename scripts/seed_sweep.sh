#!/usr/bin/env bash
# Runs the paper-protocol benchmark rows for several seeds (each seed also draws its own problem
# instance, as the paper's unseeded runs did) and prints the mean ± std table.
#
#   bash scripts/seed_sweep.sh "100 1000" "0 1 2 3 4" [equations...]
#
# Two runs go side by side with one thread each (small networks scale poorly across threads), so
# the it/s in the table are not the speeds of single runs on an idle machine.
set -euo pipefail
dims=${1:-"100 1000"}
seeds=${2:-"0 1 2 3 4"}
if (( $# >= 2 )); then shift 2; else shift $#; fi
equations=${*:-"allen-cahn-two-body poisson-two-body sine-gordon-two-body allen-cahn-three-body"}
# a private copy, so that rebuilding during the sweep does not change the binary mid-way
# (STDE_BIN: use that binary instead of building one)
bin=$(mktemp -d)/stde
if [[ -n "${STDE_BIN:-}" ]]; then
  cp "$STDE_BIN" "$bin"
else
  cargo build --release --quiet
  cp target/release/stde "$bin"
fi
jobs=()
for d in $dims; do
  for eq in $equations; do
    for s in $seeds; do
      out="runs/sweep/$eq-d$d-s$s"
      [[ -f "$out/summary.json" ]] && continue
      jobs+=("$bin train --equation $eq --dim $d --method sparse --rand-batch 16 --steps 10000 \
        --eval-every 1000 --test-points 20000 --seed $s --problem-seed $s --threads 1 --quiet --out $out")
    done
  done
done
printf '%s\n' "${jobs[@]}" | xargs -P 2 -I{} sh -c '{} > /dev/null'
python3 scripts/summarise.py runs/sweep/*/
