// PRNU injection of SPEC §5: Iφ·(1 + γ·P̃), with P̃ = P/std(P) broadcast over
// the colours and aligned with the image (the official code injects Pᵀ, a bug
// not copied). γ is a trainable scalar, initialised to 0, kept ≥ 0.
#pragma once

#include <torch/torch.h>

namespace dippas {

struct PrnuInjectionImpl : torch::nn::Module {
  // pattern: P (H,W), any scale; it is divided by its standard deviation so
  // that γ means the same whatever the file's scale.
  explicit PrnuInjectionImpl(const torch::Tensor& pattern);

  // x (N,C,H,W) → x·(1 + γ·P̃).
  torch::Tensor forward(const torch::Tensor& x);

  // γ ← max(γ, 0), after every optimizer step.
  void ClampGamma();

  torch::Tensor gamma;    // γ: trainable scalar
  torch::Tensor pattern;  // P̃ (1,1,H,W): buffer, not trained
};
TORCH_MODULE(PrnuInjection);

}  // namespace dippas
