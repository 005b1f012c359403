#!/bin/bash
# Short training runs covering the trainer's paths (f32 and f64, collapsed and per-direction,
# weight sharing, clipping, parabolic, high-order, gPINN, d = 100 … 10⁶), each printed with the
# md5 of its metrics (steps, losses, errors; not the timings). Run it with two builds and diff the
# outputs to see whether a change kept every run's bits:
#   bash scripts/metrics_md5.sh ./target/release/stde /tmp/md5-new > new.txt
# Takes about two minutes on two cores.
B=${1:?usage: metrics_md5.sh STDE_BINARY OUTDIR}
O=${2:?usage: metrics_md5.sh STDE_BINARY OUTDIR}
mkdir -p "$O"
run() {
    name=$1
    shift
    "$B" train --quiet --overwrite --eval-every "${EV:-100}" --test-points "${TP:-200}" --out "$O/$name" "$@" >/dev/null 2>&1 || echo "FAIL $name"
    echo "$name $(cut -d, -f1-5,7 "$O/$name/metrics.csv" | md5sum | cut -c1-12)"
}
run d100 --dim 100 --steps 300
run d3000 --dim 3000 --steps 200
run d10k --dim 10000 --steps 100
run d10k1t --dim 10000 --steps 100 --threads 1
run w100_1000 --dim 1000 --width 100 --steps 200
run w100_5000 --dim 5000 --width 100 --steps 100
run clip --dim 1000 --steps 200 --clip-grad-norm 1
run f64 --dim 2000 --steps 100 --f64
run heat --equation semilinear-heat --dim 10 --width 64 --steps 200
run kdv --equation kdv-2d --steps 100
run gpinn --gpinn-weight 0.1 --dim 20 --steps 200
run unbiased --unbiased --dim 100 --steps 200
run dense --method dense --equation poisson-two-body --dim 30 --steps 100
run block --block-size 10 --dim 10000 --steps 100
run batch40 --batch 40 --dim 2000 --steps 100
EV=10 TP=20 run d1m --dim 1000000 --block-size 100 --steps 20
EV=10 TP=20 run d100k --dim 100000 --steps 30
