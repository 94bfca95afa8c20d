// The PRNU term of the loss (beyond the paper; DipOptions::prnu_weight λ): ρ², ρ the NCC of the
// noise residual W(I) of the network output with gray(I)·P, the quantity the assembly ranks
// blocks by and an analyst tests. Differentiable in I.
#pragma once

#include <torch/types.h>

#include "dippas/prnu/residual.h"

namespace dippas {

// image: (3,H,W) on the 0..255 scale; pattern P: (H,W). block = 0: ρ² of the whole image;
// block B > 0: the mean of ρ_b² over the B×B blocks (partial edge blocks included, as in the
// assembly). A scalar float64 tensor; blocks where ρ is undefined (flat) count as 0.
torch::Tensor PrnuCorrelationLoss(const torch::Tensor& image, const torch::Tensor& pattern,
                                  int64_t block, const ResidualOptions& options);

}  // namespace dippas
