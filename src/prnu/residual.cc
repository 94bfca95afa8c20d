#include "dippas/prnu/residual.h"

#include <ATen/Parallel.h>
#include <torch/fft.h>

#include "dippas/prnu/wavelet.h"
#include "dippas/util/math_mode.h"
#include "dippas/util/parallel.h"
#include "dippas/kernels/cpu/wavelet.h"

namespace dippas {
namespace {

// Zero-padded cumulative sum along `dim`: one leading zero and 4 samples of
// padding each side, so that Box() can take windows up to 9 wide.
torch::Tensor PaddedCumsum(const torch::Tensor& x, int64_t dim) {
  std::vector<int64_t> pad(static_cast<size_t>(2 * x.dim()), 0);
  // constant_pad_nd lists dims from the last: (last_lo, last_hi, prev_lo, …).
  const size_t slot = static_cast<size_t>(2 * (x.dim() - 1 - (dim < 0 ? dim + x.dim() : dim)));
  pad[slot] = 5;
  pad[slot + 1] = 4;
  return torch::constant_pad_nd(x, pad).cumsum(dim);
}

// Sum over a window of half-width h (w = 2h+1) with zero padding:
// S[i] = C[i + h + 5] − C[i − h + 4].
torch::Tensor Box(const torch::Tensor& c, int64_t dim, int64_t h, int64_t n) {
  return c.narrow(dim, 5 + h, n) - c.narrow(dim, 4 - h, n);
}

}  // namespace

torch::Tensor WienerAdaptive(const torch::Tensor& x, const torch::Tensor& noise_var) {
  // Box means of x² over w×w windows, w = 3,5,7,9 (zero padding, divisor w²),
  // from cumulative sums in double: a few passes for all four windows.
  const int64_t h = x.size(-2), w = x.size(-1);
  const auto rows = PaddedCumsum(x.to(torch::kFloat64).square(), -2);
  torch::Tensor min_energy;
  for (int64_t half = 1; half <= 4; ++half) {
    const double side = static_cast<double>(2 * half + 1);
    auto e = Box(PaddedCumsum(Box(rows, -2, half, h), -1), -1, half, w) / (side * side);
    min_energy = min_energy.defined() ? torch::minimum(min_energy, e) : e;
  }
  // min_w max(E_w − σ², 0) = max(min_w E_w − σ², 0)
  auto v = (min_energy.to(x.scalar_type()) - noise_var).clamp_min(0.0);
  return x * noise_var / (v + noise_var);
}

torch::Tensor WaveletNoise(const torch::Tensor& x, const ResidualOptions& options) {
  if (!x.device().is_cpu()) return WaveletNoiseTensor(x, options);
  // CPU: one plain-loop kernel per plane, planes in parallel.
  const auto h = x.size(-2), w = x.size(-1);
  auto in = x.to(torch::kFloat32).contiguous().view({-1, h, w});
  auto out = torch::empty_like(in);
  const double var = options.sigma * options.sigma;
  const float* src = in.data_ptr<float>();
  float* dst = out.data_ptr<float>();
  ParallelFor(0, in.size(0), 1, at::get_num_threads(), [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      cpu::WaveletNoisePlane(src + p * h * w, h, w, var, options.levels, dst + p * h * w);
    }
  });
  return out.view(x.sizes()).to(x.scalar_type());
}

torch::Tensor WaveletNoiseTensor(const torch::Tensor& x, const ResidualOptions& options) {
  const auto h = x.size(-2), w = x.size(-1);
  const auto var = torch::full({}, options.sigma * options.sigma, x.options());
  auto dec = Wavedec2(x, options.levels);
  dec.approx = torch::zeros_like(dec.approx);
  for (auto& bands : dec.details) {
    // The three bands of a level share a shape: filter them as one batch.
    auto f = WienerAdaptive(torch::stack({bands[0], bands[1], bands[2]}), var);
    for (int64_t b = 0; b < 3; ++b) bands[static_cast<size_t>(b)] = f[b];
  }
  return Waverec2(dec).slice(-2, 0, h).slice(-1, 0, w).contiguous();
}

