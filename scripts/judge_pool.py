#!/usr/bin/env python3
"""Judge every candidate of a saved pool (anonymize --save-pool) alone against a fingerprint.

Prints, per candidate, its iteration, PSNR and NCC/PCE with the fingerprint, and its NCC over the
original's: how much of the camera's pattern each candidate carries before any assembly.
Usage: judge_pool.py POOL_DIR --prnu K.npy [--image ORIGINAL] [--csv OUT.csv] [--dippas BIN]
"""
import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("pool", help="pool folder (pool.npy + pool.json)")
    ap.add_argument("--prnu", required=True, help="the judge's fingerprint (.npy)")
    ap.add_argument("--image", help="the original (default: the path recorded in pool.json)")
    ap.add_argument("--csv", help="also write the rows here")
    ap.add_argument("--dippas", default=os.path.join(HERE, "..", "build", "dippas"))
    a = ap.parse_args()
    for f in ("pool.npy", "pool.json"):
        if not os.path.isfile(os.path.join(a.pool, f)):
            sys.exit("judge_pool.py: %s: no %s (a folder written by anonymize --save-pool)" % (a.pool, f))
    meta = json.load(open(os.path.join(a.pool, "pool.json")))
    if meta.get("crop"):
        sys.exit("judge_pool.py: %s: a pool of a --crop run; judge the cropped original instead" % a.pool)
    image = a.image or meta["image"]
    pool = np.load(os.path.join(a.pool, "pool.npy"), mmap_mode="r")
    cands = meta["candidates"]
    tmp = tempfile.mkdtemp(prefix="judge_pool.")
    try:
        files = []
        for c in cands:
            f = os.path.join(tmp, "c%06d.png" % c["index"])
            Image.fromarray(np.asarray(pool[c["index"]])).save(f)
            files.append(f)
        res = os.path.join(tmp, "detect.json")
        subprocess.run([a.dippas, "detect", "--quiet", "--json", res, "--prnu", a.prnu, image] + files,
                       check=True, stdout=subprocess.DEVNULL)
        got = {r["image"]: r for r in json.load(open(res))["results"]}
    finally:
        shutil.rmtree(tmp)
    before = got[image]["ncc"]
    rows = [{"index": c["index"], "iteration": c["iteration"], "psnr": c["psnr"],
             "ncc": got[f]["ncc"], "pce": got[f]["pce"],
             "ncc_over_original": got[f]["ncc"] / before if before else float("nan")} for c, f in zip(cands, files)]
    print("original: NCC %.5f, PCE %.1f; %d candidates" % (before, got[image]["pce"], len(rows)))
    print("index iteration psnr ncc pce ncc/original")
    for r in rows:
        print("%d %d %.2f %.5f %.1f %.3f" % (r["index"], r["iteration"], r["psnr"], r["ncc"], r["pce"],
                                             r["ncc_over_original"]))
    if rows:
        q = sorted(r["ncc_over_original"] for r in rows)
        print("ncc/original: min %.3f, median %.3f, max %.3f, mean %.3f" % (
            q[0], q[len(q) // 2], q[-1], sum(q) / len(q)))
    if a.csv:
        with open(a.csv + ".part", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0].keys()) if rows else ["index"])
            w.writeheader()
            w.writerows(rows)
        os.replace(a.csv + ".part", a.csv)


if __name__ == "__main__":
    main()
