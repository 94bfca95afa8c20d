// 2-D Daubechies-4 discrete wavelet transform, bit-compatible in layout with
// PyWavelets' wavedec2/waverec2 in 'symmetric' mode (SPEC §2.1a).
#pragma once

#include <torch/types.h>

#include <array>
#include <vector>

namespace dippas {

// One level's detail bands (cH, cV, cD): cH is high-pass along rows (axis -2)
// and low-pass along columns, cV the opposite, cD high-pass along both.
using DetailBands = std::array<torch::Tensor, 3>;

// wavedec2's result: the coarsest approximation, then details coarsest first.
struct WaveletDecomposition {
  torch::Tensor approx;
  std::vector<DetailBands> details;
};

// One-level 1-D transform along the last dimension: returns {cA, cD}, each of
// length floor((n + 7) / 2), half-sample symmetric extension.
std::array<torch::Tensor, 2> Dwt1d(const torch::Tensor& x);

// Inverse of Dwt1d along the last dimension: length 2·n − 6.
torch::Tensor Idwt1d(const torch::Tensor& approx, const torch::Tensor& detail);

// Multi-level 2-D decomposition over the last two dimensions of x (any leading
// batch dimensions).
WaveletDecomposition Wavedec2(const torch::Tensor& x, int levels);

// Reconstruction; like PyWavelets, an approximation one sample larger than the
// next level's details is trimmed. The result may exceed the original size by
// one sample per side: crop it.
torch::Tensor Waverec2(const WaveletDecomposition& decomposition);

}  // namespace dippas
