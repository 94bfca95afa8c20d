#include "dippas/kernels/cpu/conv3x3.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "dippas/kernels/cpu/dispatch.h"
#include "dippas/util/parallel.h"

namespace dippas {
namespace {

#define DIPPAS_INLINE inline __attribute__((always_inline))

// Output rows per task; the task's padded input band holds kBand + 2 rows. Fixed, so that the
// weights' gradient sums its bands in the same order for any thread count.
constexpr int64_t kBand = 4;

template <int kVw>
struct Vec {
  typedef float type __attribute__((vector_size(kVw * sizeof(float))));
};

// Rows r0 − 1 … r0 + rows of c planes (h × w) into buf, zero-padded: row j of channel ch starts
// at buf + (ch·(rows + 2) + j)·(w + 2) and holds x at index x + 1; zeros outside the image.
void FillBand(const float* in, int64_t c, int64_t h, int64_t w, int64_t r0, int64_t rows,
              float* buf) {
  const int64_t pw = w + 2;
  for (int64_t ch = 0; ch < c; ++ch) {
    for (int64_t j = 0; j < rows + 2; ++j) {
      float* dst = buf + (ch * (rows + 2) + j) * pw;
      const int64_t y = r0 - 1 + j;
      dst[0] = dst[w + 1] = 0;
      if (y < 0 || y >= h) {
        std::fill(dst + 1, dst + 1 + w, 0.0f);
      } else {
        std::memcpy(dst + 1, in + (ch * h + y) * w, sizeof(float) * w);
      }
    }
  }
}

// What a task needs: the input (c planes), the weights packed by blocks of output channels
// ([block][ci][tap][channel of the block]), the bias (cout values) and the output.
struct ForwardArgs {
  const float* in;
  const float* packed;
  const float* bias;
  Conv3x3Shape s;
  float* out;
};

// kCo output channels × kXv vectors of kVw pixels of one row, from `band` (channel 0, the
// padded row above, at the tile's first pixel), held in registers over all taps.
template <int kVw, int kCo, int kXv>
DIPPAS_INLINE void ForwardTile(const float* band, int64_t cin, int64_t cstride, int64_t pw,
                               const float* wp, const float* bias, float* out, int64_t plane) {
  using V = typename Vec<kVw>::type;
  // The bias is added last, as oneDNN does: a sum started from it would carry its rounding
  // (relative to the bias) into the outputs, which the BatchNorm after every conv unit then
  // magnifies once it takes the mean, and with it the bias, away.
  V acc[kCo][kXv];
  for (int c = 0; c < kCo; ++c) {
    for (int v = 0; v < kXv; ++v) acc[c][v] = V{};
  }
  for (int64_t ci = 0; ci < cin; ++ci) {
    const float* src = band + ci * cstride;
    const float* wc = wp + ci * 9 * kCo;
#pragma GCC unroll 9
    for (int k = 0; k < 9; ++k) {
      V x[kXv];
      for (int v = 0; v < kXv; ++v) {
        std::memcpy(&x[v], src + (k / 3) * pw + k % 3 + v * kVw, sizeof(V));
      }
      const float* wk = wc + k * kCo;
      for (int c = 0; c < kCo; ++c) {
        for (int v = 0; v < kXv; ++v) acc[c][v] += wk[c] * x[v];
      }
    }
  }
  for (int c = 0; c < kCo; ++c) {
    for (int v = 0; v < kXv; ++v) {
      acc[c][v] += bias[c];
      std::memcpy(out + c * plane + v * kVw, &acc[c][v], sizeof(V));
    }
  }
}

// One output row of a block of kCo channels: tiles of kXv vectors, then single vectors.
template <int kVw, int kXv, int kCo>
DIPPAS_INLINE void ForwardRow(int64_t nb, const float* band, int64_t cin, int64_t cstride,
                              int64_t pw, const float* wp, const float* bias, float* out,
                              int64_t plane, int64_t width) {
  if constexpr (kCo > 1) {
    if (nb < kCo) {
      return ForwardRow<kVw, kXv, kCo - 1>(nb, band, cin, cstride, pw, wp, bias, out, plane, width);
    }
  }
  int64_t x0 = 0;
  for (; x0 + kVw * kXv <= width; x0 += kVw * kXv) {
    ForwardTile<kVw, kCo, kXv>(band + x0, cin, cstride, pw, wp, bias, out + x0, plane);
  }
  for (; x0 < width; x0 += kVw) {
    ForwardTile<kVw, kCo, 1>(band + x0, cin, cstride, pw, wp, bias, out + x0, plane);
  }
}

template <int kVw, int kCoMax, int kXv>
DIPPAS_INLINE void ForwardBands(const ForwardArgs& a, int64_t b0, int64_t b1) {
  const Conv3x3Shape& s = a.s;
  const int64_t pw = s.width + 2, plane = s.height * s.width;
  std::vector<float> buf(s.cin * (kBand + 2) * pw);
  for (int64_t b = b0; b < b1; ++b) {
    const int64_t r0 = b * kBand, rows = std::min(kBand, s.height - r0);
    FillBand(a.in, s.cin, s.height, s.width, r0, rows, buf.data());
    for (int64_t y = 0; y < rows; ++y) {
      for (int64_t co0 = 0; co0 < s.cout; co0 += kCoMax) {
        const int64_t nb = std::min<int64_t>(kCoMax, s.cout - co0);
        ForwardRow<kVw, kXv, kCoMax>(nb, buf.data() + y * pw, s.cin, (rows + 2) * pw, pw,
                                     a.packed + co0 * s.cin * 9, a.bias + co0,
                                     a.out + co0 * plane + (r0 + y) * s.width, plane, s.width);
      }
    }
  }
}

// The weights' gradient of one band: kCo output channels × 9 taps accumulated in registers over
// the band's pixels, then their lanes summed in order into part ([cout][cin][9]).
struct WeightArgs {
  const float* in;
  const float* grad_out;
  Conv3x3Shape s;
  float* partials;  // [band][cout][cin][9]
};

template <int kVw, int kCo>
DIPPAS_INLINE void WeightBlock(const float* gout, const float* band, int64_t rows, int64_t width,
                               int64_t pw, int64_t plane, float* part) {
  using V = typename Vec<kVw>::type;
  V acc[kCo][9];
  for (int c = 0; c < kCo; ++c) {
    for (int k = 0; k < 9; ++k) acc[c][k] = V{};
  }
  int64_t y = 0;
  // Two output rows at a time: their four input rows are loaded once for both.
  for (; y + 2 <= rows; y += 2) {
    const float* src = band + y * pw;
    const float* g0 = gout + y * width;
    for (int64_t x0 = 0; x0 < width; x0 += kVw) {
      V g[2][kCo];
      for (int c = 0; c < kCo; ++c) {
        std::memcpy(&g[0][c], g0 + c * plane + x0, sizeof(V));
        std::memcpy(&g[1][c], g0 + c * plane + width + x0, sizeof(V));
      }
#pragma GCC unroll 4
      for (int r = 0; r < 4; ++r) {
#pragma GCC unroll 3
        for (int kx = 0; kx < 3; ++kx) {
          V x;
          std::memcpy(&x, src + r * pw + kx + x0, sizeof(V));
          // Input row r is tap row r of output row y and tap row r − 1 of row y + 1.
          if (r < 3) {
            for (int c = 0; c < kCo; ++c) acc[c][r * 3 + kx] += g[0][c] * x;
          }
          if (r > 0) {
            for (int c = 0; c < kCo; ++c) acc[c][(r - 1) * 3 + kx] += g[1][c] * x;
          }
        }
      }
    }
  }
  for (; y < rows; ++y) {
    const float* src = band + y * pw;
    const float* g0 = gout + y * width;
    for (int64_t x0 = 0; x0 < width; x0 += kVw) {
      V g[kCo];
      for (int c = 0; c < kCo; ++c) std::memcpy(&g[c], g0 + c * plane + x0, sizeof(V));
#pragma GCC unroll 9
      for (int k = 0; k < 9; ++k) {
        V x;
        std::memcpy(&x, src + (k / 3) * pw + k % 3 + x0, sizeof(V));
        for (int c = 0; c < kCo; ++c) acc[c][k] += g[c] * x;
      }
    }
  }
  for (int c = 0; c < kCo; ++c) {
    for (int k = 0; k < 9; ++k) {
      float sum = 0;
      for (int l = 0; l < kVw; ++l) sum += acc[c][k][l];
      part[c * 9 + k] = sum;
    }
  }
}

template <int kVw, int kCo>
DIPPAS_INLINE void WeightBands(const WeightArgs& a, int64_t b0, int64_t b1) {
  const Conv3x3Shape& s = a.s;
  const int64_t pw = s.width + 2, plane = s.height * s.width;
  std::vector<float> buf(s.cin * (kBand + 2) * pw);
  for (int64_t b = b0; b < b1; ++b) {
    const int64_t r0 = b * kBand, rows = std::min(kBand, s.height - r0);
    FillBand(a.in, s.cin, s.height, s.width, r0, rows, buf.data());
    float* part = a.partials + b * s.cout * s.cin * 9;
    for (int64_t co = 0; co < s.cout;) {
      const bool full = co + kCo <= s.cout;
      for (int64_t ci = 0; ci < s.cin; ++ci) {
        const float* band = buf.data() + ci * (rows + 2) * pw;
        const float* gout = a.grad_out + co * plane + r0 * s.width;
        float block[kCo * 9];
        if (full) {
          WeightBlock<kVw, kCo>(gout, band, rows, s.width, pw, plane, block);
        } else {
          WeightBlock<kVw, 1>(gout, band, rows, s.width, pw, plane, block);
        }
        for (int c = 0; c < (full ? kCo : 1); ++c) {
          std::copy(block + c * 9, block + c * 9 + 9, part + ((co + c) * s.cin + ci) * 9);
        }
      }
      co += full ? kCo : 1;
    }
  }
}

using ForwardFn = void (*)(const ForwardArgs&, int64_t, int64_t);
using WeightFn = void (*)(const WeightArgs&, int64_t, int64_t);

struct Kernels {
  CpuLevel level;
  KernelId id;
  int64_t block;  // output channels per forward block
  ForwardFn forward;
  WeightFn weight;
};

void ForwardGeneric(const ForwardArgs& a, int64_t b0, int64_t b1) {
  ForwardBands<4, 4, 2>(a, b0, b1);
}
void WeightGeneric(const WeightArgs& a, int64_t b0, int64_t b1) { WeightBands<4, 1>(a, b0, b1); }

#if defined(__x86_64__) && defined(__GNUC__)
#define DIPPAS_CONV_X86 1
// 16 of AVX2's 16 registers: 4 channels × 2 vectors of 8 pixels, the loads beside them.
__attribute__((target("avx2,fma"))) void ForwardAvx2(const ForwardArgs& a, int64_t b0, int64_t b1) {
  ForwardBands<8, 4, 2>(a, b0, b1);
}
__attribute__((target("avx2,fma"))) void WeightAvx2(const WeightArgs& a, int64_t b0, int64_t b1) {
  WeightBands<8, 1>(a, b0, b1);
}
// AVX-512's 32 registers: 8 channels × 2 vectors of 16 pixels; 2 channels × 9 taps.
__attribute__((target("avx512f,fma"))) void ForwardAvx512(const ForwardArgs& a, int64_t b0,
                                                          int64_t b1) {
  ForwardBands<16, 8, 2>(a, b0, b1);
}
__attribute__((target("avx512f,fma"))) void WeightAvx512(const WeightArgs& a, int64_t b0,
                                                         int64_t b1) {
  WeightBands<16, 2>(a, b0, b1);
}
#endif

const Kernels kGeneric{CpuLevel::kGeneric, KernelId::kConv3x3Generic, 4, ForwardGeneric,
                       WeightGeneric};
#ifdef DIPPAS_CONV_X86
const Kernels kAvx2{CpuLevel::kAvx2, KernelId::kConv3x3Avx2, 4, ForwardAvx2, WeightAvx2};
const Kernels kAvx512{CpuLevel::kAvx512, KernelId::kConv3x3Avx512, 8, ForwardAvx512,
                      WeightAvx512};
#endif

const Kernels* OfLevel(CpuLevel level) {
#ifdef DIPPAS_CONV_X86
  if (level == CpuLevel::kAvx512) return &kAvx512;
  if (level == CpuLevel::kAvx2) return &kAvx2;
#endif
  (void)level;
  return &kGeneric;
}

// The dispatch level's kernels (DIPPAS_CPU_LEVEL caps it), unless SelectConv3x3Kernel chose
// others.
std::atomic<const Kernels*>& Current() {
  static std::atomic<const Kernels*> current{OfLevel(CpuDispatchLevel())};
  return current;
}

// The kernels read whole vectors of 16 floats along a row and the weights as packed here: a
// shape they were not written for would read past the arrays.
void Require(Conv3x3Shape s, const void* in, const void* w, const void* out, const char* what) {
  if (in == nullptr || w == nullptr || out == nullptr) {
    throw std::invalid_argument(std::string(what) + ": null array");
  }
  if (!Conv3x3Supported(s)) {
    throw std::invalid_argument(std::string(what) + ": shape " + std::to_string(s.cin) + " → " +
                                std::to_string(s.cout) + " channels, " +
                                std::to_string(s.height) + "×" + std::to_string(s.width) +
                                " not taken (channels and height ≥ 1, width a positive multiple "
                                "of 16)");
  }
}

// Below this many multiply-adds one thread does it all: starting threads would cost more.
constexpr int64_t kParallelWork = int64_t{1} << 20;

int ThreadsFor(Conv3x3Shape s, int threads) {
  return s.cin * s.cout * 9 * s.height * s.width >= kParallelWork ? std::max(threads, 1) : 1;
}

// w (cout, cin, 3, 3) into blocks of `block` output channels: [block][ci][tap][channel].
std::vector<float> Pack(const float* w, int64_t cout, int64_t cin, int64_t block) {
  std::vector<float> packed(cout * cin * 9);
  for (int64_t co0 = 0; co0 < cout; co0 += block) {
    const int64_t nb = std::min(block, cout - co0);
    float* dst = packed.data() + co0 * cin * 9;
    for (int64_t ci = 0; ci < cin; ++ci) {
      for (int64_t k = 0; k < 9; ++k) {
        for (int64_t c = 0; c < nb; ++c)
          dst[(ci * 9 + k) * nb + c] = w[((co0 + c) * cin + ci) * 9 + k];
      }
    }
  }
  return packed;
}

int64_t Bands(Conv3x3Shape s) { return (s.height + kBand - 1) / kBand; }

}  // namespace

bool Conv3x3Supported(Conv3x3Shape s) {
  return s.cin > 0 && s.cout > 0 && s.height > 0 && s.width > 0 && s.width % 16 == 0;
}

void Conv3x3Forward(const float* in, const float* w, const float* bias, Conv3x3Shape s, float* out,
                    int threads) {
  Require(s, in, w, out, "Conv3x3Forward");
  const Kernels* k = Current().load();
  CountKernel(k->id);
  const auto packed = Pack(w, s.cout, s.cin, k->block);
  std::vector<float> zeros;
  if (bias == nullptr) {
    zeros.assign(s.cout, 0.0f);
    bias = zeros.data();
  }
  const ForwardArgs args{in, packed.data(), bias, s, out};
  ParallelFor(0, Bands(s), 1, ThreadsFor(s, threads),
              [&](int64_t b0, int64_t b1) { k->forward(args, b0, b1); });
}

void Conv3x3BackwardInput(const float* grad_out, const float* w, Conv3x3Shape s, float* grad_in,
                          int threads) {
  Require(s, grad_out, w, grad_in, "Conv3x3BackwardInput");
  // wt[ci, co, k] = w[co, ci, 8 − k]: transposed, turned by 180°.
  std::vector<float> wt(s.cout * s.cin * 9);
  for (int64_t co = 0; co < s.cout; ++co) {
    for (int64_t ci = 0; ci < s.cin; ++ci) {
      for (int64_t k = 0; k < 9; ++k)
        wt[(ci * s.cout + co) * 9 + k] = w[(co * s.cin + ci) * 9 + 8 - k];
    }
  }
  Conv3x3Forward(grad_out, wt.data(), nullptr, {s.cout, s.cin, s.height, s.width}, grad_in,
                 threads);
}

void Conv3x3BackwardWeight(const float* in, const float* grad_out, Conv3x3Shape s, float* grad_w,
                           int threads) {
  Require(s, in, grad_out, grad_w, "Conv3x3BackwardWeight");
  const Kernels* k = Current().load();
  CountKernel(k->id);
  const int64_t bands = Bands(s), n = s.cout * s.cin * 9;
  std::vector<float> partials(bands * n);
  const WeightArgs args{in, grad_out, s, partials.data()};
  ParallelFor(0, bands, 1, ThreadsFor(s, threads),
              [&](int64_t b0, int64_t b1) { k->weight(args, b0, b1); });
  // The bands in order, in double.
  std::vector<double> sum(n, 0.0);
  for (int64_t b = 0; b < bands; ++b) {
    const float* part = partials.data() + b * n;
    for (int64_t i = 0; i < n; ++i) sum[i] += part[i];
  }
  for (int64_t i = 0; i < n; ++i) grad_w[i] = static_cast<float>(sum[i]);
}

const char* Conv3x3Kernel() { return CpuLevelName(Current().load()->level); }

bool SelectConv3x3Kernel(const std::string& name) {
  const auto level = ParseCpuLevel(name);
  if (!level || !CpuHas(*level) || OfLevel(*level)->level != *level) return false;
  Current().store(OfLevel(*level));
  return true;
}

}  // namespace dippas
