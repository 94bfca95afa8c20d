// PRNU injection of SPEC §5: Iφ·(1 + γ·P̃), with P̃ = P/std(P) broadcast over
// the colours and aligned with the image (the official code injects Pᵀ, a bug
// not copied). γ is a trainable scalar, initialised to 0, kept ≥ 0. γ = scale·g with g the
// trained parameter: AMSGrad moves g by about its learning rate per step, so `scale` acts as
// γ's own learning rate relative to the network's (1 = the paper).
#pragma once

#include <torch/torch.h>

namespace dippas {

struct PrnuInjectionImpl : torch::nn::Module {
  // pattern: P (H,W), any scale; it is divided by its standard deviation so
  // that γ means the same whatever the file's scale.
  explicit PrnuInjectionImpl(const torch::Tensor& pattern, double scale = 1.0);

  // x (N,C,H,W) → x·(1 + γ·P̃).
  torch::Tensor forward(const torch::Tensor& x);

  // γ ← max(γ, 0), after every optimizer step.
  void ClampGamma();

  // γ = scale·g, detached.
  torch::Tensor Gamma() const;

  torch::Tensor gamma;    // g: the trainable scalar (γ itself when scale = 1)
  torch::Tensor pattern;  // P̃ (1,1,H,W): buffer, not trained
  double scale = 1.0;     // γ = scale·g
};
TORCH_MODULE(PrnuInjection);

}  // namespace dippas
