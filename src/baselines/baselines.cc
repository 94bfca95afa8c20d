#include "dippas/baselines/baselines.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

#include "dippas/prnu/detection.h"
#include "dippas/prnu/residual.h"

namespace dippas {

torch::Tensor Quantize8(const torch::Tensor& image) {
  return torch::floor(image.to(torch::kFloat32).clamp(0, 255) + 0.5).clamp(0, 255);
}

namespace {

void CheckImage(const torch::Tensor& image) {
  if (image.dim() != 3 || (image.size(0) != 1 && image.size(0) != 3)) {
    throw std::invalid_argument("expected an image (C,H,W) with C = 1 or 3");
  }
}

}  // namespace

SubtractResult SubtractFingerprint(const torch::Tensor& image, const torch::Tensor& k,
                                   const SubtractOptions& options) {
  CheckImage(image);
  if (k.dim() != 2 || k.size(0) != image.size(1) || k.size(1) != image.size(2)) {
    throw std::invalid_argument("fingerprint size differs from the image's");
  }
  const auto img = image.to(torch::kFloat32).cpu();
  const auto kf = k.to(torch::kFloat32).cpu();
  const double kmax = kf.abs().max().item<double>();
  if (!(kmax > 0) || !std::isfinite(kmax)) {
    throw std::invalid_argument("fingerprint is all zeros or not finite");
  }
  ResidualOptions ro;
  ro.sigma = options.sigma;

  SubtractResult best;
  double best_abs = std::numeric_limits<double>::infinity();
  // NCC of the 8-bit image for α: what is written is what must not correlate.
  auto evaluate = [&](double alpha) {
    const auto candidate = Quantize8(img * (1.0 - alpha * kf));
    const double ncc = Ncc(Residual(candidate, ro), ToGray(candidate), kf).item<double>();
    ++best.evaluations;
    if (std::isfinite(ncc) && std::abs(ncc) < best_abs) {
      best_abs = std::abs(ncc);
      best.image = candidate;
      best.alpha = alpha;
      best.ncc = ncc;
    }
    return ncc;
  };

  const double ncc0 = evaluate(0.0);
  best.ncc_before = ncc0;
  if (!(ncc0 > 0)) {
    // Nothing to remove (or undefined): the 8-bit original.
    if (!best.image.defined()) {
      best.image = Quantize8(img);
      best.ncc = ncc0;
    }
    return best;
  }
  // Upper bracket: double α until the NCC changes sign or 1 − α·K would approach 0.
  const double alpha_max = options.max_strength / kmax;
  double lo = 0.0, hi = -1.0;
  for (double alpha = std::min(options.start / kmax, alpha_max);;
       alpha = std::min(2 * alpha, alpha_max)) {
    const double ncc = evaluate(alpha);
    if (ncc <= 0) {
      hi = alpha;
      break;
    }
    lo = alpha;
    if (alpha >= alpha_max) break;
  }
  if (hi < 0) return best;  // never crossed zero within the bound: the least correlated α
  for (int64_t step = 0; step < options.bisection_steps && best_abs > 0; ++step) {
    const double mid = 0.5 * (lo + hi);
    // Narrower brackets change a pixel's rounding here and there, not the NCC.
    if (hi - lo <= options.tolerance * hi || mid <= lo || mid >= hi) break;
    (evaluate(mid) > 0 ? lo : hi) = mid;
  }
  return best;
}

torch::Tensor DenoiseBaseline(const torch::Tensor& image, double sigma) {
  CheckImage(image);
  ResidualOptions ro;
  ro.sigma = sigma;
  const auto img = image.to(torch::kFloat32).cpu();
  return Quantize8(img - WaveletNoise(img, ro));
}

}  // namespace dippas
