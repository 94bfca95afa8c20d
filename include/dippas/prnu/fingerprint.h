// Camera fingerprint K from flat-field images (SPEC §3, maximum-likelihood
// estimate of Chen et al. 2008), accumulated one image at a time so that
// memory does not grow with the number of images.
#pragma once

#include <torch/types.h>

#include <cmath>
#include <cstdint>

#include "dippas/prnu/fingerprint_quality.h"
#include "dippas/prnu/residual.h"

namespace dippas {

// Saturation map of SPEC §3 for an image (C,H,W) on 0..255: 1 = usable pixel.
torch::Tensor SaturationMap(const torch::Tensor& image);

// Intensity weight of SPEC §3: x/252 below 252, exp(−(x−252)²/6) above.
torch::Tensor IntensityScale(const torch::Tensor& image);

class FingerprintAccumulator {
 public:
  explicit FingerprintAccumulator(ResidualOptions options = {}) : options_(options) {}

  // Adds one flat-field (C,H,W), values 0..255. All images must share C,H,W
  // (throws std::invalid_argument otherwise).
  void Add(const torch::Tensor& image);

  // Number of images added so far.
  int64_t count() const { return count_; }

  // K (H,W), float32: gray, zero-mean and Wiener-DFT of num/(den+1).
  torch::Tensor Finish() const;

  // The estimate's quality from its two halves (above); costs two more Finish()-like passes.
  FingerprintQuality Quality() const;

 private:
  static torch::Tensor Estimate(const torch::Tensor& num, const torch::Tensor& den);

  ResidualOptions options_;
  torch::Tensor num_;  // Σ noise_c(I)·I_c/255, (C,H,W), float64
  torch::Tensor den_;  // Σ (scale·sat)², (C,H,W), float64
  // The same sums over the even-numbered images (0, 2, …): half A; half B is the rest.
  torch::Tensor num_even_, den_even_;
  int64_t count_ = 0;
};

}  // namespace dippas
