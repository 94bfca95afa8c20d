#!/usr/bin/env python3
"""How often the plateau stop rule stops a run that would have reached its target.

Replays the rule (configs/default.yaml, plateau_window) on the --history CSVs of runs made
WITHOUT it (--set plateau_window=0 --set restarts=0 --set pool_max=0, a large --max-iterations),
and prints per run where the rule would have stopped, where the run really reached psnr_stop
(if it did) and the verdict:
  premature  the rule stops, the run reached psnr_stop later (what the rule cost);
  right      the rule stops, the run never reached psnr_stop in its recorded iterations;
  no stop    the run reached psnr_stop before the rule stopped it.

Usage: plateau_check.py HISTORY.csv... [--window 500] [--psnr-stop 39] [--psnr-min 38]
                        [--max-iterations 10000]
"""
import argparse
import csv
import math
import sys


def rule_stop(psnr, window, psnr_min, psnr_stop, max_iterations):
    """The iteration where dippas's PlateauRule stops (src/dip/stop_rules.cc), or None."""
    total, best, prev_mean, pool = 0.0, -math.inf, math.nan, 0
    for it, p in enumerate(psnr, start=1):
        if p >= psnr_min:
            pool += 1
        total += p
        best = max(best, p)
        if it % window:
            continue
        mean = total / window
        rate = (mean - prev_mean) / window  # NaN after the first window: no stop
        left = max_iterations - it
        target = psnr_stop if pool > 0 else psnr_min
        hopeless = rate <= 0 or best + rate * left < target
        prev_mean, total, best = mean, 0.0, -math.inf
        if hopeless and left > 0:
            return it
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("histories", nargs="+")
    ap.add_argument("--window", type=int, default=500)
    ap.add_argument("--psnr-stop", type=float, default=39.0)
    ap.add_argument("--psnr-min", type=float, default=38.0)
    ap.add_argument("--max-iterations", type=int, default=10000)
    a = ap.parse_args()
    counts = {"premature": 0, "right": 0, "no stop": 0}
    print("%-44s %8s %10s %9s %9s  %s" % ("history", "recorded", "rule stop", "PSNR>stop", "best dB", "verdict"))
    for path in a.histories:
        rows = list(csv.DictReader(open(path)))
        if rows and "tile" in rows[0]:
            sys.exit("plateau_check.py: %s is a tiled run's history: give untiled runs" % path)
        psnr = [float(r["psnr"]) for r in rows]
        reached = next((i for i, p in enumerate(psnr, start=1) if p > a.psnr_stop), None)
        stop = rule_stop(psnr, a.window, a.psnr_min, a.psnr_stop, a.max_iterations)
        if stop is not None and (reached is None or stop < reached):
            verdict = "premature" if reached is not None else "right"
        else:
            verdict = "no stop"
        counts[verdict] += 1
        print("%-44s %8d %10s %9s %9.2f  %s" % (path.split("/")[-1][-44:], len(psnr), stop or "-",
                                             reached or "-", max(psnr), verdict))
    print("runs: %d; the rule stopped %d, %d of them before a psnr_stop the run reached later"
          % (len(a.histories), counts["premature"] + counts["right"], counts["premature"]))


if __name__ == "__main__":
    main()
