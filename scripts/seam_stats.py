#!/usr/bin/env python3
"""Seams of a tiled anonymization: PSNR and |NCC| in the 16-pixel strips along the tile seams
against the tile interiors, and a picture of one seam.

Usage: seam_stats.py ORIGINAL.png ANON.png W_ANON.npy K_JUDGE.npy TILE [--crop-out SEAM.png]
  W_ANON: the residual of ANON (dippas residual); K_JUDGE: a fingerprint the anonymizer never saw.
Needs numpy and PIL (Debian: python3-numpy, python3-pil)."""
import argparse

import numpy as np
from PIL import Image


def gray(rgb):
    # The gray conversion of the tool's NCC (prnu-python's rgb2gray weights).
    return rgb[..., 0] * 0.29893602 + rgb[..., 1] * 0.58704307 + rgb[..., 2] * 0.11402090


def ncc(w, gk):
    w = w - w.mean()
    gk = gk - gk.mean()
    return float((w * gk).sum() / np.sqrt((w * w).sum() * (gk * gk).sum()))


def psnr(a, b):
    mse = float(((a - b) ** 2).mean())
    return 10 * np.log10(255.0**2 / mse) if mse > 0 else float("inf")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("original")
    ap.add_argument("anon")
    ap.add_argument("w_anon")
    ap.add_argument("k_judge")
    ap.add_argument("tile", type=int)
    ap.add_argument("--strip", type=int, default=16, help="strip width across each seam (pixels)")
    ap.add_argument("--crop-out", help="write a 4× enlarged 48×48 crop around a seam crossing")
    a = ap.parse_args()
    orig = np.asarray(Image.open(a.original).convert("RGB"), dtype=np.float64)
    anon = np.asarray(Image.open(a.anon).convert("RGB"), dtype=np.float64)
    w = np.load(a.w_anon).astype(np.float64)
    k = np.load(a.k_judge).astype(np.float64)
    h, wd = orig.shape[:2]
    seam = np.zeros((h, wd), bool)
    half = a.strip // 2
    for y in range(a.tile, h - 1, a.tile):
        seam[max(0, y - half):y + half, :] = True
    for x in range(a.tile, wd - 1, a.tile):
        seam[:, max(0, x - half):x + half] = True
    interior = ~seam
    gk = gray(anon) * k
    for name, m in (("seam strips", seam), ("tile interiors", interior)):
        print("%-15s %6.1f%% of pixels  PSNR %.2f dB  |NCC| %.5f" % (
            name, 100.0 * m.mean(), psnr(anon[m], orig[m]), abs(ncc(w[m], gk[m]))))
    # Gradient energy across the seams against the same inside tiles: a visible seam is a step.
    dy = np.abs(np.diff(anon, axis=0)).mean(axis=(1, 2))
    dy0 = np.abs(np.diff(orig, axis=0)).mean(axis=(1, 2))
    rows = [y - 1 for y in range(a.tile, h - 1, a.tile)]
    inner = [y for y in range(h - 1) if all(abs(y - r) > half for r in rows)]
    print("row step |ΔI| at seams %.3f vs inside %.3f (original %.3f vs %.3f)" % (
        dy[rows].mean(), dy[inner].mean(), dy0[rows].mean(), dy0[inner].mean()))
    if a.crop_out:
        y, x = a.tile, a.tile
        pieces = [orig[y - 24:y + 24, x - 24:x + 24], anon[y - 24:y + 24, x - 24:x + 24]]
        tile = np.concatenate(pieces, axis=1).clip(0, 255).astype(np.uint8)
        Image.fromarray(tile).resize((tile.shape[1] * 4, tile.shape[0] * 4), Image.NEAREST).save(a.crop_out)


if __name__ == "__main__":
    main()
