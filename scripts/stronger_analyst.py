#!/usr/bin/env python3
"""Anonymity judged by an analyst who knows more than the anonymizer.

Real photos are given synthetic cameras: camera c has a known fingerprint K_true_c (white, of
strength --k-strength), and its photos are I' = JPEG(I·(1 + K_true_c)) (a camera puts its PRNU in
before compressing). The anonymizer gets K_anon, estimated by `dippas fingerprint` from N
simulated flat-fields of the camera (a flat scene with mild vignetting × (1 + K_true_c) + shot
noise, 8-bit, JPEG), as a careful user would have it; the judge uses K_true_c itself, the
perfect analyst. Reported per configuration and N: PSNR, |NCC| with K_true before and after (and
with K_anon, the anonymizer's own view), the pooled ROC AUC of the NCC with K_true over the
cameras (and of |NCC|: an analyst who sees an output lean negative flips the sign), and the
trade-off C = PSNR·(1 − 2|AUC − 0.5|). The leftover is the mean signed NCC with
K_true after over before, ± its standard error: pooled over the photos, it sees what is below one
photo's chance level (the RMS NCC against the other cameras' K_true, "chance").

Two stages, so that many variants cost one DIP run per photo:
  --dip NAME=ARGS     a DIP configuration (anonymize options), run once per photo with P =
                      K_anon at N = --inject-n, its candidate pool saved (default:
                      paper="--config configs/default.yaml");
  --select NAME=RULE  an assembly rule, applied to every DIP configuration's pool for each N
                      by `dippas assemble` (default: paper, the paper's). RULE is one of
                        aware              P = K_anon(N) (the paper's selection)
                        aware-abs          the same, ranked by |ρ| whatever its sign
                        blind              P = the photo's own noise residual W
                        both:W             P = K_anon/σ(K_anon) + W·residual/σ(residual)
                        true               P = K_true, the judge's own pattern, which no user
                                           has: the bound of what any selection can do
                      optionally followed by parts:
                        ,tau=T   candidates with PSNR ≥ T only
                        ,pool=M  the first M candidates at τ (the run stopped by pool_max = M)
                        ,stop=S  the candidates up to the first iteration above S dB (the run
                                 stopped by psnr_stop = S)
                        ,top=L   L candidates averaged per block ("all": the pool's plain
                                 mean, no selection)
                        ,b=B     blocks of B pixels instead of the run's
                        ,abs     rank by |ρ| whatever its sign, for any pattern
                      The table's "its" column is the iterations per photo the run would have
                      taken under the rule.
The pool depends on P only through the injection γ·P, and γ ends near 0.0005: the assembly is
where N acts (the run's own output is the assembly at N = --inject-n, which the table checks).
--baselines adds `--method subtract` (with K_anon(N)) and `--method denoise`.

Usage: stronger_analyst.py DATA_DIR --out DIR [options]   (DATA_DIR: natural/ of real photos)
Outputs: DIR/table.md, DIR/table.csv (one row per configuration and N), DIR/per_photo.csv.
Reruns reuse every file already made with the same settings. A smaller --photos tables the
first photos of each camera of the data already made; --no-runs tables what is finished without
starting a DIP run (while the sweep runs in another process).
"""
import argparse
import concurrent.futures as cf
import csv
import glob
import hashlib
import io
import json
import math
import os
import shlex
import shutil
import subprocess
import sys

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))


def die(msg):
    sys.exit("stronger_analyst.py: " + msg)


class Interrupted(Exception):
    pass


def run(cmd, log=None):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode == 3 and "interrupted" in r.stderr:
        raise Interrupted(r.stderr.strip().splitlines()[-1])
    if r.returncode != 0:
        tail = (r.stderr or r.stdout).strip().splitlines()[-3:]
        raise RuntimeError("%s: exit %d: %s" % (" ".join(cmd[:3]), r.returncode, " | ".join(tail)))
    if log:
        with open(log, "w") as f:
            f.write(r.stderr)
    return r


