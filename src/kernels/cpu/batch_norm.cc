#include "dippas/kernels/cpu/batch_norm.h"

#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <stdexcept>
#include <string>

#include "dippas/kernels/cpu/dispatch.h"
#include "dippas/util/parallel.h"

namespace dippas {
namespace {

// Batch statistics need two values or more per channel; every array is read or written whole.
void Require(NormShape s, std::initializer_list<const void*> arrays, const char* what) {
  for (const void* a : arrays) {
    if (a == nullptr) throw std::invalid_argument(std::string(what) + ": null array");
  }
  if (s.n < 1 || s.c < 1 || s.m < 1 || s.n * s.m < 2) {
    throw std::invalid_argument(std::string(what) + ": shape n " + std::to_string(s.n) + ", c " +
                                std::to_string(s.c) + ", m " + std::to_string(s.m) +
                                " not taken (all ≥ 1, n·m ≥ 2)");
  }
}

// Below this many values one thread does it all: starting threads would cost more.
constexpr int64_t kParallelValues = int64_t{1} << 15;

// Sums in double over 8 independent lanes, which the compiler keeps in vector registers.
constexpr int kLanes = 8;

// LeakyReLU as a multiplication by 1 or the slope: a select the compiler vectorizes, and with
// a slope of 1 the identity, bit for bit.
inline float Leaky(float v, float slope) { return v * (v > 0 ? 1.0f : slope); }

// A channel's affine map u = (t − μ_f)·scale + shift, computed the same way forward and backward
// so that the backward pass sees the forward's activation mask bit for bit.
struct Affine {
  float mean, scale, shift;
  double invstd;
};
Affine ChannelAffine(double mean, double var, float w, float b, double eps) {
  const double invstd = 1.0 / std::sqrt(var + eps);
  return {static_cast<float>(mean), static_cast<float>(w * invstd), b, invstd};
}

int ThreadsFor(NormShape s, int threads) {
  return s.n * s.c * s.m >= kParallelValues ? threads : 1;
}

// The plane loops take every value as an argument (no reference a store could alias), so that
// they vectorize.

// Block of values the plane loops work on at a time, on the stack.
constexpr int64_t kBlock = 512;

// u = pre(x + x2) for n values into u (and t when not null).
template <bool kSum, bool kStore>
void PreBlock(const float* x, const float* x2, int64_t n, float slope, float* t, float* u) {
  for (int64_t j = 0; j < n; ++j) {
    const float v = Leaky(kSum ? x[j] + x2[j] : x[j], slope);
    u[j] = v;
    if constexpr (kStore) t[j] = v;
  }
}

// One pass over a plane: t = pre(x + x2) when t is not null (x2 may be null), and Σ d, Σ d² of
// d = t − shift, in double over kLanes lanes. The shift (a value of the channel) keeps the
// variance Σd²/M − (Σd/M)² free of cancellation.
void StatsPlane(const float* x, const float* x2, int64_t m, float slope, float* t, double shift,
                double* s1, double* s2) {
  float u[kBlock];
  double l1[kLanes] = {}, l2[kLanes] = {};
  double sum1 = 0, sum2 = 0;
  for (int64_t start = 0; start < m; start += kBlock) {
    const int64_t n = std::min(kBlock, m - start);
    const float* xs = x + start;
    const float* x2s = x2 == nullptr ? nullptr : x2 + start;
    float* ts = t == nullptr ? nullptr : t + start;
    if (x2s != nullptr) {
      PreBlock<true, true>(xs, x2s, n, slope, ts, u);
    } else if (ts != nullptr) {
      PreBlock<false, true>(xs, nullptr, n, slope, ts, u);
    } else {
      PreBlock<false, false>(xs, nullptr, n, slope, nullptr, u);
    }
    int64_t j = 0;
    for (; j + kLanes <= n; j += kLanes) {
      for (int l = 0; l < kLanes; ++l) {
        const double d = u[j + l] - shift;
        l1[l] += d;
        l2[l] += d * d;
      }
    }
    for (; j < n; ++j) {
      const double d = u[j] - shift;
      sum1 += d;
      sum2 += d * d;
    }
  }
  for (int l = 0; l < kLanes; ++l) {
    sum1 += l1[l];
    sum2 += l2[l];
  }
  *s1 += sum1;
  *s2 += sum2;
}

// y = post((t − μ_f)·scale + shift).
void NormalizePlane(const float* t, int64_t m, Affine a, float slope, float* y) {
  const float mean = a.mean, scale = a.scale, shift = a.shift;
  for (int64_t j = 0; j < m; ++j) y[j] = Leaky((t[j] - mean) * scale + shift, slope);
}

// gu = gy·post'(u): the gradient at u, through the post activation's mask (recomputed).
inline float GradU(float g, float t, float mean, float scale, float shift, float slope) {
  return g * ((t - mean) * scale + shift > 0 ? 1.0f : slope);
}

// Adds Σ gu and Σ gu·(t − μ_f) to *sg and *sgt, in double over lanes. In blocks: gu and t − μ_f
// first (a loop with a select, which vectorizes), then the sums (which vectorize without it).
void GradSumsPlane(const float* gy, const float* t, int64_t m, Affine a, float slope, double* sg,
                   double* sgt) {
  const float mean = a.mean, scale = a.scale, shift = a.shift;
  float gu[kBlock], d[kBlock];
  double lg[kLanes] = {}, lgt[kLanes] = {};
  double sum_g = 0, sum_gt = 0;
  for (int64_t start = 0; start < m; start += kBlock) {
    const int64_t n = std::min(kBlock, m - start);
    for (int64_t j = 0; j < n; ++j) {
      gu[j] = GradU(gy[start + j], t[start + j], mean, scale, shift, slope);
      d[j] = t[start + j] - mean;
    }
    int64_t j = 0;
    for (; j + kLanes <= n; j += kLanes) {
      for (int l = 0; l < kLanes; ++l) {
        lg[l] += gu[j + l];
        lgt[l] += static_cast<double>(gu[j + l]) * d[j + l];
      }
    }
    for (; j < n; ++j) {
      sum_g += gu[j];
      sum_gt += static_cast<double>(gu[j]) * d[j];
    }
  }
  for (int l = 0; l < kLanes; ++l) {
    sum_g += lg[l];
    sum_gt += lgt[l];
  }
  *sg += sum_g;
  *sgt += sum_gt;
}

// g_in = pre'(t)·(A·gu + B·(t − μ_f) + C).
void GradInputPlane(const float* gy, const float* t, int64_t m, Affine a, float post_slope,
                    float pre_slope, float ca, float cb, float cc, float* g_in) {
  const float mean = a.mean, scale = a.scale, shift = a.shift;
  for (int64_t j = 0; j < m; ++j) {
    const float g =
        ca * GradU(gy[j], t[j], mean, scale, shift, post_slope) + cb * (t[j] - mean) + cc;
    // t = pre(x + x2) > 0 exactly where x + x2 > 0 (the slope is positive).
    g_in[j] = g * (t[j] > 0 ? 1.0f : pre_slope);
  }
}

}  // namespace

void NormActForward(const float* x, const float* x2, NormShape s, const float* w, const float* b,
                    NormAct act, float* t, float* y, double* mean, double* var, int threads) {
  const bool needs_t = x2 != nullptr || act.pre_slope != 1;
  Require(s, {x, w, b, y, mean, var, needs_t ? t : x}, "NormActForward");
  CountKernel(KernelId::kNormAct);
  const bool write_t = x2 != nullptr || act.pre_slope != 1;
  const double count = static_cast<double>(s.n * s.m);
  ParallelFor(0, s.c, 1, ThreadsFor(s, threads), [&](int64_t c0, int64_t c1) {
    for (int64_t ch = c0; ch < c1; ++ch) {
      auto plane = [&](int64_t i) { return (i * s.c + ch) * s.m; };
      const float* src = write_t ? t : x;
      // t = pre(x + x2) and its statistics in one pass, shifted by the channel's first x (near
      // the data, which is all the shift needs).
      const double shift = x[plane(0)];
      double s1 = 0, s2 = 0;
      for (int64_t i = 0; i < s.n; ++i) {
        StatsPlane(x + plane(i), x2 ? x2 + plane(i) : nullptr, s.m, act.pre_slope,
                   write_t ? t + plane(i) : nullptr, shift, &s1, &s2);
      }
      const double mu_shifted = s1 / count;
      const double mu = shift + mu_shifted;
      mean[ch] = mu;
      var[ch] = std::max(0.0, s2 / count - mu_shifted * mu_shifted);
      const Affine a = ChannelAffine(mu, var[ch], w[ch], b[ch], act.eps);
      for (int64_t i = 0; i < s.n; ++i)
        NormalizePlane(src + plane(i), s.m, a, act.post_slope, y + plane(i));
    }
  });
}

void NormActBackward(const float* gy, const float* t, NormShape s, const float* w, const float* b,
                     NormAct act, const double* mean, const double* var, float* g_in,
                     double* grad_w, double* grad_b, int threads) {
  Require(s, {gy, t, w, b, mean, var, g_in, grad_w, grad_b}, "NormActBackward");
  const double count = static_cast<double>(s.n * s.m);
  ParallelFor(0, s.c, 1, ThreadsFor(s, threads), [&](int64_t c0, int64_t c1) {
    for (int64_t ch = c0; ch < c1; ++ch) {
      auto plane = [&](int64_t i) { return (i * s.c + ch) * s.m; };
      const Affine a = ChannelAffine(mean[ch], var[ch], w[ch], b[ch], act.eps);
      double sg = 0, sgt = 0;
      for (int64_t i = 0; i < s.n; ++i)
        GradSumsPlane(gy + plane(i), t + plane(i), s.m, a, act.post_slope, &sg, &sgt);
      // Σ gu·(t − μ), correcting for μ_f = float(μ).
      const double dmean = static_cast<double>(a.mean) - mean[ch];
      const double sgc = sgt + dmean * sg;
      grad_w[ch] = sgc * a.invstd;
      grad_b[ch] = sg;
      // ∂/∂t = w·invstd·(gu − Σgu/M − (t − μ)·invstd²·Σgu(t − μ)/M) = A·gu + B·(t − μ_f) + C.
      const double coef_a = static_cast<double>(w[ch]) * a.invstd;
      const double coef_b = -coef_a * a.invstd * a.invstd * sgc / count;
      const double coef_c = -coef_a * sg / count + coef_b * dmean;
      for (int64_t i = 0; i < s.n; ++i) {
        GradInputPlane(gy + plane(i), t + plane(i), s.m, a, act.post_slope, act.pre_slope,
                       static_cast<float>(coef_a), static_cast<float>(coef_b),
                       static_cast<float>(coef_c), g_in + plane(i));
      }
    }
  });
}

}  // namespace dippas
