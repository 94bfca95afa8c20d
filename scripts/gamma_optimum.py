#!/usr/bin/env python3
"""Where γ should end: for each anonymization of a quality.sh folder, the γ that minimizes the
paper's loss MSE(Iφ·(1 + γ·P̂), I) with the output Iφ held fixed, against the γ the run ended with.

  γ* = Σ (I − Iφ)·Iφ·P̂ / Σ (Iφ·P̂)²    (sums over pixels and channels; P̂ = P / std P, as injected)

Iφ is the written output (the assembled image, close to the last candidates). γ* is also computed
with the other cameras' P̂, which no photo holds: its spread is what γ* reaches by chance.

Usage: gamma_optimum.py CROP_DIR VARIANT [VARIANT ...]
  CROP_DIR: DIR/crop<N> of scripts/quality.sh (fingerprints/<camera>.anon.npy, <variant>/*.json)
       gamma_optimum.py --self-test
Needs numpy and PIL (Debian: python3-numpy, python3-pil)."""
import glob
import json
import os
import sys

import numpy as np
from PIL import Image


def gamma_star(image, out, pattern):
    """image, out: H×W×3 in [0, 1]; pattern: H×W. The least-squares γ of the injection."""
    p = pattern / pattern.std()
    op = out * p[:, :, None]
    return float(((image - out) * op).sum() / (op * op).sum())


def centre_crop(a, n):
    if n <= 0:
        return a
    h, w = a.shape[:2]
    t, l = (h - n) // 2, (w - n) // 2
    return a[t:t + n, l:l + n]


def load_rgb(path):
    return np.asarray(Image.open(path).convert("RGB"), np.float64) / 255


def self_test():
    rng = np.random.default_rng(0)
    out = rng.uniform(0.1, 0.9, (64, 64, 3))
    pattern = rng.normal(0, 0.01, (64, 64))
    for g in (0.0, 0.003, 0.25):
        image = out * (1 + g * (pattern / pattern.std())[:, :, None])
        got = gamma_star(image, out, pattern)
        if abs(got - g) > 1e-12:
            sys.exit("self-test failed: γ* %.6g for an image made with γ %.6g" % (got, g))
    # Noise independent of P̂ moves γ* by about its standard error only.
    noisy = out + rng.normal(0, 0.01, out.shape)
    if abs(gamma_star(noisy, out, pattern)) > 5 * 0.01 / np.sqrt((out ** 2).sum()):
        sys.exit("self-test failed: γ* far from 0 for noise independent of the pattern")
    print("gamma_optimum.py: self-test passed")


def main(argv):
    if argv[1:] == ["--self-test"]:
        self_test()
        return
    if len(argv) < 3:
        sys.exit(__doc__)
    crop_dir, variants = argv[1], argv[2:]
    prints = sorted(glob.glob(os.path.join(crop_dir, "fingerprints", "*.anon.npy")))
    if not prints:
        sys.exit("gamma_optimum.py: no fingerprints/*.anon.npy in %s" % crop_dir)
    patterns = {os.path.basename(p)[:-len(".anon.npy")]: np.load(p).astype(np.float64)
                for p in prints}
    runs, own, other = [], [], []
    print("%-10s %-28s %10s %10s" % ("variant", "photo", "γ run", "γ*"))
    for v in variants:
        metrics = sorted(glob.glob(os.path.join(crop_dir, v, "*.json")))
        if not metrics:
            sys.exit("gamma_optimum.py: no metrics in %s" % os.path.join(crop_dir, v))
        for mp in metrics:
            m = json.load(open(mp))
            if m.get("gamma") is None or m.get("mode") != "aware":
                continue
            camera = os.path.basename(m["image"]).rsplit("_", 1)[0]
            image = centre_crop(load_rgb(m["image"]), m["crop"])
            out = load_rgb(m["output"])
            for c, pattern in patterns.items():
                g = gamma_star(image, out, pattern)
                if c == camera:
                    own.append(g)
                    runs.append((m["gamma"], g))
                    print("%-10s %-28s %10.5f %+10.5f" % (v, os.path.basename(m["image"]),
                                                          m["gamma"], g))
                else:
                    other.append(g)
    if not runs:
        sys.exit("gamma_optimum.py: no aware DIP run with a γ in the metrics")
    r = np.array(runs)
    print("runs %d: correlation of γ with γ* %.3f" % (len(r), np.corrcoef(r.T)[0, 1]
                                                       if len(r) > 1 else float("nan")))
    print("γ* with the photo's own camera's P̂: mean %.5f, median %.5f" %
          (np.mean(own), np.median(own)))
    if other:
        print("γ* with other cameras' P̂ (chance): RMS %.5f, largest |γ*| %.5f" %
              (np.sqrt(np.mean(np.square(other))), np.max(np.abs(other))))


if __name__ == "__main__":
    main(sys.argv)
