#!/usr/bin/env python3
"""The work of `dippas detect --prnu K.npy IMAGES...` done with prnu-python, for timing.

Usage: bench_detect_prnu_python.py PRNU_PYTHON_DIR K.npy IMAGE... [--threads N] [--sigma S]

For each image: load it (PIL), W = prnu.extract_single(I, sigma), gray(I)·K, the NCC
(prnu.aligned_cc) and the PCE (prnu.crosscorr_2d + prnu.pce); one line per image on stdout.
scripts/bench_detect.sh times this whole process, Python's start-up included.

prnu-python imports scikit-learn for its ROC helpers only; detection does not use them, so a stub
stands in for sklearn.metrics here: Python's time is not inflated by that import.
"""
import os
import sys
import types


def main(argv):
    threads, sigma, rest = "1", 3.0, []
    i = 0
    while i < len(argv):
        if argv[i] == "--threads":
            threads, i = argv[i + 1], i + 2
        elif argv[i] == "--sigma":
            sigma, i = float(argv[i + 1]), i + 2
        else:
            rest.append(argv[i])
            i += 1
    if len(rest) < 3:
        sys.exit(__doc__)
    prnu_dir, k_path, images = rest[0], rest[1], rest[2:]
    # BLAS/OpenMP thread pools read these when numpy is first imported.
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = threads
    metrics = types.ModuleType("sklearn.metrics")
    metrics.roc_curve = metrics.auc = None
    sys.modules.setdefault("sklearn", types.ModuleType("sklearn"))
    sys.modules.setdefault("sklearn.metrics", metrics)
    sys.path.insert(0, prnu_dir)

    import numpy as np
    from PIL import Image
    import prnu

    k = np.load(k_path).astype(np.float32)
    for path in images:
        im = np.asarray(Image.open(path).convert("RGB"))
        w = prnu.extract_single(im, sigma=sigma)
        b = prnu.rgb2gray(im.astype(np.float32)) * k
        ncc = prnu.aligned_cc(w[np.newaxis], b[np.newaxis])["ncc"][0, 0]
        pce = prnu.pce(prnu.crosscorr_2d(w.copy(), b.copy()))["pce"]
        print(f"{os.path.basename(path):40s} {ncc:12.6f} {pce:12.2f}")


if __name__ == "__main__":
    main(sys.argv[1:])
