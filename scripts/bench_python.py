#!/usr/bin/env python3
"""PyTorch baseline for the DIP loop: the same MultiRes U-Net and step as dippas.

Speed (default): iterations per second on random data.
    /usr/bin/python3 scripts/bench_python.py --size 128 [--iters 20] [--threads N]
Convergence (--curve): the loop of the paper's official code (polimi-ispl/dip_prnu_anonymizer,
main_1_dip.py with its defaults) on a real image, writing PSNR per iteration as CSV:
    /usr/bin/python3 scripts/bench_python.py --curve IMAGE.png --prnu K.npy --crop 256 \
        --seed 0 --iters 500 --out curve.csv
  as there: z = 0.1·N(0,1) (1×512×H×W), per iteration z + 0.1·N(0,1); the network's output
  Iφ·(1 + γ·P) (γ a 1×1 convolution initialised to 0, P the fingerprint as stored) against the
  image in [0,1] by MSE; Adam (amsgrad, lr 1e-3); γ clamped to ≥ 0 after the step; BatchNorm in
  training mode. PSNR is written three ways for the same output: `psnr` = dippas's definition
  (Iφ rounded to 8 bits against the 8-bit image), `psnr_injected` (the injected output rounded),
  `psnr_official` (the official code's: both truncated to 8 bits, on the injected output).
  Differences from the official code, none of which changes the optimisation: the image is not
  transposed (the official code feeds the network the image's transpose), CPU instead of CUDA,
  and the float PSNR is computed in float64 (the official one subtracts uint8 tensors).

Runs with Debian's python3-torch 1.13.
"""
import argparse
import os
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def multires_split(u, alpha):
    w = alpha * u  # same order and truncation as the C++ MultiResSplit
    return int(0.167 * w), int(0.333 * w), int(0.5 * w)


class ConvUnit(nn.Sequential):
    def __init__(self, cin, cout, k, stride=1):
        super().__init__(nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, bias=True),
                         nn.BatchNorm2d(cout), nn.LeakyReLU(0.2))


class MultiRes(nn.Module):
    def __init__(self, u, cin, alpha):
        super().__init__()
        c1, c2, c3 = multires_split(u, alpha)
        self.out = c1 + c2 + c3
        self.conv1 = ConvUnit(cin, c1, 3)
        self.conv2 = ConvUnit(c1, c2, 3)
        self.conv3 = ConvUnit(c2, c3, 3)
        self.bn_concat = nn.BatchNorm2d(self.out)
        self.shortcut = ConvUnit(cin, self.out, 1)
        self.bn_out = nn.BatchNorm2d(self.out)

    def forward(self, x):
        a = self.conv1(x)
        b = self.conv2(a)
        c = self.conv3(b)
        concat = self.bn_concat(torch.cat([a, b, c], 1))
        return self.bn_out(F.leaky_relu(self.shortcut(x) + concat, 0.2))


