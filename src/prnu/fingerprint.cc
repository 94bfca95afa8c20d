#include "dippas/prnu/fingerprint.h"

#include <stdexcept>

namespace dippas {

torch::Tensor SaturationMap(const torch::Tensor& image) {
  auto x = image.to(torch::kFloat32);
  auto ones = torch::ones_like(x);
  if (x.max().item<float>() < 250.0f) return ones;
  // A pixel "shares its value" when one of its four (wrapping) neighbours equals it.
  auto shares = (x == torch::roll(x, {1}, {-1})) | (x == torch::roll(x, {-1}, {-1})) |
                (x == torch::roll(x, {1}, {-2})) | (x == torch::roll(x, {-1}, {-2}));
  auto channel_max = x.amax({-2, -1}, /*keepdim=*/true);
  auto saturated = (x == channel_max) & shares & (channel_max > 250.0f);
  return torch::where(saturated, torch::zeros_like(x), ones);
}

torch::Tensor IntensityScale(const torch::Tensor& image) {
  auto x = image.to(torch::kFloat64);
  constexpr double kT = 252.0, kV = 6.0;
  return torch::where(x < kT, x / kT, torch::exp(-(x - kT).square() / kV));
}

void FingerprintAccumulator::Add(const torch::Tensor& image) {
  if (image.dim() != 3) throw std::invalid_argument("fingerprint: expected a (C,H,W) image");
  auto x = image.to(torch::kFloat32);
  if (count_ > 0 && x.sizes() != num_.sizes()) {
    throw std::invalid_argument("fingerprint: image size differs from the first image");
  }
  auto noise = WaveletNoise(x, options_).to(torch::kFloat64);
  auto xd = x.to(torch::kFloat64);
  auto num = noise * xd / 255.0;
  auto den = (IntensityScale(xd) * SaturationMap(x).to(torch::kFloat64)).square();
  if (count_ == 0) {
    num_ = num;
    den_ = den;
  } else {
    num_.add_(num);
    den_.add_(den);
  }
  ++count_;
}

torch::Tensor FingerprintAccumulator::Finish() const {
  if (count_ == 0) throw std::invalid_argument("fingerprint: no images");
  auto k = (num_ / (den_ + 1.0)).to(torch::kFloat32);
  k = ToGray(k);
  k = ZeroMeanTotal(k);
  return WienerDft(k);
}

}  // namespace dippas