torch::Tensor ToGray(const torch::Tensor& x) {
  const auto c = x.size(-3);
  if (c == 1) return x.select(-3, 0);
  TORCH_CHECK(c == 3, "expected 1 or 3 channels, got ", c);
  return x.select(-3, 0) * kGrayWeights[0] + x.select(-3, 1) * kGrayWeights[1] + x.select(-3, 2) * kGrayWeights[2];
}

torch::Tensor ZeroMeanTotal(const torch::Tensor& x) {
  // In double, rounded once: the result no longer depends on how a library sums floats, so the
  // LibTorch-free detect (prnu/detection_cpu.h) gets the same values.
  auto out = x.to(torch::kFloat64, /*non_blocking=*/false, /*copy=*/true);
  for (int64_t r0 = 0; r0 < 2; ++r0) {
    for (int64_t c0 = 0; c0 < 2; ++c0) {
      auto sub = out.slice(-2, r0, torch::indexing::None, 2).slice(-1, c0, torch::indexing::None, 2);
      if (sub.numel() == 0) continue;
      auto z = sub - sub.mean({-2, -1}, /*keepdim=*/true);
      z = z - z.mean(-1, true);  // row means
      z = z - z.mean(-2, true);  // column means
      sub.copy_(z);
    }
  }
  return out.to(x.scalar_type());
}

torch::Tensor WienerDft(const torch::Tensor& x) {
  if (!x.device().is_cpu()) return WienerDftTensor(x);
  const auto h = x.size(-2), w = x.size(-1);
  auto sigma = x.to(torch::kFloat64).flatten(-2).std(-1, /*unbiased=*/true);
  {
    // F·M'/M = F·σ²/(v+σ²): compute that gain directly (where M = 0, F = 0 too), in single
    // precision; the DFTs in double (as numpy's), so that any FFT library gives the same
    // float32 result (the LibTorch-free detect uses OpenCV's: prnu/detection_cpu.h).
    auto f = torch::fft::fft2(x.to(torch::kFloat64));
    auto gain = (f.abs() / std::sqrt(static_cast<double>(h * w))).to(torch::kFloat32).contiguous();
    auto planes = gain.view({-1, h, w});
    auto var = sigma.square().flatten().to(torch::kFloat64).contiguous();
    const double* pv = var.data_ptr<double>();
    float* pg = gain.data_ptr<float>();
    ParallelFor(0, planes.size(0), 1, at::get_num_threads(), [&](int64_t begin, int64_t end) {
      for (int64_t p = begin; p < end; ++p) {
        cpu::WienerGainPlane(pg + p * h * w, h, w, pv[p]);
      }
    });
    return torch::real(torch::fft::ifft2(f * gain.to(torch::kFloat64))).to(x.scalar_type());
  }
}

torch::Tensor WienerDftTensor(const torch::Tensor& x) {
  const auto h = x.size(-2), w = x.size(-1);
  auto xd = x.to(torch::kFloat64);
  // σ² as the variance itself, not std², whose square root has an infinite slope at 0 (a flat
  // plane) and would make the gradient NaN.
  auto var = xd.flatten(-2).var(-1, /*unbiased=*/true).unsqueeze(-1).unsqueeze(-1);
  auto f = torch::fft::fft2(xd);
  auto mag = f.abs() / std::sqrt(static_cast<double>(h * w));
  // A flat plane (σ² = 0) has a zero output. σ² = 1 stands in for its filter so that no 0/0
  // reaches the value or the gradient (NaN there would poison a network trained through it);
  // the plane is zeroed below with the zero-magnitude frequencies.
  const auto flat = var == 0;
  auto mag_noise = WienerAdaptive(mag, torch::where(flat, torch::ones_like(var), var));
  auto zero = torch::logical_or(mag == 0, flat);
  mag = torch::where(zero, torch::ones_like(mag), mag);
  mag_noise = torch::where(zero, torch::zeros_like(mag_noise), mag_noise);
  return torch::real(torch::fft::ifft2(f * (mag_noise / mag))).to(x.scalar_type());
}

