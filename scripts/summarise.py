#!/usr/bin/env python3
"""Groups `stde train` run folders by (equation, dim, method, R, B, gPINN weight, steps) and prints
a Markdown table of best and final relative error as mean ± standard deviation (divisor n, the
paper's convention), the number of runs, and median it/s. The error is the relative L2 over the
test set, or for the parabolic problems the relative L1 of u(0, 0) against the reference value
("metric" says which; "no ref" where none is published). "loss jumps" counts the runs whose loss
rose above 1000 times its median over the run's second tenth (a divergence that the best-over-
evaluations metric hides), with the first step where it did, and "r" if the run recovered (its
last tenth's median loss within 10 times that median).

    python3 scripts/summarise.py runs/*/
"""
import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path


def loss_jump(metrics):
    """The first step whose loss exceeds 1000 × the median loss over the run's second tenth, with
    "r" appended if the last tenth's median is back within 10 ×; or None."""
    rows = [l.split(",") for l in metrics.read_text().splitlines()[1:]]
    losses = [(int(r[0]), float(r[1])) for r in rows if len(r) > 1]
    n = len(losses)
    if n < 20:
        return None
    base = statistics.median(v for _, v in losses[n // 10:n // 5])
    step = next((k for k, v in losses[n // 5:] if not v <= 1000 * base), None)
    if step is None:
        return None
    recovered = statistics.median(v for _, v in losses[-(n // 10):]) <= 10 * base
    return f"{step}{'r' if recovered else ''}"


def main(folders):
    groups = defaultdict(list)
    for folder in folders:
        path = Path(folder) / "summary.json"
        if not path.is_file():
            print(f"skipping {folder}: no summary.json", file=sys.stderr)
            continue
        s = json.loads(path.read_text())
        if s.get("interrupted"):
            print(f"skipping {folder}: interrupted run", file=sys.stderr)
            continue
        key = (s["equation"], s["dim"], s["method"], s["rand_batch"], s["block_size"],
               s.get("gpinn_weight", 0.0), s["steps"])
        # the level the error fluctuates at: median over the last 10 evaluations
        col = 4 if s.get("final_value") is not None else 3
        evals = [float(l.split(",")[col]) for l in (Path(folder) / "metrics.csv").read_text().splitlines()[1:]
                 if len(l.split(",")) > col and l.split(",")[col]]
        s["late_median"] = statistics.median(evals[-10:]) if evals else float("nan")
        s["jump_step"] = loss_jump(Path(folder) / "metrics.csv")
        groups[key].append(s)
    print("| equation | d | method | R | B | gPINN | steps | runs | metric | best (mean ± std) | final (mean ± std) | median of last 10 evaluations | loss jumps | it/s (median) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for key in sorted(groups):
        runs = groups[key]
        point = "final_value" in runs[0] and runs[0]["final_value"] is not None
        metric = "rel-L1 u(0,0)" if point else "rel-L2"
        field = "rel_l1" if point else "rel_l2"
        speed = statistics.median(r["it_per_s"] for r in runs)
        eq, d, method, r, b, gpinn, steps = key
        if point and runs[0].get("reference_value") is None:
            values = ", ".join(f"{x['final_value']:.5f}" for x in runs)
            best = final = f"no ref (u(0,0) = {values})"
            late = "–"
        else:
            fmt = lambda v: f"{statistics.fmean(v):.2e} ± {statistics.pstdev(v):.1e}"
            best = fmt([x[f"best_{field}"] for x in runs])
            final = fmt([x[f"final_{field}"] for x in runs])
            late = fmt([x["late_median"] for x in runs])
        jumps = [x["jump_step"] for x in runs if x["jump_step"] is not None]
        jumped = f"{len(jumps)} of {len(runs)}" + (f" (steps {', '.join(map(str, jumps))})" if jumps else "")
        print(f"| {eq} | {d} | {method} | {r} | {b} | {gpinn:g} | {steps} | {len(runs)} | {metric} | {best} | {final} | {late} | {jumped} | {speed:.1f} |")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
