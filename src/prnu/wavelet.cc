#include "dippas/prnu/wavelet.h"

#include <algorithm>

#include "dippas/util/math_mode.h"

namespace dippas {
namespace {

constexpr int64_t kTaps = 8;  // db4 filter length F

// PyWavelets' db4 decomposition low-pass filter; the other three follow from it
// by the quadrature-mirror relations.
constexpr double kDecLo[kTaps] = {-0.010597401785069032, 0.0328830116668852,   0.030841381835560764,
                                  -0.18703481171909309,  -0.027983769416859854, 0.6308807679298589,
                                  0.7148465705529157,    0.2303778133088965};

// Conv weights for analysis: reversed dec_lo / dec_hi, shape (2,1,F).
torch::Tensor AnalysisWeights(const torch::TensorOptions& opts) {
  auto w = torch::empty({2, 1, kTaps}, torch::kFloat64);
  auto a = w.accessor<double, 3>();
  for (int64_t j = 0; j < kTaps; ++j) {
    const double lo = kDecLo[j];
    // dec_hi[j] = (-1)^(j+1) · dec_lo[F−1−j]
    const double hi = ((j % 2) ? 1.0 : -1.0) * kDecLo[kTaps - 1 - j];
    a[0][0][kTaps - 1 - j] = lo;
    a[1][0][kTaps - 1 - j] = hi;
  }
  return w.to(opts);
}

// Transposed-conv weights for synthesis: rec_lo / rec_hi, shape (2,1,F).
torch::Tensor SynthesisWeights(const torch::TensorOptions& opts) {
  auto w = torch::empty({2, 1, kTaps}, torch::kFloat64);
  auto a = w.accessor<double, 3>();
  for (int64_t j = 0; j < kTaps; ++j) {
    a[0][0][j] = kDecLo[kTaps - 1 - j];                         // rec_lo = reversed dec_lo
    a[1][0][j] = ((j % 2) ? -1.0 : 1.0) * kDecLo[j];            // rec_hi[j] = (−1)^j · dec_lo[j]
  }
  return w.to(opts);
}

// Index of position m (may be out of range) under half-sample symmetric extension.
int64_t SymmetricIndex(int64_t m, int64_t n) {
  const int64_t period = 2 * n;
  m %= period;
  if (m < 0) m += period;
  return m < n ? m : period - 1 - m;
}

}  // namespace

std::array<torch::Tensor, 2> Dwt1d(const torch::Tensor& x) {
  const int64_t n = x.size(-1);
  const int64_t out_len = (n + kTaps - 1) / 2;
  // out[o] = Σ_j f[j]·x_ext[2o+1−j]: a strided correlation with the reversed
  // filter over x_ext starting at index −(F−2).
  const int64_t padded = 2 * out_len + kTaps - 2;
  const int64_t left = kTaps - 2, right = padded - left - n;
  torch::Tensor ext;
  if (n >= std::max(left, right)) {
    // Mirror slices are much cheaper than a gather for the usual sizes.
    ext = torch::cat({x.slice(-1, 0, left).flip(-1), x, x.slice(-1, n - right, n).flip(-1)}, -1);
  } else {
    std::vector<int64_t> idx(static_cast<size_t>(padded));
    for (int64_t m = 0; m < padded; ++m) idx[static_cast<size_t>(m)] = SymmetricIndex(m - left, n);
    auto index = torch::tensor(idx, torch::TensorOptions().dtype(torch::kLong).device(x.device()));
    ext = x.index_select(-1, index);
  }
  auto lead = x.sizes().vec();
  lead.pop_back();
  // TF32 would round the db4 taps (1e-4 agreement with prnu-python): full float32 on a GPU.
  const NoTf32Guard fp32(!x.is_cpu());
  auto y = torch::conv1d(ext.reshape({-1, 1, padded}), AnalysisWeights(x.options()), {}, /*stride=*/2);
  auto shape = lead;
  shape.push_back(out_len);
  return {y.select(1, 0).reshape(shape), y.select(1, 1).reshape(shape)};
}

torch::Tensor Idwt1d(const torch::Tensor& approx, const torch::Tensor& detail) {
  const int64_t n = approx.size(-1);
  auto lead = approx.sizes().vec();
  lead.pop_back();
  auto in = torch::stack({approx.reshape({-1, n}), detail.reshape({-1, n})}, 1);  // (M,2,n)
  // Full upsampled convolution, keeping the samples F−2 .. 2n−1 as PyWavelets does.
  const NoTf32Guard fp32(!approx.is_cpu());
  auto y = torch::conv_transpose1d(in, SynthesisWeights(approx.options()), {}, /*stride=*/2);
  y = y.slice(2, kTaps - 2, 2 * n);
  auto shape = lead;
  shape.push_back(2 * n - kTaps + 2);
  return y.reshape(shape);
}

WaveletDecomposition Wavedec2(const torch::Tensor& x, int levels) {
  WaveletDecomposition out;
  torch::Tensor a = x;
  std::vector<DetailBands> fine_first;
  for (int l = 0; l < levels; ++l) {
    auto rows = Dwt1d(a.transpose(-1, -2));  // along axis −2
    auto lo_r = rows[0].transpose(-1, -2), hi_r = rows[1].transpose(-1, -2);
    auto lo = Dwt1d(lo_r);  // along axis −1
    auto hi = Dwt1d(hi_r);
    a = lo[0];
    fine_first.push_back({hi[0], lo[1], hi[1]});  // cH = 'da', cV = 'ad', cD = 'dd'
  }
  out.approx = a;
  out.details.assign(fine_first.rbegin(), fine_first.rend());
  return out;
}

torch::Tensor Waverec2(const WaveletDecomposition& d) {
  torch::Tensor a = d.approx;
  for (const auto& bands : d.details) {
    const auto& ch = bands[0];
    a = a.slice(-2, 0, ch.size(-2)).slice(-1, 0, ch.size(-1));
    auto lo_r = Idwt1d(a, bands[1]);       // approx along rows: 'aa' + 'ad'
    auto hi_r = Idwt1d(bands[0], bands[2]);  // detail along rows: 'da' + 'dd'
    a = Idwt1d(lo_r.transpose(-1, -2), hi_r.transpose(-1, -2)).transpose(-1, -2);
  }
  return a;
}

}  // namespace dippas
