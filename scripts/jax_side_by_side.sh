#!/usr/bin/env bash
# Issue #10's side-by-side on one machine: the JAX baseline (scripts/jax_baseline.py, our JAX
# program of the same step) and `stde bench step`, one after the other, each row in its own
# process: two-body Allen–Cahn, sparse STDE R = 16, 100 points, 4 × 128 tanh, f32; and the exact
# Laplacian at d = 100 (folx forward Laplacian against `--method exact`).
#
#   bash scripts/jax_side_by_side.sh [dims]      # default "100 1000 10000 100000"
#
# Needs Python 3 with jax, optax and folx; by default a virtual environment in $JAXENV
# (/tmp/jaxenv), made on first use (a download from PyPI). Prints a markdown table; the JSON rows
# go to $OUT (default /tmp/side-by-side). Run it on an otherwise idle machine.
set -euo pipefail
cd "$(dirname "$0")/.."
dims=${1:-100 1000 10000 100000}
JAXENV=${JAXENV:-/tmp/jaxenv}
OUT=${OUT:-/tmp/side-by-side}
mkdir -p "$OUT"
if [[ ! -x "$JAXENV/bin/python" ]]; then
  python3 -m venv "$JAXENV"
  "$JAXENV/bin/pip" install --quiet jax==0.10.2 optax==0.2.8 folx
fi
py="$JAXENV/bin/python"
"$py" scripts/jax_baseline.py --check > /dev/null
cargo build --release --quiet
stde=target/release/stde
# timed steps per row (the JAX step at 100K takes about a second)
steps_for() { case $1 in 100|1000) echo 200 ;; 10000) echo 60 ;; *) echo 20 ;; esac; }
run_row() { # method dim
  local m=$1 d=$2 n
  n=$(steps_for "$d")
  [[ $m == exact ]] && n=50
  "$py" scripts/jax_baseline.py --dim "$d" --method "$m" --steps "$n" --json > "$OUT/jax-$m-$d.json"
  "$stde" bench step --dim "$d" --method "$m" --steps "$n" --json > "$OUT/stde-$m-$d.json"
}
for d in $dims; do run_row sparse "$d"; done
run_row exact 100
python3 - "$OUT" $dims <<'EOF'
import json, platform, sys
out, dims = sys.argv[1], sys.argv[2:]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
print(f"Machine: {cpu}. Median step, steady state; peak RSS of each process.\n")
print("| d | method | JAX steps/s | stde steps/s | ratio | JAX peak RSS MiB | stde peak RSS MiB |")
print("|---|---|---|---|---|---|---|")
for m, d in [("sparse", d) for d in dims] + [("exact", "100")]:
    j = json.load(open(f"{out}/jax-{m}-{d}.json"))
    s = json.load(open(f"{out}/stde-{m}-{d}.json"))
    name = "sparse R = 16" if m == "sparse" else "exact Laplacian (folx / stde)"
    print(f"| {d} | {name} | {j['steps_per_s']:.2f} | {s['steps_per_s']:.2f} | {s['steps_per_s'] / j['steps_per_s']:.1f}× | {j['peak_rss_mib']:.0f} | {s['peak_rss_mb']:.0f} |")
EOF
