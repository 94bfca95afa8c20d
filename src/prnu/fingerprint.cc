#include "dippas/prnu/fingerprint.h"

#include <ATen/Parallel.h>

#include <cmath>
#include <stdexcept>

#include "dippas/util/parallel.h"

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
  auto noise = WaveletNoise(x, options_);
  auto sat = SaturationMap(x);
  if (count_ == 0) {
    num_ = torch::zeros(x.sizes(), x.options().dtype(torch::kFloat64));
    den_ = torch::zeros_like(num_);
    num_even_ = torch::zeros_like(num_);
    den_even_ = torch::zeros_like(num_);
  }
  const bool even = count_ % 2 == 0;
  if (x.device().is_cpu()) {
    // One fused pass: the tensor form below costs ~10 temporaries per image.
    auto xc = x.contiguous(), nc = noise.contiguous(), sc = sat.contiguous();
    const float* px = xc.data_ptr<float>();
    const float* pn = nc.data_ptr<float>();
    const float* ps = sc.data_ptr<float>();
    double* num = num_.data_ptr<double>();
    double* den = den_.data_ptr<double>();
    double* num_even = num_even_.data_ptr<double>();
    double* den_even = den_even_.data_ptr<double>();
    ParallelFor(0, xc.numel(), 65536, at::get_num_threads(), [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        const double v = px[i];
        const double a = static_cast<double>(pn[i]) * v / 255.0;
        num[i] += a;
        const double scale = v < 252.0 ? v / 252.0 : std::exp(-(v - 252.0) * (v - 252.0) / 6.0);
        const double w = scale * ps[i];
        den[i] += w * w;
        if (even) {
          num_even[i] += a;
          den_even[i] += w * w;
        }
      }
    });
  } else {
    auto xd = x.to(torch::kFloat64);
    const auto a = noise.to(torch::kFloat64) * xd / 255.0;
    const auto w2 = (IntensityScale(xd) * sat.to(torch::kFloat64)).square();
    num_.add_(a);
    den_.add_(w2);
    if (even) {
      num_even_.add_(a);
      den_even_.add_(w2);
    }
  }
  ++count_;
}

torch::Tensor FingerprintAccumulator::Estimate(const torch::Tensor& num, const torch::Tensor& den) {
  auto k = (num / (den + 1.0)).to(torch::kFloat32);
  k = ToGray(k);
  k = ZeroMeanTotal(k);
  return WienerDft(k);
}

torch::Tensor FingerprintAccumulator::Finish() const {
  if (count_ == 0) throw std::invalid_argument("fingerprint: no images");
  return Estimate(num_, den_);
}

FingerprintQuality FingerprintAccumulator::Quality() const {
  FingerprintQuality q;
  q.images = count_;
  if (count_ < 2) return q;
  const auto a = Estimate(num_even_, den_even_).to(torch::kFloat64).flatten();
  const auto b = Estimate(num_ - num_even_, den_ - den_even_).to(torch::kFloat64).flatten();
  const auto ac = a - a.mean(), bc = b - b.mean();
  const double norm = std::sqrt((ac * ac).sum().item<double>() * (bc * bc).sum().item<double>());
  q.halves_corr = norm > 0 ? (ac * bc).sum().item<double>() / norm : NAN;
  q.true_corr = std::isnan(q.halves_corr) ? NAN : FullFromHalvesCorrelation(q.halves_corr);
  return q;
}

}  // namespace dippas
