// A fingerprint estimate's quality (plain C++: `dippas detect`'s side reads it too).
#pragma once

#include <cmath>
#include <cstdint>

namespace dippas {

// How good an estimate K is, from the agreement of the two halves of its flat-fields (the odd
// and the even shots): K_A and K_B estimate the same pattern with independent errors, so their
// correlation r is the estimate's reliability at N/2 shots, and the whole estimate correlates with
// the camera's true pattern at ρ = √(2r/(1+r)) (Spearman–Brown). An upper bound: what all the
// shots share besides the PRNU (JPEG's quantization of a flat scene, fixed-pattern noise) agrees
// between the halves too and counts as the camera's.
struct FingerprintQuality {
  int64_t images = 0;        // flat-fields N
  double halves_corr = NAN;  // r = corr(K_A, K_B); NaN below 2 images
  double true_corr = NAN;    // ρ, estimated correlation of K with the camera's pattern
};
// ρ from r: √(2r/(1+r)), 0 for r ≤ 0.
inline double FullFromHalvesCorrelation(double r) { return r > 0 ? std::sqrt(2 * r / (1 + r)) : 0.0; }

// The flat-fields a fingerprint would need for ρ ≈ `target`, from its measured quality: the
// halves' r at N/2 shots gives the per-shot signal-to-error ratio (errors fall as 1/N). 0 when
// the quality is unknown.
inline int64_t FlatFieldsFor(const FingerprintQuality& q, double target) {
  const double r = q.halves_corr;
  if (!(r > 0 && r < 1) || q.images < 2 || !(target > 0 && target < 1)) return 0;
  const double per_shot = 2 * r / (static_cast<double>(q.images) * (1 - r));  // signal/error
  const double t2 = target * target;
  return static_cast<int64_t>(std::ceil(t2 / ((1 - t2) * per_shot)));
}

}  // namespace dippas
