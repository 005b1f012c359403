#!/usr/bin/env bash
# Issue #30's measurements: the gradient-term equations' step speed at d = 1K … 100K
# (`stde bench step`), a PDE file with a gradient nonlinearity against the same file without it
# at d = 2000, and the accuracy of hjb-lin / hjb-lqg (final and best rel-L2, seeds 0–2).
# Usage: bash scripts/gradient_terms.sh [speed|pde|accuracy|jax] (default: the first three; `jax`
# runs scripts/jax_hjb.py and `stde bench step --equation hjb-lin` one after the other at
# d = 1K, 10K, 100K, with jax, optax from $JAXENV as for scripts/jax_side_by_side.sh). Writes
# nothing in the repository; run folders go to ${OUT:-/tmp/gradient-terms}.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
stde=./target/release/stde
out=${OUT:-/tmp/gradient-terms}
mkdir -p "$out"
what=${1:-all}
lscpu | grep 'Model name' || true

if [[ $what == jax ]]; then
  JAXENV=${JAXENV:-/tmp/jaxenv}
  if [[ ! -x "$JAXENV/bin/python" ]]; then
    python3 -m venv "$JAXENV"
    "$JAXENV/bin/pip" install --quiet jax==0.10.2 optax==0.2.8 folx
  fi
  for d in 1000 10000 100000; do
    steps=50; [[ $d == 100000 ]] && steps=10
    "$JAXENV/bin/python" scripts/jax_hjb.py --dim $d --steps $steps
    $stde bench step --equation hjb-lin --dim $d --steps $steps --warmup 3 | sed -n 1,3p
    $stde bench step --equation hjb-lin --dim $d --method dense --steps $steps --warmup 3 | sed -n 1,3p
  done
  exit 0
fi

if [[ $what == all || $what == speed ]]; then
  for eq in hjb-lin hjb-lqg black-scholes-barenblatt; do
    for d in 1000 10000 100000; do
      $stde bench step --equation $eq --dim $d --steps 20 --warmup 3 | sed -n 1,3p
    done
  done
fi

if [[ $what == all || $what == pde ]]; then
  for term in with without; do
    nonlinear='nonlinear = "d*sum(i, 0, d-1, d[i]^2)/1000"'
    [[ $term == without ]] && nonlinear=''
    cat > "$out/pde-$term.toml" <<TOML
domain = "ball"
ansatz = "ball"
[[residual]]
operator = "laplacian"
$nonlinear
source = "1"
TOML
    $stde train --pde "$out/pde-$term.toml" --dim 2000 --steps 300 --eval-every 100000 \
      --test-points 10 --quiet --out "$out/pde-$term" --overwrite
  done
fi

if [[ $what == all || $what == accuracy ]]; then
  for eq in hjb-lin hjb-lqg; do
    for d in 100 1000; do
      for seed in 0 1 2; do
        $stde train --equation $eq --dim $d --seed $seed --quiet --out "$out/$eq-d$d-s$seed" --overwrite
      done
    done
  done
fi
