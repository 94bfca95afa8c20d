// Noise residual W = residual(I, σ) (SPEC §2): wavelet denoising per channel,
// gray, zero-mean per 2×2 sub-lattice, Wiener filter in the DFT domain.
// Tensors are channel-first: an image is (C,H,W) or a batch (N,C,H,W), values
// on the 0..255 scale, C = 1 or 3; any device.
#pragma once

#include <torch/types.h>

namespace dippas {

// Options shared by every PRNU computation.
struct ResidualOptions {
  double sigma = 3.0;  // σ of the wavelet noise model (SPEC §8 "sigma")
  int levels = 4;      // wavelet decomposition levels
};

// Grayscale weights of SPEC §1 (R, G, B).
constexpr double kGrayWeights[3] = {0.29893602, 0.58704307, 0.11402090};

// Adaptive Wiener filter on the last two dims: windows 3,5,7,9 with zero
// padding (divisor w²), x·σ²/(v+σ²). `noise_var` broadcasts against x
// (a scalar, or shape (N,1,1) for one value per batch item).
torch::Tensor WienerAdaptive(const torch::Tensor& x, const torch::Tensor& noise_var);

// Stage 1: per-channel wavelet noise of x (..., H, W), same shape. On a CPU
// tensor this runs plain-loop kernels; elsewhere, WaveletNoiseTensor.
torch::Tensor WaveletNoise(const torch::Tensor& x, const ResidualOptions& options);

// Stage 1 written with tensor operations only (any device, batched).
torch::Tensor WaveletNoiseTensor(const torch::Tensor& x, const ResidualOptions& options);

// Stage 2: (..., C, H, W) → (..., H, W); C = 1 is returned as is.
torch::Tensor ToGray(const torch::Tensor& x);

// Stage 3: zero-mean on each 2×2 sub-lattice of (..., H, W): subtract the
// mean, the row means, then the column means (in double, rounded once).
torch::Tensor ZeroMeanTotal(const torch::Tensor& x);

// Stage 4: Wiener in the DFT domain with σ_w = sample std (ddof 1) of each
// (H,W) slice. CPU tensors take a fused path (DFTs in double, gain in single precision).
torch::Tensor WienerDft(const torch::Tensor& x);

// Stage 4 with tensor operations only, in double (any device, batched).
torch::Tensor WienerDftTensor(const torch::Tensor& x);

// The whole pipeline: (C,H,W) → (H,W) or (N,C,H,W) → (N,H,W), float32.
torch::Tensor Residual(const torch::Tensor& image, const ResidualOptions& options = {});

// The same pipeline in tensor operations only, differentiable (for a loss on W): float32 or
// float64 as given, any device. Agrees with Residual() to float32 rounding.
torch::Tensor ResidualTensor(const torch::Tensor& image, const ResidualOptions& options = {});

}  // namespace dippas
