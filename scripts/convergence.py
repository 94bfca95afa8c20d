#!/usr/bin/env python3
"""PSNR against iteration, dippas beside the paper's official loop, over several seeds.

For every IMAGE:K pair and seed it runs `dippas anonymize` (default configuration, no early stop,
per-iteration history) and scripts/bench_python.py --curve (the official loop in PyTorch) for the
same number of iterations, then prints, per image, the mean and spread over seeds of the PSNR at
a few iterations and of the iterations needed to reach a few PSNR levels, for both. Both sides
measure PSNR the same way (the network output rounded to 8 bits against the 8-bit image); the
official code's own PSNR (truncation, on the injected output) is printed beside it.

    /usr/bin/python3 scripts/convergence.py --crop 256 --iters 500 --seeds 0 1 2 \\
        --out conv/ photo1.png:K1.npy photo2.png:K2.npy

Curves already in --out are reused (delete them to rerun). Writes OUT/summary.md.
"""
import argparse
import csv
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def read_curve(path, column):
    with open(path) as f:
        return [float(r[column]) for r in csv.DictReader(f)]


# Only speeds the PyTorch side up (its allocator otherwise spends as long zeroing pages as it
# computes); the curves do not depend on it.
JEMALLOC = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"


def run(cmd, log, env=None):
    start = time.perf_counter()
    with open(log, "w") as f:
        rc = subprocess.call(cmd, stdout=f, stderr=subprocess.STDOUT, env=env)
    if rc != 0:
        sys.exit(f"convergence.py: {' '.join(cmd)} failed (exit {rc}); see {log}")
    return time.perf_counter() - start


def first_reach(curve, level):
    for i, v in enumerate(curve):
        if v >= level:
            return i + 1
    return None


def fmt(values, digits=2):
    values = [v for v in values if v is not None]
    if not values:
        return "—"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("pairs", nargs="+", metavar="IMAGE:K.npy")
    ap.add_argument("--crop", type=int, default=256)
    ap.add_argument("--iters", type=int, default=500)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--dippas", default=os.path.join(ROOT, "build", "dippas"))
    ap.add_argument("--out", required=True)
    ap.add_argument("--at", type=int, nargs="+", default=[100, 200, 300, 400, 500],
                    help="iterations at which PSNR is tabulated")
    ap.add_argument("--levels", type=float, nargs="+", default=[30, 32, 34, 35],
                    help="PSNR levels (dB) whose first iteration is tabulated")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    python_env = dict(os.environ)
    if os.path.exists(JEMALLOC):
        python_env.update(LD_PRELOAD=JEMALLOC,
                          MALLOC_CONF="retain:true,dirty_decay_ms:-1,muzzy_decay_ms:-1")

    lines = [f"# PSNR vs iteration: dippas and the official loop ({args.crop}×{args.crop} crops, "
             f"{args.iters} iterations, seeds {' '.join(map(str, args.seeds))}, "
             f"{args.threads} threads)", ""]
    for pair in args.pairs:
        image, k = pair.rsplit(":", 1)
        name = os.path.splitext(os.path.basename(image))[0]
        curves = {"dippas": [], "official": [], "official_own": []}
        seconds = {"dippas": [], "official": []}
        for seed in args.seeds:
            tag = os.path.join(args.out, f"{name}_s{seed}")
            d_csv, p_csv = tag + "_dippas.csv", tag + "_official.csv"
            if not os.path.exists(d_csv):
                seconds["dippas"].append(run(
                    [args.dippas, "anonymize", "--quiet", "--image", image, "--prnu", k,
                     "--crop", str(args.crop), "--seed", str(seed), "--max-iterations",
                     str(args.iters), "--psnr-stop", "100", "--threads", str(args.threads),
                     "--out", tag + "_dippas.png", "--history", d_csv], tag + "_dippas.log"))
            if not os.path.exists(p_csv):
                seconds["official"].append(run(
                    ["/usr/bin/python3", os.path.join(HERE, "bench_python.py"), "--curve", image,
                     "--prnu", k, "--crop", str(args.crop), "--seed", str(seed), "--iters",
                     str(args.iters), "--threads", str(args.threads), "--out", p_csv],
                    tag + "_official.log", python_env))
            curves["dippas"].append(read_curve(d_csv, "psnr"))
            curves["official"].append(read_curve(p_csv, "psnr"))
            curves["official_own"].append(read_curve(p_csv, "psnr_official"))
            print(f"{name} seed {seed}: dippas {curves['dippas'][-1][-1]:.2f} dB, official "
                  f"{curves['official'][-1][-1]:.2f} dB at iteration {args.iters}", flush=True)
        lines += [f"## {name}", "",
                  "| iteration | dippas PSNR | official loop PSNR | official's own PSNR |",
                  "|---|---|---|---|"]
        for at in args.at:
            if at > args.iters:
                continue
            lines.append(f"| {at} | " + " | ".join(
                fmt([c[at - 1] for c in curves[key]])
                for key in ("dippas", "official", "official_own")) + " |")
        lines += ["", "| PSNR level | dippas: first iteration | official loop: first iteration |",
                  "|---|---|---|"]
        for level in args.levels:
            row = []
            for key in ("dippas", "official"):
                reach = [first_reach(c, level) for c in curves[key]]
                missed = sum(r is None for r in reach)
                row.append(fmt(reach, 0) + (f" ({missed} not reached)" if missed else ""))
            lines.append(f"| {level:g} dB | " + " | ".join(row) + " |")
        if seconds["dippas"] and seconds["official"]:
            lines += ["", f"Wall time per run: dippas {fmt(seconds['dippas'], 0)} s, "
                      f"official loop {fmt(seconds['official'], 0)} s."]
        lines.append("")
    summary = os.path.join(args.out, "summary.md")
    with open(summary + ".part", "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(summary + ".part", summary)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
