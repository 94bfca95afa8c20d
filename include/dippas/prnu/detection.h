// Detection statistics of SPEC §4: the paper's NCC and PCE.
#pragma once

#include <torch/types.h>

#include <optional>

#include "dippas/prnu/pce.h"

namespace dippas {

// NCC(W, G·K) = Σ W·G·K / (‖W‖·‖G·K‖) over the last two dims, no mean removal.
// Shapes broadcast: e.g. W (N,1,H,W), G (N,1,H,W), K (1,D,H,W) → (N,D).
// NaN where a norm is 0 (undefined).
torch::Tensor Ncc(const torch::Tensor& w, const torch::Tensor& gray, const torch::Tensor& k);

// PCE of W (H,W) against B = G·K (H,W) (Goljan et al., SPEC §4). Takes FFT(W − mean W)
// precomputed by PceSpectrum so that one residual serves many fingerprints.
torch::Tensor PceSpectrum(const torch::Tensor& w);
PceResult PceFromSpectrum(const torch::Tensor& w_spectrum, const torch::Tensor& b, const PceOptions& options = {});
PceResult Pce(const torch::Tensor& w, const torch::Tensor& b, const PceOptions& options = {});

// NCC and PCE of one image against one fingerprint.
struct Detection {
  std::optional<double> ncc;  // nullopt when undefined
  double pce = 0;
};

}  // namespace dippas
