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
double FullFromHalvesCorrelation(double r);

}  // namespace dippas
