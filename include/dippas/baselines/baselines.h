// Non-DIP anonymization baselines, for comparison with DIPPAS:
// - PRNU-aware fingerprint subtraction (Zeng et al., ICIP 2015 idea):
//   Î_c = I_c·(1 − α·K) per channel, α chosen so that NCC(residual(Î), gray(Î)·K) ≈ 0;
// - "simple denoising": Î = I − wavelet noise per channel (SPEC §2 stage 1), which the
//   DIPPAS paper shows does not remove the fingerprint.
// Images are (C,H,W) with C = 1 or 3 on the 0..255 scale; outputs are rounded to 8 bits
// (values 0..255 with integer values, float32, CPU), as the written PNG holds them.
#pragma once

#include <torch/types.h>

#include <cstdint>

namespace dippas {

// Rounds half away from zero (like the image writer) after clamping to 0..255.
torch::Tensor Quantize8(const torch::Tensor& image);

struct SubtractOptions {
  double sigma = 3.0;            // residual σ (SPEC §2) for the NCC
  double start = 1e-3;           // first α tried, as a fraction of 1/max|K|
  double max_strength = 0.5;     // upper bound of α·max|K|, so that 1 − α·K stays > 0
  int64_t bisection_steps = 30;  // steps on the sign of NCC once a bracket is found
  double tolerance = 1e-5;       // ...or fewer, once the bracket is this narrow (relative)
};

struct SubtractResult {
  torch::Tensor image;      // Î (C,H,W), 8-bit values
  double alpha = 0;         // the α of Î (0: nothing to remove)
  double ncc = 0;           // NCC of Î against K (NaN when undefined)
  double ncc_before = 0;    // NCC of the 8-bit original against K (α = 0)
  int64_t evaluations = 0;  // NCCs computed (residuals of candidate images)
};

// NCC(residual(Q(I·(1 − α·K))), gray(·)·K) as a function of α, with Q the 8-bit
// rounding; α ≥ 0 by bisection on its sign: α = 0 when NCC(0) ≤ 0 (or is undefined);
// otherwise α doubles from start/max|K| until NCC ≤ 0 or the bound max_strength/max|K|
// is reached, then bisects. Returns the evaluated α with the smallest |NCC|.
// k: (H,W), any scale. Throws std::invalid_argument on a size mismatch or K = 0.
SubtractResult SubtractFingerprint(const torch::Tensor& image, const torch::Tensor& k,
                                   const SubtractOptions& options = {});

// Î = Q(I − WaveletNoise(I)) per channel (SPEC §2 stage 1 with this σ).
torch::Tensor DenoiseBaseline(const torch::Tensor& image, double sigma);

}  // namespace dippas
