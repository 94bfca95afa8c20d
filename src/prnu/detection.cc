#include "dippas/prnu/detection.h"

#include <torch/fft.h>

#include <cmath>
#include <limits>

namespace dippas {

torch::Tensor Ncc(const torch::Tensor& w, const torch::Tensor& gray, const torch::Tensor& k) {
  auto wd = w.to(torch::kFloat64);
  auto b = gray.to(torch::kFloat64) * k.to(torch::kFloat64);
  auto num = (wd * b).sum({-2, -1});
  auto den = wd.square().sum({-2, -1}).sqrt() * b.square().sum({-2, -1}).sqrt();
  return torch::where(den > 0, num / den, torch::full_like(num, std::numeric_limits<double>::quiet_NaN()));
}

torch::Tensor PceSpectrum(const torch::Tensor& w) {
  auto wd = w.to(torch::kFloat64);
  return torch::fft::fft2(wd - wd.mean());
}

PceResult PceFromSpectrum(const torch::Tensor& w_spectrum, const torch::Tensor& b, const PceOptions& options) {
  auto bd = b.to(torch::kFloat64);
  const int64_t h = bd.size(-2), wd = bd.size(-1);
  auto cc = torch::real(torch::fft::ifft2(w_spectrum * torch::conj(torch::fft::fft2(bd - bd.mean())))).cpu();
  auto acc = cc.accessor<double, 2>();
  PceResult r;
  r.peak = acc[0][0];
  const int64_t rad = options.search_radius;
  for (int64_t dr = -rad; dr <= rad; ++dr) {
    for (int64_t dc = -rad; dc <= rad; ++dc) {
      const double v = acc[((dr % h) + h) % h][((dc % wd) + wd) % wd];
      if (v > r.peak) {
        r.peak = v;
        r.peak_row = dr;
        r.peak_col = dc;
      }
    }
  }
  // Energy: mean of C² outside the (wrapping) neighbourhood of the peak.
  const int64_t half = options.neighborhood / 2;
  auto sq = cc.square();
  auto row_in = torch::zeros({h}, torch::kBool), col_in = torch::zeros({wd}, torch::kBool);
  for (int64_t d = -half; d <= half; ++d) {
    row_in[(((r.peak_row + d) % h) + h) % h] = true;
    col_in[(((r.peak_col + d) % wd) + wd) % wd] = true;
  }
  auto excluded = row_in.unsqueeze(1) & col_in.unsqueeze(0);
  const double n_out = static_cast<double>(h * wd) - excluded.sum().item<double>();
  const double energy = sq.masked_fill(excluded, 0.0).sum().item<double>() / n_out;
  r.pce = (r.peak >= 0 ? 1.0 : -1.0) * r.peak * r.peak / energy;
  return r;
}

PceResult Pce(const torch::Tensor& w, const torch::Tensor& b, const PceOptions& options) {
  return PceFromSpectrum(PceSpectrum(w), b, options);
}

}  // namespace dippas