def jpeg(rgb, quality):
    if quality <= 0:
        return rgb
    b = io.BytesIO()
    Image.fromarray(rgb).save(b, "JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(b.getvalue())).convert("RGB"))


def centre(a, n):
    h, w = a.shape[:2]
    if h < n or w < n:
        die("a photo of %dx%d is smaller than --crop %d" % (h, w, n))
    y, x = (h - n) // 2, (w - n) // 2
    return a[y:y + n, x:x + n]


def save_png(path, rgb):
    tmp = path + ".tmp.png"
    Image.fromarray(rgb).save(tmp)
    os.replace(tmp, path)


def make_data(a, out):
    """Cameras, photos, flat-fields and fingerprints, cached under out/data."""
    d = os.path.join(out, "data")
    params = {k: getattr(a, k) for k in ("crop", "cameras", "photos", "k_strength", "jpeg",
                                         "flat_noise", "seed", "n_max")}
    photos = sorted(glob.glob(os.path.join(a.data, "natural", "*.png")) +
                    glob.glob(os.path.join(a.data, "natural", "*.jpg")))
    need = a.cameras * a.photos
    if len(photos) < need:
        die("%s/natural holds %d photos, %d cameras × %d photos need %d"
            % (a.data, len(photos), a.cameras, a.photos, need))
    params["photos_used"] = [os.path.basename(p) for p in photos[:need]]
    pfile = os.path.join(d, "params.json")
    if os.path.exists(pfile):
        old = json.load(open(pfile))
        if old == params:
            return json.load(open(os.path.join(d, "index.json")))
        # Fewer photos per camera of the same cameras: the first ones of the data already made
        # (camera c's photos are photos[c::C], so they are the same files), nothing made again.
        same = {k: v for k, v in old.items() if k not in ("photos", "photos_used")} == \
            {k: v for k, v in params.items() if k not in ("photos", "photos_used")}
        if same and old["photos"] >= a.photos and old["photos_used"][:need] == params["photos_used"]:
            index = json.load(open(os.path.join(d, "index.json")))
            for cam in index["cameras"]:
                cam["photos"] = cam["photos"][:a.photos]
            return index
    if os.path.exists(pfile):
        # The draws run camera after camera, each camera's n_max flat-fields among them: another
        # largest N, or another crop, seed or strength, makes other cameras (all but the first
        # for n_max alone), and every run of theirs is made again.
        print("data made again (%s changed): the DIP runs of changed photos or fingerprints will be "
              "made again" % ", ".join(sorted(k for k in params if params[k] != old.get(k))),
              file=sys.stderr, flush=True)
    os.makedirs(d, exist_ok=True)
    # Everything made from the data goes with it: other parameters (another --n changes n_max,
    # so the draws, so every camera's K_true after the first) must not meet a fingerprint, a
    # residual or a flat-field of the old cameras.
    # (A set: "X.both1.anon4.npy" matches two of the patterns.)
    for f in set(glob.glob(os.path.join(d, "*.anon*")) + glob.glob(os.path.join(d, "*.res.npy")) +
                 glob.glob(os.path.join(d, "*.both*.npy"))):
        os.remove(f)
    for f in glob.glob(os.path.join(d, "*_flats")):
        shutil.rmtree(f)
    rng = np.random.default_rng(a.seed)
    n, index = a.crop, {"cameras": []}
    yy, xx = np.mgrid[0:n, 0:n] / n
    for c in range(a.cameras):
        cam = "Synth%d" % c
        k = (rng.standard_normal((n, n)) * a.k_strength).astype(np.float32)
        np.save(os.path.join(d, cam + ".true.npy"), k)
        entry = {"name": cam, "photos": []}
        # Photo i goes to camera i mod C: each camera gets photos of several real cameras.
        for p in photos[c:need:a.cameras]:
            rgb = centre(np.asarray(Image.open(p).convert("RGB"), dtype=np.float64), n)
            img = jpeg(np.clip(np.round(rgb * (1 + k[:, :, None])), 0, 255).astype(np.uint8), a.jpeg)
            name = "%s_%s" % (cam, os.path.splitext(os.path.basename(p))[0])
            save_png(os.path.join(d, name + ".png"), img)
            entry["photos"].append(name)
        fdir = os.path.join(d, cam + "_flats")
        os.makedirs(fdir, exist_ok=True)
        for i in range(a.n_max):
            level = rng.uniform(160, 210)
            tint = np.array([1.0, rng.uniform(0.95, 1.05), rng.uniform(0.9, 1.1)])
            scene = level * (1 - 0.15 * ((yy - 0.5) ** 2 + (xx - 0.5) ** 2))[:, :, None] * tint
            # Shot noise (variance ∝ signal, a.flat_noise levels at 180) on the PRNU-modulated scene.
            shot = scene * (1 + k[:, :, None])
            noisy = shot + rng.standard_normal(shot.shape) * a.flat_noise * np.sqrt(shot / 180.0)
            flat = jpeg(np.clip(np.round(noisy), 0, 255).astype(np.uint8), a.jpeg)
            save_png(os.path.join(fdir, "%s_flat%03d.png" % (cam, i)), flat)
        index["cameras"].append(entry)
    json.dump(index, open(os.path.join(d, "index.json"), "w"), indent=1)
    json.dump(params, open(pfile, "w"), indent=1)
    return index


def fingerprints(a, out, index, ns):
    d = os.path.join(out, "data")
    jobs = []
    for cam in index["cameras"]:
        flats = sorted(glob.glob(os.path.join(d, cam["name"] + "_flats", "*.png")))
        for nn in ns:
            path = os.path.join(d, "%s.anon%d.npy" % (cam["name"], nn))
            if not os.path.exists(path):
                jobs.append([a.dippas, "fingerprint", "--quiet", "--threads", "1", "--out", path] + flats[:nn])
    pool_map(a.jobs, lambda cmd: run(cmd), jobs)
    quality = {}
    for cam in index["cameras"]:
        kt = np.load(os.path.join(d, cam["name"] + ".true.npy")).ravel()
        quality[cam["name"]] = {nn: float(np.corrcoef(
            np.load(os.path.join(d, "%s.anon%d.npy" % (cam["name"], nn))).ravel(), kt)[0, 1]) for nn in ns}
    return quality


def pool_map(jobs, fn, items):
    errors = []
    with cf.ThreadPoolExecutor(max_workers=max(1, jobs)) as ex:
        for item, fut in [(i, ex.submit(fn, i)) for i in items]:
            try:
                fut.result()
            except Exception as e:  # one failure does not stop the others
                errors.append(str(e))
    for e in errors:
        print("failed: " + e, file=sys.stderr)
    return errors


def residual(a, img, path):
    if not os.path.exists(path):
        run([a.dippas, "residual", "--quiet", "--threads", "1", "--image", img, "--out", path])
    return np.load(path)


def rule_limits(rule):
    """A rule's ",tau=T", ",pool=M", ",stop=S", ",top=L" and ",b=B" parts: {"tau": T, "pool": M,
    "stop": S, "top": L, "b": B, "abs": True}, L = 0 for "all"."""
    lim = {}
    for p in rule.split(",")[1:]:
        if p == "abs":
            lim["abs"] = True
            continue
        k, _, v = p.partition("=")
        if k not in ("tau", "pool", "stop", "top", "b") or not v:
            die("--select rule %s: unknown part %s (expected tau=T, pool=M, stop=S, top=L, b=B or abs)" % (rule, p))
        try:
            lim[k] = 0 if (k, v) == ("top", "all") else int(v) if k in ("pool", "top", "b") else float(v)
        except ValueError:
            die("--select rule %s: %s is not a number" % (rule, p))
        if k in ("pool", "top", "b") and lim[k] < 1 and v != "all":
            die("--select rule %s: %s needs a value ≥ 1" % (rule, p))
    return lim


def stopped_run(rd, meta, tau, lim):
    """What a run would have been under a rule's stop: (iterations, candidates at τ kept)."""
    cands = json.load(open(os.path.join(rd, "pool", "pool.json")))["candidates"]
    last = meta["iterations"]
    if "stop" in lim:
        for line in open(os.path.join(rd, "history.csv")).read().splitlines()[1:]:
            it, _, psnr = line.split(",")[:3]
            if float(psnr) > lim["stop"]:
                last = min(last, int(it))
                break
    at_tau = [c for c in cands if c["psnr"] >= tau and c["iteration"] <= last]
    if "pool" in lim and len(at_tau) >= lim["pool"]:
        last = at_tau[lim["pool"] - 1]["iteration"]
        at_tau = at_tau[:lim["pool"]]
    return last, len(at_tau)


def select_p(a, out, cam, photo, rule, nn):
    """The assembly's P for a rule: ['--prnu', file (, '--order-by-abs')] or ['--blind']."""
    parts = rule.split(",")
    pargs = select_pattern(a, out, cam, photo, parts[0], nn)
    return pargs + (["--order-by-abs"] if "abs" in parts[1:] and "--order-by-abs" not in pargs else [])


def select_pattern(a, out, cam, photo, base, nn):
    d = os.path.join(out, "data")
    kfile = os.path.join(d, "%s.anon%d.npy" % (cam, nn))
    if base in ("aware", "aware-abs"):
        return ["--prnu", kfile] + (["--order-by-abs"] if base == "aware-abs" else [])
    if base == "blind":
        return ["--blind"]
    if base == "true":
        return ["--prnu", os.path.join(d, cam + ".true.npy")]
    if base.startswith("both:"):
        w = float(base[5:])
        res = residual(a, os.path.join(d, photo + ".png"), os.path.join(d, photo + ".res.npy"))
        k = np.load(kfile)
        pfile = os.path.join(d, "%s.both%g.anon%d.npy" % (photo, w, nn))
        if not os.path.exists(pfile):
            np.save(pfile, (k / k.std() + w * res / res.std()).astype(np.float32))
        return ["--prnu", pfile]
    die("--select rule %s: expected aware, aware-abs, blind, both:W or true" % base)


def digest(*parts):
    return hashlib.sha1(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:12]


_contents = {}


def fdig(path):
    """A file's bytes as a digest (cached by size and time): what a key holds of an input, so a
    run, an assembly or a baseline made from other data is made again."""
    st = os.stat(path)
    k = (path, st.st_size, st.st_mtime_ns)
    if k not in _contents:
        h = hashlib.sha1()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _contents[k] = h.hexdigest()[:12]
    return _contents[k]


def file_args(args):
    """The digests of the files named in a command's arguments."""
    return [fdig(x) for x in args if os.path.isfile(x)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("data")
    ap.add_argument("--out", required=True)
    ap.add_argument("--crop", type=int, default=256)
    ap.add_argument("--cameras", type=int, default=4)
    ap.add_argument("--photos", type=int, default=3, help="photos per camera")
    ap.add_argument("--n", default="5,10,25,50", help="flat-field counts N of K_anon")
    ap.add_argument("--inject-n", type=int, default=10, help="the N of the DIP runs' P")
    ap.add_argument("--k-strength", type=float, default=0.005, help="std of K_true")
    ap.add_argument("--jpeg", type=int, default=92, help="JPEG quality of photos and flats (0: none)")
    ap.add_argument("--flat-noise", type=float, default=7.0,
                    help="flat-field noise std at level 180 (7: the halves of 10 flat-fields agree "
                         "at r ≈ 0.1, as Dresden's real ones do)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--dip", action="append", default=[], metavar="NAME=ARGS")
    ap.add_argument("--select", action="append", default=[], metavar="NAME=RULE")
    ap.add_argument("--baselines", action="store_true")
    ap.add_argument("--no-runs", action="store_true",
                    help="start no DIP run: table the configurations whose runs are all finished "
                         "(a sweep running in another process, read as it goes)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--dippas", default=os.path.join(HERE, "..", "build", "dippas"))
    a = ap.parse_args()
    ns = sorted({int(x) for x in a.n.split(",")} | {a.inject_n})
    a.n_max = max(ns)
    if not os.path.isdir(os.path.join(a.data, "natural")):
        die("%s/natural: no such folder" % a.data)
    dips = [v.split("=", 1) for v in (a.dip or ["paper=--config " + os.path.join(HERE, "..", "configs", "default.yaml")])]
    sels = [v.split("=", 1) for v in (a.select or ["paper=aware"])]
    for v in dips + sels:
        if len(v) != 2 or not v[0] or "/" in v[0]:
            die("bad variant %r: expected NAME=..." % "=".join(v))
    for _, rule in sels:  # a bad rule is an error now, not after hours of DIP runs
        rule_limits(rule)
        base = rule.split(",")[0]
        if base not in ("aware", "aware-abs", "blind", "true") and not (
                base.startswith("both:") and base[5:].replace(".", "", 1).isdigit()):
            die("--select rule %s: expected aware, aware-abs, blind, both:W or true" % rule)
    out = os.path.abspath(a.out)
    os.makedirs(out, exist_ok=True)
    index = make_data(a, out)
    kq = fingerprints(a, out, index, ns)
    d = os.path.join(out, "data")
    photos = [(cam["name"], p) for cam in index["cameras"] for p in cam["photos"]]
    cams_order = [cam["name"] for cam in index["cameras"]]

    # Stage A: one DIP run per photo and configuration, the pool kept. Each run checkpoints in
    # its folder (ckpt/, saved every 5 minutes and on SIGTERM/Ctrl-C): a sweep stopped or killed
    # resumes its runs where they were. A run interrupted stops the sweep (exit 3).
    interrupted = []
    unfinished = {}  # --no-runs: configuration -> photos without a finished run

    def dip_job(job):
        name, args, cam, photo = job
        rd = os.path.join(out, "runs", name, photo)
        photo_png, pfile = os.path.join(d, photo + ".png"), os.path.join(d, "%s.anon%d.npy" % (cam, a.inject_n))
        key = digest(args, a.inject_n, a.threads, fdig(photo_png), fdig(pfile))
        if interrupted or (os.path.exists(os.path.join(rd, "done.json")) and
                           json.load(open(os.path.join(rd, "done.json"))).get("key") == key):
            return
        if a.no_runs:
            unfinished.setdefault(name, []).append(photo)
            return
        os.makedirs(rd, exist_ok=True)
        try:
            run([a.dippas, "anonymize", "--quiet", "--threads", str(a.threads),
                 "--image", photo_png,
                 "--prnu", pfile,
                 "--out", os.path.join(rd, "anon.png"), "--save-pool", os.path.join(rd, "pool"),
                 "--history", os.path.join(rd, "history.csv"), "--checkpoint", os.path.join(rd, "ckpt"),
                 "--restart"] + shlex.split(args))
        except Interrupted as e:
            interrupted.append("%s/%s: %s" % (name, photo, e))
            return
        json.dump({"key": key}, open(os.path.join(rd, "done.json"), "w"))
    # Round-robin over the cameras (every camera's first photo, then the second…): a sweep
    # stopped early has whole rounds, which a rerun with a smaller --photos uses as they are.
    rr = sorted(photos, key=lambda cp: ([c["photos"] for c in index["cameras"] if c["name"] == cp[0]][0].index(cp[1]),
                                        cams_order.index(cp[0])))
    jobs = [(n, args, c, p) for n, args in dips for c, p in rr]
    print("stage A: %d DIP runs (%d configurations × %d photos)%s" % (
        len(jobs), len(dips), len(photos), ": finished ones only (--no-runs)" if a.no_runs else ""), flush=True)
    pool_map(a.jobs, dip_job, jobs)
    if interrupted:
        for m in interrupted:
            print(m, file=sys.stderr)
        print("interrupted: rerun the same command to resume", file=sys.stderr)
        sys.exit(3)
    for name, missing in sorted(unfinished.items()):
        print("left out: %s (%d of %d runs not finished, e.g. %s)" % (name, len(missing), len(photos), missing[0]),
              file=sys.stderr)
    dips = [(n, args) for n, args in dips if n not in unfinished]

    # Stage B: assembly rules × N over every pool; baselines.
    outputs = {}  # (config, N) -> {photo: image path}
    its = {}  # (config, photo) -> iterations the DIP run took, or would have under the rule

    def assemble_job(job):
        dname, sname, rule, nn, cam, photo = job
        rd = os.path.join(out, "runs", dname, photo)
        if not os.path.exists(os.path.join(rd, "done.json")):
            raise RuntimeError("no DIP run for %s/%s" % (dname, photo))
        pargs = select_p(a, out, cam, photo, rule, nn)
        meta = json.load(open(os.path.join(rd, "anon.json")))
        cfg = meta["config"]
        lim = rule_limits(rule)
        tau = lim.get("tau", cfg["psnr_min"])
        last, kept = stopped_run(rd, meta, tau, lim)
        its["%s/%s" % (dname, sname), photo] = last
        pool_max = kept if ("pool" in lim or "stop" in lim) else cfg["pool_max"]
        top = (lim["top"] or kept) if "top" in lim else cfg["top"]  # top=all: every candidate kept
        bs = lim.get("b", cfg["block_size"])
        od = os.path.join(out, "assembled", dname, sname, "N%d" % nn, photo)
        key = digest(pargs, tau, *([pool_max] if lim.keys() - {"tau"} else []), *([top] if "top" in lim else []),
                     *([bs] if "b" in lim else []),
                     json.load(open(os.path.join(rd, "done.json")))["key"], file_args(pargs))
        target = os.path.join(od, "image.png")
        if kept == 0:
            # No candidate reached τ: the run's own fallback (its best candidate) stands in.
            outputs.setdefault(("%s/%s" % (dname, sname), nn), {})[photo] = os.path.join(rd, "anon.png")
            return
        if not (os.path.exists(target) and open(os.path.join(od, "key")).read() == key):
            os.makedirs(od, exist_ok=True)
            run([a.dippas, "assemble", "--quiet", "--threads", str(a.threads), "--pool", os.path.join(rd, "pool"),
                 "--image", os.path.join(d, photo + ".png"), "--block-size", str(bs),
                 "--top", str(top), "--psnr-min", str(tau), "--pool-max", str(pool_max),
                 "--out-dir", od] + pargs)
            made = [f for f in glob.glob(os.path.join(od, "*.png")) if not f.endswith("image.png")]
            if len(made) != 1:
                raise RuntimeError("assemble made %d images in %s" % (len(made), od))
            os.replace(made[0], target)
            open(os.path.join(od, "key"), "w").write(key)
        outputs.setdefault(("%s/%s" % (dname, sname), nn), {})[photo] = target
    jobs = [(dn, sn, rule, nn, c, p) for dn, _ in dips for sn, rule in sels for nn in ns for c, p in photos]
    print("stage B: %d assemblies" % len(jobs), flush=True)
    pool_map(a.jobs, assemble_job, jobs)
    if a.baselines:
        def base_job(job):
            method, nn, cam, photo = job
            od = os.path.join(out, "baselines", method, "N%d" % nn)
            os.makedirs(od, exist_ok=True)
            target = os.path.join(od, photo + ".png")
            args = ["--prnu", os.path.join(d, "%s.anon%d.npy" % (cam, nn))] if method == "subtract" else ["--blind"]
            photo_png = os.path.join(d, photo + ".png")
            key = digest(method, fdig(photo_png), file_args(args))
            kfile = target + ".key"
            if not (os.path.exists(target) and os.path.exists(kfile) and open(kfile).read() == key):
                run([a.dippas, "anonymize", "--quiet", "--threads", "1", "--method", method,
                     "--image", photo_png, "--out", target] + args)
                open(kfile, "w").write(key)
            outputs.setdefault((method, nn), {})[photo] = target
        jobs = [("subtract", nn, c, p) for nn in ns for c, p in photos] + [("denoise", 0, c, p) for c, p in photos]
        pool_map(a.jobs, base_job, jobs)
    for dn, _ in dips:  # the runs' own outputs: the assembly at N = --inject-n by the run itself
        for c, p in photos:
            f = os.path.join(out, "runs", dn, p, "anon.png")
            if os.path.exists(f):
                outputs.setdefault(("%s/run" % dn, a.inject_n), {})[p] = f
                its["%s/run" % dn, p] = json.load(open(os.path.join(out, "runs", dn, p, "anon.json")))["iterations"]

    # The judge: NCC (and PCE) of every output against every camera's K_true; the anonymizer's
    # view: NCC with its own K_anon(N).
    cams = [c["name"] for c in index["cameras"]]
    cam_of = {p: c for c, p in photos}
    originals = {p: os.path.join(d, p + ".png") for _, p in photos}

    def detect(files, k):
        # Keyed by the files' contents as well as their names: a rerun rewrites outputs in place.
        stamp = [(f, os.stat(f).st_size, os.stat(f).st_mtime_ns) for f in sorted(files) + [k]]
        res = os.path.join(out, "judge", digest(stamp) + ".json")
        if not os.path.exists(res):
            os.makedirs(os.path.dirname(res), exist_ok=True)
            run([a.dippas, "detect", "--quiet", "--threads", str(a.jobs), "--json", res, "--prnu", k] + files)
        rows = json.load(open(res))
        rows = rows.get("results", rows) if isinstance(rows, dict) else rows
        return {r["image"]: r for r in rows}

    def scores(files_by_photo):
        files = sorted(files_by_photo.values())
        ncc = {}
        for c in cams:
            got = detect(files, os.path.join(d, c + ".true.npy"))
            for p, f in files_by_photo.items():
                ncc[(p, c)] = got[f]["ncc"], got[f]["pce"]
        return ncc

    before = scores(originals)
    rows, per_photo = [], []
    for (cfg, nn), files in sorted(outputs.items()):
        if len(files) != len(photos):
            print("skipped %s N=%d: %d of %d photos" % (cfg, nn, len(files), len(photos)), file=sys.stderr)
            continue
        after = scores(files)
        own = {}
        if nn > 0:
            for c in cams:
                mine = {p: f for p, f in files.items() if cam_of[p] == c}
                got = detect(sorted(mine.values()), os.path.join(d, "%s.anon%d.npy" % (c, nn)))
                own.update({p: got[f]["ncc"] for p, f in mine.items()})
        pos = [after[(p, cam_of[p])][0] for p in files]
        neg = [after[(p, c)][0] for p in files for c in cams if c != cam_of[p]]
        auc = mann_whitney(pos, neg)
        psnrs = []
        for p, f in sorted(files.items()):
            x = np.asarray(Image.open(f).convert("RGB"), dtype=np.float64)
            y = np.asarray(Image.open(originals[p]).convert("RGB"), dtype=np.float64)
            mse = np.mean((x - y) ** 2)
            psnr = 10 * math.log10(255 ** 2 / mse) if mse > 0 else float("inf")
            psnrs.append(psnr)
            b, af = before[(p, cam_of[p])], after[(p, cam_of[p])]
            per_photo.append({"config": cfg, "N": nn, "photo": p, "camera": cam_of[p], "its": its.get((cfg, p), ""),
                              "psnr": psnr,
                              "ncc_true_before": b[0], "ncc_true_after": af[0], "pce_true_after": af[1],
                              "ncc_anon_after": own.get(p, "")})
        fin = [x for x in psnrs if math.isfinite(x)]
        pm = sum(fin) / len(fin) if fin else float("inf")
        nb = [abs(before[(p, cam_of[p])][0]) for p in files]
        na = [abs(x) for x in pos]
        ratio = sorted(abs(after[(p, cam_of[p])][0]) / max(abs(before[(p, cam_of[p])][0]), 1e-12) for p in files)
        # The signed leftover: mean NCC with K_true after over before, with its standard error. A
        # mean pools the photos, so it sees a leftover below one photo's chance level; it should
        # be 0 (a sign the analyst could flip shows in |NCC| and the AUC instead).
        sb = sum(before[(p, cam_of[p])][0] for p in files) / len(files)
        sa = sum(pos) / len(pos)
        se = (sum((x - sa) ** 2 for x in pos) / max(len(pos) - 1, 1) / len(pos)) ** 0.5
        run_its = [its[cfg, p] for p in files if (cfg, p) in its]
        rows.append({"config": cfg, "N": nn, "photos": len(files),
                     "its": sum(run_its) / len(run_its) if len(run_its) == len(files) else "",
                     "psnr_mean": pm, "psnr_min": min(psnrs),
                     "ncc_true_before": sum(nb) / len(nb), "ncc_true_after": sum(na) / len(na),
                     "leftover": sa / sb if sb else float("nan"), "leftover_se": se / abs(sb) if sb else float("nan"),
                     "ncc_chance_rms": (sum(x * x for x in neg) / len(neg)) ** 0.5,
                     "n_below_psnr_min": sum(1 for x in psnrs if x < 38.0),
                     "ratio_median": ratio[len(ratio) // 2],
                     "ncc_anon_after": (sum(abs(v) for v in own.values()) / len(own)) if own else "",
                     "pce_true_after_max": max(after[(p, cam_of[p])][1] for p in files),
                     "auc_true": auc, "auc_true_abs": mann_whitney([abs(x) for x in pos], [abs(x) for x in neg]),
                     "C": pm * (1 - 2 * abs(auc - 0.5)) if math.isfinite(pm) else ""})
    pos0 = [before[(p, cam_of[p])][0] for _, p in photos]
    neg0 = [before[(p, c)][0] for _, p in photos for c in cams if c != cam_of[p]]
    auc0 = mann_whitney(pos0, neg0)
    write_tables(out, rows, per_photo, kq, auc0, a, ns, len(photos))


def mann_whitney(pos, neg):
    """ROC AUC: P(positive > negative), ties one half."""
    if not pos or not neg:
        return float("nan")
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def write_tables(out, rows, per_photo, kq, auc0, a, ns, nphotos):
    keys = ["config", "N", "photos", "its", "psnr_mean", "psnr_min", "n_below_psnr_min", "ncc_true_before",
            "ncc_true_after", "ncc_chance_rms", "leftover", "leftover_se", "ratio_median", "ncc_anon_after", "pce_true_after_max", "auc_true", "auc_true_abs", "C"]
    with open(os.path.join(out, "table.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
    with open(os.path.join(out, "per_photo.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(per_photo[0].keys()) if per_photo else ["config"])
        w.writeheader()
        w.writerows(per_photo)
    fmt = lambda v, p=4: ("%.*f" % (p, v)) if isinstance(v, float) and math.isfinite(v) else str(v)
    lines = ["# The stronger analyst: judged with K_true", "",
             "%d photos of %d synthetic cameras at %d², K_true std %g, JPEG %d; K_anon from N simulated "
             "flat-fields (noise %g). Originals: AUC %.3f with K_true." % (nphotos, a.cameras, a.crop, a.k_strength,
                                                                          a.jpeg, a.flat_noise, auc0), "",
             "corr(K_anon(N), K_true), mean over cameras: " + ", ".join(
                 "N=%d %.2f" % (nn, sum(q[nn] for q in kq.values()) / len(kq)) for nn in ns), "",
             "| config | N | its | PSNR mean (min) | < 38 dB | \\|NCC\\| K_true before → after (chance) | "
             "leftover ± se | median after/before | \\|NCC\\| K_anon after | max PCE K_true after | AUC K_true | "
             "AUC \\|NCC\\| | C |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append("| %s | %s | %s | %s (%s) | %s | %s → %s (%s) | %s ± %s | %s | %s | %s | %s | %s | %s |" % (
            r["config"], r["N"] or "–", fmt(r["its"], 0) if r["its"] != "" else "–", fmt(r["psnr_mean"], 2), fmt(r["psnr_min"], 2), r["n_below_psnr_min"],
            fmt(r["ncc_true_before"]), fmt(r["ncc_true_after"]), fmt(r["ncc_chance_rms"]), fmt(r["leftover"], 2),
            fmt(r["leftover_se"], 2), fmt(r["ratio_median"], 2), fmt(r["ncc_anon_after"]),
            fmt(r["pce_true_after_max"], 1), fmt(r["auc_true"], 3), fmt(r["auc_true_abs"], 3), fmt(r["C"], 1)))
    open(os.path.join(out, "table.md"), "w").write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
