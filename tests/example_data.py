#!/usr/bin/env python3
"""Builds a small camera dataset in the dresden512 layout from the bundled examples/, for the
end-to-end tests on a clone without the reference data: DEST/flatfield/ and DEST/natural/, PNG,
<camera>_<number>.png.

examples/ holds one camera's flat-fields (Nikon_D70s_1) and naturals of three cameras. More
cameras come from the same sensor turned over: a photo flipped left-right carries the fingerprint
flipped left-right, which is a different pattern from the sensor's own (their correlation is
chance), so "Nikon_D70sLR_1" (flat-fields and photos flipped left-right), "Nikon_D70sUD_1"
(top-bottom) and "Nikon_D70sRot_1" (turned 180°) behave as three more cameras, each with ten
flat-fields and photos attributed to it. The photos of the other two cameras (Nikon_D70s_0,
Nikon_D200_1) come along as they are, without flat-fields. Centre crops of SIZE (default 512, the size of the examples and of dresden512).

Usage: example_data.py EXAMPLES_DIR DEST [--size N] [--naturals K]
  --naturals K: photos per turned camera (2: the two Nikon_D70s_1 photos turned; 3 and 4 add the
                Nikon_D70s_0 and Nikon_D200_1 photos turned, which are not attributed to it).
"""
import argparse
import os
import sys

from PIL import Image

TURNS = {  # camera name: PIL transpose
    "Nikon_D70sLR_1": Image.FLIP_LEFT_RIGHT,
    "Nikon_D70sUD_1": Image.FLIP_TOP_BOTTOM,
    "Nikon_D70sRot_1": Image.ROTATE_180,
}
OWN = ["Nikon_D70s_1_22824", "Nikon_D70s_1_22928"]  # photos of the flat-fields' camera
OTHERS = ["Nikon_D70s_0_21853", "Nikon_D200_1_17226"]  # photos of other cameras


def crop(img, size):
    w, h = img.size
    if w < size or h < size:
        sys.exit("example_data.py: %dx%d image smaller than --size %d" % (w, h, size))
    x, y = (w - size) // 2, (h - size) // 2
    return img.crop((x, y, x + size, y + size))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("examples")
    ap.add_argument("dest")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--naturals", type=int, default=4, choices=[1, 2, 3, 4])
    a = ap.parse_args()
    flat_dir = os.path.join(a.dest, "flatfield")
    nat_dir = os.path.join(a.dest, "natural")
    os.makedirs(flat_dir, exist_ok=True)
    os.makedirs(nat_dir, exist_ok=True)
    flats = sorted(f for f in os.listdir(os.path.join(a.examples, "flatfield")) if f.endswith(".png"))
    for f in flats:
        img = crop(Image.open(os.path.join(a.examples, "flatfield", f)).convert("RGB"), a.size)
        img.save(os.path.join(flat_dir, f))
        for cam, turn in TURNS.items():
            img.transpose(turn).save(os.path.join(flat_dir, cam + "_" + f.rsplit("_", 1)[1]))
    for name in OWN + OTHERS:
        img = crop(Image.open(os.path.join(a.examples, "natural", name + ".png")).convert("RGB"), a.size)
        img.save(os.path.join(nat_dir, name + ".png"))
    for cam, turn in TURNS.items():
        for i, name in enumerate((OWN + OTHERS)[: a.naturals]):
            img = crop(Image.open(os.path.join(a.examples, "natural", name + ".png")).convert("RGB"), a.size)
            img.transpose(turn).save(os.path.join(nat_dir, "%s_%04d.png" % (cam, i + 1)))


if __name__ == "__main__":
    main()
