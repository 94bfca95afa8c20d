// The body of one DIPPAS iteration (SPEC §5), apart from the host's decisions: perturb z,
// forward, injection, loss, backward, the AMSGrad step and γ's clamp, then the 8-bit candidate
// and the three scalars the host needs, written into fixed buffers. It reads nothing back to
// the host and, after a warm-up iteration, asks for the same allocations every iteration: the
// shape of work a CUDA graph captures once and replays. The loop (dip/loop.h) reads the
// buffers, one iteration late on a GPU, and takes admission, stop and pool decisions.
#pragma once

#include <ATen/core/Generator.h>
#include <torch/types.h>

#include <array>
#include <functional>

#include "dippas/dip/options.h"

namespace dippas {

class MultiResUNetImpl;
struct PrnuInjectionImpl;
class FlatAmsGrad;

// What the body works on; the modules are the caller's (it keeps them alive).
struct DipIterationParts {
  MultiResUNetImpl* net = nullptr;
  PrnuInjectionImpl* injection = nullptr;
  FlatAmsGrad* adam = nullptr;
  torch::Tensor z;        // network input (1,D,H',W'), padded size
  torch::Tensor target;   // I/255 (1,3,H',W'), padded
  torch::Tensor target8;  // I rounded to 8 bits (3,H,W), the PSNR's reference
  torch::Tensor pattern;  // P (H,W) float on the device, for λ·ρ² (prnu_weight > 0)
  // The box the PSNR is judged on, {y, x, h, w}; h = 0: the whole image (DipRunOptions::psnr_box).
  std::array<int64_t, 4> psnr_box{0, 0, 0, 0};
  // The perturbation n's generator; undefined: the device's default generator.
  at::Generator generator;
};

class DipIteration {
 public:
  // Hook after the forward pass (LoopCallbacks::on_forward): z_t, Iφ, the injected output.
  using ForwardHook =
      std::function<void(const torch::Tensor&, const torch::Tensor&, const torch::Tensor&)>;

  DipIteration(const DipIterationParts& parts, const DipOptions& options);

  // One iteration into buffer `slot` (0 or 1: the host may still be reading the other one).
  // The stages are public so that the loop can time each; Run calls them in order.
  void Run(int slot, const ForwardHook& hook = {});
  void Perturb();                              // z_t = z + s·n, n ~ N(0,1) fresh
  void Forward(const ForwardHook& hook = {});  // Iφ = f_φ(z_t), injection, loss
  void Backward();                             // ∇ of the loss into the optimizer's flat gradient
  void Step();                                 // AMSGrad step, γ ← max(γ, 0)
  void Outputs(int slot);                      // the candidate and the scalars into `slot`

  // Iφ cropped to (3,H,W), ×255, rounded and clamped: the iteration's candidate (float).
  const torch::Tensor& candidate(int slot) const { return candidate_[Slot(slot)]; }
  // {loss, MSE of the 8-bit candidate over the PSNR box, γ} (float32, on the device).
  const torch::Tensor& scalars(int slot) const { return scalars_[Slot(slot)]; }
  const torch::Tensor& perturbed() const { return z_t_; }  // z_t of the last Forward

 private:
  static size_t Slot(int slot);
  DipIterationParts parts_;
  DipOptions options_;
  int64_t h_ = 0, w_ = 0;
  bool whole_ = true;
  torch::Tensor z_t_, output_, loss_, target8_judged_;
  std::array<torch::Tensor, 2> candidate_, scalars_;
};

}  // namespace dippas