torch::Tensor Residual(const torch::Tensor& image, const ResidualOptions& options) {
  TORCH_CHECK(image.dim() == 3 || image.dim() == 4, "Residual expects (C,H,W) or (N,C,H,W)");
  // The whole residual in full float32/float64 on a GPU (no TF32), whatever the caller allows.
  const NoTf32Guard fp32(!image.is_cpu());
  auto x = image.to(torch::kFloat32);
  auto w = WaveletNoise(x, options);
  w = ToGray(w);
  w = ZeroMeanTotal(w);
  return WienerDft(w);
}

namespace {

// ZeroMeanTotal without writes into views, which autograd cannot follow: the four 2×2
// sub-lattices as one (…, 2, 2, H/2, W/2) tensor (zero-padded to even sides, the padding kept
// at zero by a mask and left out of every mean's count).
torch::Tensor ZeroMeanTotalFunctional(const torch::Tensor& x) {
  const int64_t h = x.size(-2), w = x.size(-1), hh = (h + 1) / 2, wh = (w + 1) / 2;
  const auto lead = x.sizes().slice(0, x.dim() - 2).vec();
  auto s = torch::constant_pad_nd(x, {0, 2 * wh - w, 0, 2 * hh - h});
  auto shape = lead;
  for (int64_t d : {hh, int64_t{2}, wh, int64_t{2}}) shape.push_back(d);
  const int64_t n = static_cast<int64_t>(lead.size());
  s = s.reshape(shape).movedim(n + 1, n).movedim(n + 3, n + 1);  // (…, r0, c0, H/2, W/2)
  auto opts = x.options().requires_grad(false);
  // Rows of sub-lattice r0: ⌈(h − r0)/2⌉; columns of c0: ⌈(w − c0)/2⌉.
  auto row_ok = torch::arange(hh, opts).unsqueeze(0) * 2 + torch::arange(2, opts).unsqueeze(1) < h;
  auto col_ok = torch::arange(wh, opts).unsqueeze(0) * 2 + torch::arange(2, opts).unsqueeze(1) < w;
  auto mask = (row_ok.view({2, 1, hh, 1}) * col_ok.view({1, 2, 1, wh})).to(x.scalar_type());
  auto rows = row_ok.sum(-1).to(x.scalar_type()).view({2, 1, 1, 1});
  auto cols = col_ok.sum(-1).to(x.scalar_type()).view({1, 2, 1, 1});
  auto z = (s - s.sum({-2, -1}, true) / (rows * cols)) * mask;
  z = (z - z.sum(-1, true) / cols) * mask;  // row means
  z = (z - z.sum(-2, true) / rows) * mask;  // column means
  z = z.movedim(n + 1, n + 3).movedim(n, n + 1);
  auto back = lead;
  back.push_back(2 * hh);
  back.push_back(2 * wh);
  return z.reshape(back).slice(-2, 0, h).slice(-1, 0, w);
}

}  // namespace

torch::Tensor ResidualTensor(const torch::Tensor& image, const ResidualOptions& options) {
  TORCH_CHECK(image.dim() == 3 || image.dim() == 4, "ResidualTensor expects (C,H,W) or (N,C,H,W)");
  const NoTf32Guard fp32(!image.is_cpu());
  auto x = image.scalar_type() == torch::kFloat64 ? image : image.to(torch::kFloat32);
  return WienerDftTensor(ZeroMeanTotalFunctional(ToGray(WaveletNoiseTensor(x, options))));
}

}  // namespace dippas