class ResPath(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv3, self.conv1 = ConvUnit(cin, cout, 3), ConvUnit(cin, cout, 1)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        return self.bn(F.leaky_relu(self.conv3(x) + self.conv1(x), 0.2))


class MultiResUNet(nn.Module):
    def __init__(self, depth=512, filters=(16, 32, 64, 128, 256), skips=(16, 32, 64, 128),
                 alpha=1.67, out_channels=3):
        super().__init__()
        self.enc, self.down, widths, w = nn.ModuleList(), nn.ModuleList(), [], depth
        for level, u in enumerate(filters):
            if level > 0:
                self.down.append(ConvUnit(w, w, 3, stride=2))
            self.enc.append(MultiRes(u, w, alpha))
            w = self.enc[-1].out
            widths.append(w)
        self.skip = nn.ModuleList([ResPath(widths[l], skips[l]) for l in range(len(skips))])
        dec = [None] * len(skips)
        for level in reversed(range(len(skips))):
            dec[level] = MultiRes(filters[level], skips[level] + w, alpha)
            w = dec[level].out
        self.dec = nn.ModuleList(dec)
        self.head = nn.Conv2d(w, out_channels, 1)

    def forward(self, z):
        feats, x = [], z
        for level, enc in enumerate(self.enc):
            x = enc(x if level == 0 else self.down[level - 1](x))
            feats.append(x)
        for level in reversed(range(len(self.dec))):
            up = F.interpolate(x, size=feats[level].shape[-2:], mode="nearest")
            x = self.dec[level](torch.cat([self.skip[level](feats[level]), up], 1))
        return torch.sigmoid(self.head(x))


def load_rgb(path, crop):
    """8-bit RGB as float64 H×W×3, centre crop as dippas's --crop (start = (size - crop) // 2)."""
    import numpy as np
    try:
        from PIL import Image
        img = np.asarray(Image.open(path).convert("RGB"), dtype=np.float64)
    except ImportError:
        import cv2
        img = cv2.imread(path, cv2.IMREAD_COLOR)[:, :, ::-1].astype(np.float64)
    if crop:
        r0, c0 = (img.shape[0] - crop) // 2, (img.shape[1] - crop) // 2
        img = img[r0:r0 + crop, c0:c0 + crop]
    return img


def curve(args):
    import numpy as np
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)  # as _set_seed: z first, then the network's initialisation
    img8 = load_rgb(args.curve, args.crop)
    h, w = img8.shape[:2]
    k = np.load(args.prnu).astype(np.float32)
    if args.crop:
        r0, c0 = (k.shape[0] - args.crop) // 2, (k.shape[1] - args.crop) // 2
        k = k[r0:r0 + args.crop, c0:c0 + args.crop]
    if k.shape != (h, w):
        raise SystemExit(f"fingerprint {k.shape} does not match the image {(h, w)}")
    z = torch.zeros(1, 512, h, w).normal_() * 0.1  # get_noise(..., 'normal', var=0.1)
    extra = z.detach().clone()
    net = MultiResUNet().train()
    prnu = torch.from_numpy(np.ascontiguousarray(k))[None, None]
    gamma = nn.Conv2d(1, 1, kernel_size=1, bias=False)
    gamma.weight = nn.Parameter(torch.zeros_like(gamma.weight))
    target = torch.from_numpy((img8 / 255.0).astype(np.float32)).permute(2, 0, 1)[None]
    opt = torch.optim.Adam(list(net.parameters()) + list(gamma.parameters()), lr=1e-3, amsgrad=True)
    ref8 = img8.transpose(2, 0, 1)[None]

    def psnr(a, b):
        return 10 * np.log10(255.0 ** 2 / np.mean((a - b) ** 2))

    rows = []
    start = time.perf_counter()
    for it in range(1, args.iters + 1):
        opt.zero_grad()
        x = z + extra.normal_() * 0.1
        out = net(x)
        injected = out * (1 + gamma(prnu))
        loss = F.mse_loss(injected, target)
        loss.backward()
        o = out.detach().double().numpy()
        inj = injected.detach().double().numpy()
        rows.append((it, float(loss), psnr(np.clip(np.round(o * 255), 0, 255), ref8),
                     psnr(np.clip(np.round(inj * 255), 0, 255), ref8),
                     psnr(np.floor(np.clip(inj * 255, 0, 255)),
                          np.floor(np.clip(target.double().numpy() * 255, 0, 255))),
                     float(gamma.weight)))
        opt.step()
        with torch.no_grad():
            gamma.weight.clamp_(0)
        if args.progress and it % 50 == 0:
            print(f"iteration {it}: PSNR {rows[-1][2]:.2f} dB, "
                  f"{(time.perf_counter() - start) / it:.2f} s/iteration", flush=True)
    tmp = args.out + ".part"
    with open(tmp, "w") as f:
        f.write("iteration,loss,psnr,psnr_injected,psnr_official,gamma\n")
        for r in rows:
            f.write("%d,%.9g,%.6f,%.6f,%.6f,%.9g\n" % r)
    os.replace(tmp, args.out)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=128, help="H = W, a multiple of 16")
    ap.add_argument("--iters", type=int, default=20, help="timed iterations")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="intra-op CPU threads")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--curve", metavar="IMAGE", help="convergence mode on this image (see above)")
    ap.add_argument("--prnu", help="--curve: fingerprint .npy (H×W, before --crop)")
    ap.add_argument("--crop", type=int, default=0, help="--curve: centre N×N crop")
    ap.add_argument("--seed", type=int, default=0, help="--curve: torch.manual_seed")
    ap.add_argument("--out", help="--curve: CSV written here")
    ap.add_argument("--progress", action="store_true", help="--curve: a line every 50 iterations")
    args = ap.parse_args()
    if args.curve:
        if not args.prnu or not args.out:
            ap.error("--curve needs --prnu and --out")
        return curve(args)
    if args.size % 16:
        ap.error("--size must be a multiple of 16")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    dev, h = torch.device(args.device), args.size

    net = MultiResUNet().to(dev).train()  # DIP keeps BatchNorm on batch statistics
    n_params = sum(p.numel() for p in net.parameters() if p.requires_grad)
    print(f"params: {n_params} (+1 for gamma)")

    z = 0.1 * torch.randn(1, 512, h, h, device=dev)
    target = torch.rand(1, 3, h, h, device=dev)
    pattern = torch.randn(h, h, device=dev)
    pattern = pattern / pattern.std()
    gamma = nn.Parameter(torch.zeros((), device=dev))
    opt = torch.optim.Adam(list(net.parameters()) + [gamma], lr=1e-3, amsgrad=True)

    def step():
        out = net(z + 0.1 * torch.randn_like(z))
        loss = F.mse_loss(out * (1 + gamma * pattern), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            gamma.clamp_(min=0)

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(2):  # warm-up: allocator, cuDNN/oneDNN kernel choice
        step()
    sync()
    start = time.perf_counter()
    for _ in range(args.iters):
        step()
    sync()
    elapsed = time.perf_counter() - start
    print(f"python it/s: {args.iters / elapsed:.3f}  (size {h}, threads {args.threads}, "
          f"{args.device}, torch {torch.__version__})")


if __name__ == "__main__":
    main()
