#include "dippas/kernels/cpu/wavelet.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

namespace dippas::cpu {
namespace {

constexpr int kTaps = 8;  // db4 filter length F
// Each level halves the plane, down to the filter length: 32 levels is past any image.
constexpr int kMaxLevels = 32;
// PyWavelets' db4 filters (decomposition low/high, reconstruction low/high).
constexpr double kDecLo[kTaps] = {-0.010597401785069032, 0.0328830116668852,   0.030841381835560764,
                                  -0.18703481171909309,  -0.027983769416859854, 0.6308807679298589,
                                  0.7148465705529157,    0.2303778133088965};
constexpr double kDecHi[kTaps] = {-0.2303778133088965,   0.7148465705529157, -0.6308807679298589,
                                  -0.027983769416859854, 0.18703481171909309, 0.030841381835560764,
                                  -0.0328830116668852,   -0.010597401785069032};
constexpr double kRecLo[kTaps] = {0.2303778133088965,    0.7148465705529157,  0.6308807679298589,
                                  -0.027983769416859854, -0.18703481171909309, 0.030841381835560764,
                                  0.0328830116668852,    -0.010597401785069032};
constexpr double kRecHi[kTaps] = {-0.010597401785069032, -0.0328830116668852, 0.030841381835560764,
                                  0.18703481171909309,   -0.027983769416859854, -0.6308807679298589,
                                  0.7148465705529157,    -0.2303778133088965};

// float copies: like PyWavelets on float32 input, the transform runs in float.
template <size_t N>
constexpr std::array<float, N> ToFloat(const double (&d)[N]) {
  std::array<float, N> f{};
  for (size_t i = 0; i < N; ++i) f[i] = static_cast<float>(d[i]);
  return f;
}
constexpr auto kDecLoF = ToFloat(kDecLo);
constexpr auto kDecHiF = ToFloat(kDecHi);
constexpr auto kRecLoF = ToFloat(kRecLo);
constexpr auto kRecHiF = ToFloat(kRecHi);

// Half-sample symmetric extension index.
inline int64_t Sym(int64_t m, int64_t n) {
  const int64_t p = 2 * n;
  m %= p;
  if (m < 0) m += p;
  return m < n ? m : p - 1 - m;
}

inline int64_t DwtLen(int64_t n) { return (n + kTaps - 1) / 2; }

struct Plane {
  int64_t h = 0, w = 0;
  std::vector<float> v;
  Plane() = default;
  Plane(int64_t hh, int64_t ww) : h(hh), w(ww), v(static_cast<size_t>(hh * ww), 0.0f) {}
  float* row(int64_t r) { return v.data() + r * w; }
  const float* row(int64_t r) const { return v.data() + r * w; }
};

// One level along axis 1 (within rows): out[o] = Σ_j f[j]·x[sym(2o+1−j)].
void DwtRows(const Plane& x, Plane& lo, Plane& hi) {
  const int64_t n = x.w, no = DwtLen(n);
  lo = Plane(x.h, no);
  hi = Plane(x.h, no);
  std::vector<float> ext(static_cast<size_t>(2 * no + kTaps));
  for (int64_t r = 0; r < x.h; ++r) {
    const float* src = x.row(r);
    // ext[k] = x[sym(k − 6)] so that out[o] = Σ_j f[j]·ext[2o + 7 − j].
    const int64_t len = 2 * no + kTaps - 2, left = kTaps - 2;
    if (n >= len - left - n && n >= left) {
      // Mirror the edges, copy the middle (no modulo per sample).
      for (int64_t k = 0; k < left; ++k) ext[static_cast<size_t>(k)] = src[left - 1 - k];
      std::copy(src, src + n, ext.data() + left);
      for (int64_t k = left + n; k < len; ++k) ext[static_cast<size_t>(k)] = src[2 * n - 1 - (k - left)];
    } else {
      for (int64_t k = 0; k < len; ++k) ext[static_cast<size_t>(k)] = src[Sym(k - left, n)];
    }
    float* l = lo.row(r);
    float* hh = hi.row(r);
    for (int64_t o = 0; o < no; ++o) {
      const float* e = ext.data() + 2 * o + 7;
      float sl = 0, sh = 0;
      for (int j = 0; j < kTaps; ++j) {
        sl += kDecLoF[j] * e[-j];
        sh += kDecHiF[j] * e[-j];
      }
      l[o] = sl;
      hh[o] = sh;
    }
  }
}

// One level along axis 0: whole rows are combined, so the inner loop runs
// along contiguous memory.
void DwtCols(const Plane& x, Plane& lo, Plane& hi) {
  const int64_t n = x.h, no = DwtLen(n), w = x.w;
  lo = Plane(no, w);
  hi = Plane(no, w);
  for (int64_t o = 0; o < no; ++o) {
    float* __restrict l = lo.row(o);
    float* __restrict hh = hi.row(o);
    for (int j = 0; j < kTaps; ++j) {
      const float* __restrict src = x.row(Sym(2 * o + 1 - j, n));
      const float fl = kDecLoF[j], fh = kDecHiF[j];
      for (int64_t c = 0; c < w; ++c) {
        l[c] += fl * src[c];
        hh[c] += fh * src[c];
      }
    }
  }
}

// Inverse along axis 1: y[m] = Σ_k a[k]·g_lo[m+6−2k] + d[k]·g_hi[m+6−2k], m < 2n−6.
// Polyphase: y[2p] uses taps 6,4,2,0 and y[2p+1] taps 7,5,3,1 on k = p..p+3.
void IdwtRows(const Plane& a, const Plane& d, Plane& out) {
  const int64_t n = a.w, m_len = 2 * n - kTaps + 2;
  out = Plane(a.h, m_len);
  for (int64_t r = 0; r < a.h; ++r) {
    const float* ar = a.row(r);
    const float* dr = d.row(r);
    float* y = out.row(r);
    for (int64_t p = 0; 2 * p < m_len; ++p) {
      float even = 0, odd = 0;
      for (int i = 0; i < 4; ++i) {
        const float av = ar[p + i], dv = dr[p + i];
        even += kRecLoF[6 - 2 * i] * av + kRecHiF[6 - 2 * i] * dv;
        odd += kRecLoF[7 - 2 * i] * av + kRecHiF[7 - 2 * i] * dv;
      }
      y[2 * p] = even;
      y[2 * p + 1] = odd;
    }
  }
}

// Inverse along axis 0, whole rows at a time.
void IdwtCols(const Plane& a, const Plane& d, Plane& out) {
  const int64_t n = a.h, m_len = 2 * n - kTaps + 2, w = a.w;
  out = Plane(m_len, w);
  for (int64_t m = 0; m < m_len; ++m) {
    float* __restrict y = out.row(m);
    const int64_t p = m / 2, phase = m % 2;
    for (int i = 0; i < 4; ++i) {
      const float* __restrict ar = a.row(p + i);
      const float* __restrict dr = d.row(p + i);
      const float gl = kRecLoF[static_cast<size_t>(6 + phase - 2 * i)];
      const float gh = kRecHiF[static_cast<size_t>(6 + phase - 2 * i)];
      for (int64_t c = 0; c < w; ++c) y[c] += gl * ar[c] + gh * dr[c];
    }
  }
}

Plane Crop(const Plane& p, int64_t h, int64_t w) {
  if (p.h == h && p.w == w) return p;
  Plane out(h, w);
  for (int64_t r = 0; r < h; ++r) std::copy(p.row(r), p.row(r) + w, out.row(r));
  return out;
}

// Replaces x by x·σ²/(v+σ²), or by the gain σ²/(v+σ²) alone when gain_only.
// Every plane has a pixel, the arrays are there, σ² is a variance.
void Require(const void* a, const void* b, int64_t h, int64_t w, double noise_var,
             const char* what) {
  if (a == nullptr || b == nullptr) throw std::invalid_argument(std::string(what) + ": null array");
  if (h < 1 || w < 1) {
    throw std::invalid_argument(std::string(what) + ": plane " + std::to_string(h) + "×" +
                                std::to_string(w) + " has no pixel");
  }
  if (!(noise_var >= 0) || !std::isfinite(noise_var)) {
    throw std::invalid_argument(std::string(what) + ": noise variance must be finite and ≥ 0");
  }
}

template <typename T>
void WienerAdaptiveImpl(T* x, int64_t h, int64_t w, double noise_var, bool gain_only) {
  Require(x, x, h, w, noise_var, gain_only ? "WienerGainPlane" : "WienerAdaptivePlane");
  // Row box sums of x² for half-widths 1..4 (zero padding) from one prefix
  // sum per row, in double; stored as float (relative error ~1e-7 of E).
  std::vector<float> rows(static_cast<size_t>(4 * h * w));
  std::vector<double> prefix(static_cast<size_t>(w + 1));
  for (int64_t r = 0; r < h; ++r) {
    prefix[0] = 0;
    for (int64_t c = 0; c < w; ++c) {
      const double v = static_cast<double>(x[r * w + c]);
      prefix[static_cast<size_t>(c + 1)] = prefix[static_cast<size_t>(c)] + v * v;
    }
    const double* pf = prefix.data();
    for (int64_t hw = 1; hw <= 4; ++hw) {
      float* dst = rows.data() + ((hw - 1) * h + r) * w;
      const int64_t c_lo = std::min(hw, w), c_hi = std::max(c_lo, w - hw - 1);
      auto edge = [&](int64_t c) {
        const int64_t lo = std::max<int64_t>(c - hw, 0), hi = std::min<int64_t>(c + hw + 1, w);
        dst[c] = static_cast<float>(pf[hi] - pf[lo]);
      };
      for (int64_t c = 0; c < c_lo; ++c) edge(c);
      for (int64_t c = c_lo; c < c_hi; ++c) dst[c] = static_cast<float>(pf[c + hw + 1] - pf[c - hw]);
      for (int64_t c = std::max(c_lo, c_hi); c < w; ++c) edge(c);
    }
  }
  // Column box sums, running along rows; keep the minimum mean over windows.
  std::vector<float> min_e(static_cast<size_t>(h * w), 3.4e38f);
  std::vector<double> col(static_cast<size_t>(w));
  double* __restrict cp = col.data();
  for (int64_t hw = 1; hw <= 4; ++hw) {
    const double inv_area = 1.0 / static_cast<double>((2 * hw + 1) * (2 * hw + 1));
    const float* src = rows.data() + (hw - 1) * h * w;
    std::fill(col.begin(), col.end(), 0.0);
    // Window for output row r covers rows r−hw..r+hw; prime with rows 0..hw−1.
    for (int64_t r = 0; r < std::min(hw, h); ++r)
      for (int64_t c = 0; c < w; ++c) cp[c] += src[r * w + c];
    for (int64_t r = 0; r < h; ++r) {
      const int64_t add = r + hw, sub = r - hw - 1;
      if (add < h) {
        const float* __restrict s = src + add * w;
        for (int64_t c = 0; c < w; ++c) cp[c] += s[c];
      }
      if (sub >= 0) {
        const float* __restrict s = src + sub * w;
        for (int64_t c = 0; c < w; ++c) cp[c] -= s[c];
      }
      float* __restrict me = min_e.data() + r * w;
      for (int64_t c = 0; c < w; ++c) me[c] = std::min(me[c], static_cast<float>(cp[c] * inv_area));
    }
  }
  for (int64_t i = 0; i < h * w; ++i) {
    const double v = std::max(static_cast<double>(min_e[static_cast<size_t>(i)]) - noise_var, 0.0);
    const double gain = noise_var / (v + noise_var);
    x[i] = static_cast<T>(gain_only ? gain : static_cast<double>(x[i]) * gain);
  }
}

}  // namespace

void WienerAdaptivePlane(double* x, int64_t h, int64_t w, double noise_var) {
  WienerAdaptiveImpl(x, h, w, noise_var, false);
}
void WienerAdaptivePlane(float* x, int64_t h, int64_t w, double noise_var) {
  WienerAdaptiveImpl(x, h, w, noise_var, false);
}
void WienerGainPlane(float* x, int64_t h, int64_t w, double noise_var) {
  WienerAdaptiveImpl(x, h, w, noise_var, true);
}

void WaveletNoisePlane(const float* in, int64_t h, int64_t w, double noise_var, int levels, float* out) {
  Require(in, out, h, w, noise_var, "WaveletNoisePlane");
  if (levels < 1 || levels > kMaxLevels) {
    throw std::invalid_argument("WaveletNoisePlane: levels must be 1 to " +
                                std::to_string(kMaxLevels) + ", got " + std::to_string(levels));
  }
  Plane a(h, w);
  std::copy(in, in + h * w, a.v.begin());
  // details[l] = {cH, cV, cD} of level l+1 (finest first).
  std::vector<std::array<Plane, 3>> details(static_cast<size_t>(levels));
  for (int l = 0; l < levels; ++l) {
    Plane lo1, hi1, aa, da, ad, dd;
    DwtRows(a, lo1, hi1);  // along axis 1
    DwtCols(lo1, aa, da);  // along axis 0: 'aa', 'da' = cH
    DwtCols(hi1, ad, dd);  // 'ad' = cV, 'dd' = cD
    for (Plane* band : {&da, &ad, &dd}) WienerAdaptivePlane(band->v.data(), band->h, band->w, noise_var);
    details[static_cast<size_t>(l)] = {std::move(da), std::move(ad), std::move(dd)};
    a = std::move(aa);
  }
  std::fill(a.v.begin(), a.v.end(), 0.0f);  // coarsest approximation set to 0
  for (int l = levels - 1; l >= 0; --l) {
    auto& bands = details[static_cast<size_t>(l)];
    a = Crop(a, bands[0].h, bands[0].w);
    Plane lo1, hi1;
    IdwtCols(a, bands[0], lo1);         // 'aa' + 'da' along axis 0
    IdwtCols(bands[1], bands[2], hi1);  // 'ad' + 'dd'
    IdwtRows(lo1, hi1, a);              // along axis 1
  }
  for (int64_t r = 0; r < h; ++r) std::copy(a.row(r), a.row(r) + w, out + r * w);
}

}  // namespace dippas::cpu
