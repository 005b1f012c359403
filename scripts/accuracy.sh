#!/usr/bin/env bash
# Regenerates the accuracy tables of docs/RESULTS.md from the current code: every run with the
# defaults of `stde list` unless a column says otherwise, final error first (the model the run
# leaves behind), best-over-evaluations second, mean over run seeds. Runs that already have a
# summary.json are not run again (delete the folder to redo one), so the script can be stopped
# and restarted. Usage:
#   bash scripts/accuracy.sh TABLE [SEEDS]      TABLE: elliptic | parabolic | gpinn | high-order |
#                                               gradient | million | all;  SEEDS default "0 1 2 3 4"
#   bash scripts/accuracy.sh table TABLE        prints TABLE's markdown from the runs made so far
# Run folders go to ${OUT:-runs/accuracy}/TABLE/; DIMS overrides a table's dimensions.
# Cost on 2 cores (AMD EPYC Zen 4): elliptic ≈ 2 min a run, parabolic ≈ 12 min a run at width
# 1024, million ≈ 30 min a run.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-runs/accuracy}
stde=./target/release/stde

table() { # TABLE: markdown rows "| equation | d | flags | runs | final mean (min–max) | best mean |"
  python3 - "$out/$1" <<'PY'
import json, sys, pathlib, statistics, re
root = pathlib.Path(sys.argv[1])
groups = {}
for s in sorted(root.glob("*/summary.json")):
    j = json.loads(s.read_text())
    key = re.sub(r"-s\d+$", "", s.parent.name)
    groups.setdefault(key, []).append(j)
print("| run | runs | final error, mean (min – max) | best, mean | it/s |")
print("|---|---|---|---|---|")
for key, runs in groups.items():
    point = runs[0].get("reference_value") is not None or runs[0]["final_value"] is not None
    f = [r["final_rel_l1"] if point else r["final_rel_l2"] for r in runs]
    b = [r["best_rel_l1"] if point else r["best_rel_l2"] for r in runs]
    it = statistics.mean(r["it_per_s"] for r in runs)
    kind = "rel-L1 u(0,0)" if point else "rel-L2"
    print(f"| {key} ({kind}) | {len(runs)} | {statistics.mean(f):.2e} ({min(f):.1e} – {max(f):.1e}) | {statistics.mean(b):.2e} | {it:.1f} |")
PY
}

run() { # TABLE NAME SEED FLAGS...
  local t=$1 name=$2 seed=$3
  shift 3
  local dir="$out/$t/$name-s$seed"
  [[ -f $dir/summary.json ]] && return 0
  $stde train "$@" --seed "$seed" --quiet --overwrite --out "$dir" > /dev/null
  python3 -c "import json; s=json.load(open('$dir/summary.json')); print('$name s$seed', 'final rel-L2 %.3e rel-L1 %.3e | best %.3e %.3e | %.1f it/s' % (s['final_rel_l2'], s['final_rel_l1'], s['best_rel_l2'], s['best_rel_l1'], s['it_per_s']))"
}

if [[ ${1:-} == table ]]; then
  table "$2"
  exit 0
fi
what=${1:?usage: bash scripts/accuracy.sh TABLE [SEEDS] | table TABLE}
seeds=${2:-0 1 2 3 4}
cargo build --release --quiet
lscpu | grep 'Model name' || true

for t in elliptic parabolic gpinn high-order gradient million; do
  [[ $what == all || $what == "$t" ]] || continue
  for seed in $seeds; do
    case $t in
      elliptic) # Tables 1–2 shapes: two-body problems, problem seed 0
        for eq in poisson-two-body allen-cahn-two-body sine-gordon-two-body; do
          for d in ${DIMS:-100 1000 10000}; do
            run $t "$eq-d$d" "$seed" --equation "$eq" --dim "$d"
          done
        done ;;
      parabolic) # Tables 7–9: u(0, 0) against the published reference
        for eq in semilinear-heat allen-cahn-parabolic sine-gordon-parabolic; do
          for d in ${DIMS:-10 100 1000}; do
            run $t "$eq-d$d" "$seed" --equation "$eq" --dim "$d"
          done
        done ;;
      gpinn) # Table 12: none / zipped / consistent, 20 000 steps
        for eq in allen-cahn-two-body sine-gordon-two-body; do
          for d in ${DIMS:-100 1000}; do
            run $t "$eq-d$d-none" "$seed" --equation "$eq" --dim "$d" --steps 20000 --test-points 20000
            for form in zipped consistent; do
              run $t "$eq-d$d-$form" "$seed" --equation "$eq" --dim "$d" --steps 20000 --test-points 20000 \
                --gpinn-weight 0.1 --gpinn-form $form
            done
          done
        done ;;
      high-order) # Table 11 and the catalogue's high-order problems (exact operators)
        for eq in kdv-2d kp-2d kp-2d-soliton gkdv-1d-soliton; do
          run $t "$eq" "$seed" --equation "$eq"
        done ;;
      gradient) # issue #30: gradient terms
        for eq in hjb-lin hjb-lqg black-scholes-barenblatt; do
          for d in ${DIMS:-100 1000}; do
            run $t "$eq-d$d" "$seed" --equation "$eq" --dim "$d"
          done
        done ;;
      million) # d = 10⁶ two-body Allen–Cahn, B = 100: the problem seed is drawn with the run seed
        run $t "allen-cahn-two-body-d1000000-B100-p$seed" "$seed" --equation allen-cahn-two-body \
          --dim 1000000 --block-size 100 --problem-seed "$seed" ;;
    esac
  done
  table "$t"
done
