// Training-mode BatchNorm fused with the LeakyReLU and the sum around it, on plain float arrays:
// the CPU kernels behind dip/network.h's fused normalisation (NetworkOptions::fused_norm).
//
// Why: every MultiRes block and res path normalises with batch statistics next to a LeakyReLU
// (and a sum). LibTorch 1.13 runs each as its own operator, a pass over the whole tensor each;
// here one call does a channel's passes back to back, while its plane is still in cache, one
// channel per thread. Forward and backward of BatchNorm + LeakyReLU on 25 × 512², two cores:
// 24–26 ms against 32–37 ms for LibTorch's operators.
#pragma once

#include <cstdint>

namespace dippas {

// n·c planes of m values, contiguous: plane (i, ch) starts at (i·c + ch)·m. BatchNorm's
// statistics of channel ch run over its n planes. The functions below refuse (std::invalid_argument)
// a size under 1, n·m < 2 (no variance) or a null array they need.
struct NormShape {
  int64_t n = 1, c = 1, m = 1;
};

// The fused operation, per channel ch:
//   t = pre(x + x2)                               (x2 optional; pre = LeakyReLU(pre_slope))
//   y = post(w·(t − μ)·invstd + b)                (post = LeakyReLU(post_slope))
// with μ and σ² the batch mean and biased variance of t, invstd = 1/√(σ² + eps).
// A slope of 1 is no activation.
struct NormAct {
  float pre_slope = 1;
  float post_slope = 1;
  double eps = 1e-5;
};

// Forward. x2 may be null. t receives pre(x + x2) when there is a sum or a pre activation (the
// input of the backward pass), else it is not touched and may be null (t is then x). mean and
// var (biased) are c doubles, accumulated in double.
void NormActForward(const float* x, const float* x2, NormShape s, const float* w, const float* b,
                    NormAct act, float* t, float* y, double* mean, double* var, int threads);

// Backward, from t (or x when the forward wrote no t) and the forward's mean and var. gt_in
// receives the gradient of x (and of x2, which is the same); grad_w and grad_b the c gradients
// of w and b.
void NormActBackward(const float* gy, const float* t, NormShape s, const float* w, const float* b,
                     NormAct act, const double* mean, const double* var, float* g_in,
                     double* grad_w, double* grad_b, int threads);

}  // namespace dippas
