#include "dippas/dip/prnu_loss.h"

#include <stdexcept>

namespace dippas {

torch::Tensor PrnuCorrelationLoss(const torch::Tensor& image, const torch::Tensor& pattern,
                                  int64_t block, const ResidualOptions& options) {
  if (image.dim() != 3 || image.size(0) != 3 || pattern.dim() != 2 ||
      pattern.size(0) != image.size(1) || pattern.size(1) != image.size(2)) {
    throw std::invalid_argument("PrnuCorrelationLoss: image (3,H,W) and pattern (H,W) differ");
  }
  if (block < 0) throw std::invalid_argument("PrnuCorrelationLoss: block must be >= 0");
  const int64_t h = image.size(1), w = image.size(2);
  auto r = ResidualTensor(image, options).to(torch::kFloat64);
  auto b = ToGray(image.to(torch::kFloat64)) * pattern.to(image.device(), torch::kFloat64);
  auto sums = torch::stack({r * b, r.square(), b.square()});
  if (block == 0) {
    sums = sums.sum({1, 2});
  } else {
    // Zero padding to whole blocks adds nothing to the sums (as in the assembly).
    const int64_t rows = (h + block - 1) / block, cols = (w + block - 1) / block;
    sums = torch::constant_pad_nd(sums, {0, cols * block - w, 0, rows * block - h})
               .reshape({3, rows, block, cols, block})
               .sum({2, 4});
  }
  // ρ² = (ΣW·GP)² / (ΣW² · Σ(GP)²): no square root, so no infinite slope where a sum is 0.
  auto den = sums[1] * sums[2];
  auto rho2 =
      torch::where(den > 0, sums[0].square() / den.clamp_min(1e-300), torch::zeros_like(den));
  return rho2.mean();
}

}  // namespace dippas
