#include "dippas/prnu/residual.h"

#include <torch/fft.h>

#include "dippas/prnu/wavelet.h"

namespace dippas {
namespace {

// Box mean of width w along dim `dim` (−1 or −2) with zero padding, divisor w.
torch::Tensor BoxMean1d(const torch::Tensor& x4, int64_t w, bool rows) {
  const std::vector<int64_t> k = rows ? std::vector<int64_t>{w, 1} : std::vector<int64_t>{1, w};
  const std::vector<int64_t> p = rows ? std::vector<int64_t>{w / 2, 0} : std::vector<int64_t>{0, w / 2};
  return torch::avg_pool2d(x4, k, /*stride=*/{1, 1}, p, /*ceil_mode=*/false, /*count_include_pad=*/true);
}

}  // namespace

torch::Tensor WienerAdaptive(const torch::Tensor& x, const torch::Tensor& noise_var) {
  const auto h = x.size(-2), w = x.size(-1);
  auto energy = x.square().reshape({-1, 1, h, w});
  torch::Tensor min_energy;
  for (int64_t win : {3, 5, 7, 9}) {
    // A w×w box with divisor w² is the product of two 1-D boxes.
    auto e = BoxMean1d(BoxMean1d(energy, win, true), win, false);
    min_energy = min_energy.defined() ? torch::minimum(min_energy, e) : e;
  }
  // min_w max(E_w − σ², 0) = max(min_w E_w − σ², 0)
  auto v = (min_energy.reshape(x.sizes()) - noise_var).clamp_min(0.0);
  return x * noise_var / (v + noise_var);
}

torch::Tensor WaveletNoise(const torch::Tensor& x, const ResidualOptions& options) {
  const auto h = x.size(-2), w = x.size(-1);
  const auto var = torch::full({}, options.sigma * options.sigma, x.options());
  auto dec = Wavedec2(x, options.levels);
  dec.approx = torch::zeros_like(dec.approx);
  for (auto& bands : dec.details) {
    for (auto& band : bands) band = WienerAdaptive(band, var);
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
  auto out = x.clone();
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
  return out;
}

torch::Tensor WienerDft(const torch::Tensor& x) {
  const auto h = x.size(-2), w = x.size(-1);
  auto xd = x.to(torch::kFloat64);
  auto sigma = xd.flatten(-2).std(-1, /*unbiased=*/true).unsqueeze(-1).unsqueeze(-1);
  auto f = torch::fft::fft2(xd);
  auto mag = f.abs() / std::sqrt(static_cast<double>(h * w));
  auto mag_noise = WienerAdaptive(mag, sigma.square());
  auto zero = mag == 0;
  mag = torch::where(zero, torch::ones_like(mag), mag);
  mag_noise = torch::where(zero, torch::zeros_like(mag_noise), mag_noise);
  auto out = torch::real(torch::fft::ifft2(f * (mag_noise / mag)));
  return out.to(x.scalar_type());
}

torch::Tensor Residual(const torch::Tensor& image, const ResidualOptions& options) {
  TORCH_CHECK(image.dim() == 3 || image.dim() == 4, "Residual expects (C,H,W) or (N,C,H,W)");
  auto x = image.to(torch::kFloat32);
  auto w = WaveletNoise(x, options);
  w = ToGray(w);
  w = ZeroMeanTotal(w);
  return WienerDft(w);
}

}  // namespace dippas
