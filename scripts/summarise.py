#!/usr/bin/env python3
"""Groups `stde train` run folders by (equation, dim, method, R, B) and prints a Markdown table of
best and final relative L2 as mean ± standard deviation (divisor n, the paper's convention), the
number of runs, and median it/s.

    python3 scripts/summarise.py runs/*/
"""
import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path


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
        key = (s["equation"], s["dim"], s["method"], s["rand_batch"], s["block_size"], s["steps"])
        groups[key].append(s)
    print("| equation | d | method | R | B | steps | runs | best rel-L2 (mean ± std) | final rel-L2 (mean ± std) | it/s (median) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for key in sorted(groups):
        runs = groups[key]
        best = [r["best_rel_l2"] for r in runs]
        final = [r["final_rel_l2"] for r in runs]
        speed = statistics.median(r["it_per_s"] for r in runs)
        fmt = lambda v: f"{statistics.fmean(v):.2e} ± {statistics.pstdev(v):.1e}"
        eq, d, method, r, b, steps = key
        print(f"| {eq} | {d} | {method} | {r} | {b} | {steps} | {len(runs)} | {fmt(best)} | {fmt(final)} | {speed:.1f} |")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
