#!/usr/bin/env python3
"""PyTorch baseline for the DIP loop (SPEC §5): same MultiRes U-Net, same step, reports it/s.

Runs with Debian's python3-torch 1.13:  /usr/bin/python3 scripts/bench_python.py --size 128
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


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", type=int, default=128, help="H = W, a multiple of 16")
    ap.add_argument("--iters", type=int, default=20, help="timed iterations")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="intra-op CPU threads")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    args = ap.parse_args()
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
