#!/usr/bin/env python3
"""Summarises the whole-image runs of scripts/gpu-quality.sh (whole.jsonl, judges.txt): per
size and configuration (aware λ, or blind), over the photos it finished, the pooled ROC AUC of NCC against every camera's
K_judge (own camera positive, the others negative), mean PSNR, C = PSNR·(1 − 2|AUC − 0.5|), and per
photo |NCC_after|/|NCC_before|; a paired bootstrap of ΔC against the same size's aware λ = 0, seed 0 on the photos both finished.

  scripts/gpu_quality_table.py whole.jsonl judges.txt
Plain Python, no NumPy."""
import json
import math
import os
import random
import re
import sys


def auc(pos, neg):
    """Rank-sum AUC with midranks for ties (as `dippas evaluate`)."""
    allv = sorted([(x, 1) for x in pos] + [(x, 0) for x in neg])
    rank_sum, i = 0.0, 0
    while i < len(allv):
        j = i
        while j < len(allv) and allv[j][0] == allv[i][0]:
            j += 1
        mid = 0.5 * (i + 1 + j)
        rank_sum += mid * sum(1 for k in range(i, j) if allv[k][1])
        i = j
    p, n = len(pos), len(neg)
    return (rank_sum - p * (p + 1) / 2) / (p * n) if p and n else float("nan")


def camera(path):
    return re.sub(r"_[0-9]+$", "", os.path.splitext(os.path.basename(path))[0])


def scores(runs, judges, key):
    pos, neg = [], []
    for r in runs:
        for name, v in zip(judges, r[key]):
            (pos if name == camera(r["image"]) else neg).append(v)
    return pos, neg


def c_metric(runs, judges):
    psnr = [r["psnr"] for r in runs if r["psnr"] is not None]
    a = auc(*scores(runs, judges, "ncc_after"))
    m = sum(psnr) / len(psnr) if psnr else float("nan")
    return m, a, m * (1 - 2 * abs(a - 0.5))


PAPER_LR = 0.001  # rows written before bench whole printed "lr" ran at the paper's rate


def lr_of(r):
    return r.get("lr", PAPER_LR)


def main():
    runs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
    judges = [l.strip() for l in open(sys.argv[2]) if l.strip()]
    runs = [r for r in runs if r["tiles"] == 1 and len(r["ncc_after"]) == len(judges)]
    by_lam = {}
    key = lambda r: (r["height"], r["mode"], r["prnu_weight"], lr_of(r), r["seed"])
    for r in runs:
        by_lam.setdefault(key(r), {})[os.path.basename(r["image"])] = r  # the last run counts
    print("| size | mode | λ | lr | seed | photos | PSNR mean (min) | AUC NCC | C | ΔC vs paper (λ 0, lr 0.001, seed 0) [95%] | ratio ≤ 0.1 | median ratio |"
          " iterations (median) | s per run (median) | γ (median) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for k in sorted(by_lam):
        size, mode, lam, lr, seed = k
        ref = (size, "aware", 0.0, PAPER_LR, 0)  # the paper's configuration, seed 0
        base = by_lam.get(ref, {})
        rs = list(by_lam[k].values())
        m, a, c = c_metric(rs, judges)
        ratios = []
        for r in rs:
            own = judges.index(camera(r["image"]))
            ratios.append(abs(r["ncc_after"][own]) / abs(r["ncc_before"][own]))
        dc = ""
        common = sorted(set(base) & set(by_lam[k]))
        if k != ref and len(common) >= 2:
            d0 = c_metric([by_lam[k][i] for i in common], judges)[2] - c_metric([base[i] for i in common], judges)[2]
            rng, ds = random.Random(20221), []
            for _ in range(2000):
                pick = [rng.choice(common) for _ in common]
                ds.append(c_metric([by_lam[k][i] for i in pick], judges)[2] -
                          c_metric([base[i] for i in pick], judges)[2])
            ds = sorted(x for x in ds if not math.isnan(x))
            dc = f"{d0:+.1f} [{ds[int(0.025 * len(ds))]:+.1f}, {ds[int(0.975 * len(ds)) - 1]:+.1f}] on {len(common)}"
        med = lambda v: sorted(v)[len(v) // 2]
        psnrs = [r["psnr"] for r in rs if r["psnr"] is not None]
        print(f"| {size}² | {mode} | {lam:g} | {lr:g} | {seed} | {len(rs)} | {m:.2f} ({min(psnrs):.2f}) | {a:.3f} | {c:.1f} | {dc or '–'} |"
              f" {sum(x <= 0.1 for x in ratios)} of {len(rs)} | {med(ratios):.3f} |"
              f" {med([r['iterations'] for r in rs])} | {med([r['seconds_total'] for r in rs]):.0f} |"
              f" {med([r['gamma'][0] for r in rs]):.2g} |")
    for size in sorted({r["height"] for r in runs}):
        photos = {r["image"]: r for r in runs if r["height"] == size}.values()
        print(f"\n{size}²: originals of these {len(photos)} photos: AUC NCC {auc(*scores(photos, judges, 'ncc_before')):.3f}")
    print("\nper photo: size, mode, λ, lr, photo, PSNR, NCC before → after (own K_judge), iterations, stop, seconds")
    for r in sorted(runs, key=lambda r: (r["height"], r["image"], r["mode"], r["prnu_weight"], lr_of(r), r["seed"])):
        own = judges.index(camera(r["image"]))
        print(f"  {r['height']}  {r['mode']}  {r['prnu_weight']:g}  lr {lr_of(r):g}  seed {r['seed']}  {os.path.basename(r['image'])}  {r['psnr']}  "
              f"{r['ncc_before'][own]:+.5f} → {r['ncc_after'][own]:+.5f}  {r['iterations']}  {r['stop_reason']}  "
              f"{r['seconds_total']:.0f}")


if __name__ == "__main__":
    main()
