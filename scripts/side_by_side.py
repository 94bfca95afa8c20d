#!/usr/bin/env python3
"""Original | anonymized | difference amplified, side by side in one PNG.

Usage: side_by_side.py ORIGINAL ANONYMIZED OUT.png [--crop N] [--gain G]
  --crop N  the centre N×N crop of ORIGINAL (what `dippas anonymize --crop N` anonymized)
  --gain G  the difference (anonymized − original) × G around mid-gray (default 10)
"""
import argparse
import sys

import numpy as np
from PIL import Image


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("original")
    ap.add_argument("anonymized")
    ap.add_argument("out")
    ap.add_argument("--crop", type=int, default=0)
    ap.add_argument("--gain", type=float, default=10.0)
    a = ap.parse_args()
    orig = np.asarray(Image.open(a.original).convert("RGB"), dtype=np.float64)
    anon = np.asarray(Image.open(a.anonymized).convert("RGB"), dtype=np.float64)
    if a.crop:
        h, w = orig.shape[:2]
        if a.crop > min(h, w):
            sys.exit("side_by_side.py: %s is %dx%d, smaller than --crop %d" % (a.original, h, w, a.crop))
        y, x = (h - a.crop) // 2, (w - a.crop) // 2
        orig = orig[y : y + a.crop, x : x + a.crop]
    if orig.shape != anon.shape:
        sys.exit("side_by_side.py: %s is %s but %s is %s (give --crop?)"
                 % (a.original, orig.shape[:2], a.anonymized, anon.shape[:2]))
    diff = np.clip(128 + a.gain * (anon - orig), 0, 255)
    gap = np.full((orig.shape[0], 8, 3), 255.0)
    row = np.concatenate([orig, gap, anon, gap, diff], axis=1).round().astype(np.uint8)
    Image.fromarray(row).save(a.out)


if __name__ == "__main__":
    main()
