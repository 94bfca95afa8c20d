#include "dippas/dip/iteration.h"

#include <torch/torch.h>

#include <stdexcept>

#include "dippas/dip/amsgrad.h"
#include "dippas/dip/injection.h"
#include "dippas/dip/loop.h"
#include "dippas/dip/network.h"
#include "dippas/dip/prnu_loss.h"

namespace dippas {

DipIteration::DipIteration(const DipIterationParts& parts, const DipOptions& options)
    : parts_(parts), options_(options) {
  if (!parts.net || !parts.injection || !parts.adam)
    throw std::invalid_argument("DipIteration: network, injection and optimizer are required");
  if (parts.target8.dim() != 3 || parts.z.dim() != 4 || parts.target.dim() != 4)
    throw std::invalid_argument("DipIteration: z (1,D,H',W'), target (1,3,H',W'), target8 (3,H,W)");
  h_ = parts.target8.size(1);
  w_ = parts.target8.size(2);
  const auto& b = parts.psnr_box;
  whole_ = b[2] == 0 || (b[0] == 0 && b[1] == 0 && b[2] == h_ && b[3] == w_);
  target8_judged_ = whole_
                        ? parts.target8
                        : parts.target8.slice(-2, b[0], b[0] + b[2]).slice(-1, b[1], b[1] + b[3]);
  // z + s·n is built in one persistent buffer (z is 512 channels: no z-sized temporaries).
  z_t_ = torch::empty_like(parts.z);
  for (size_t k = 0; k < 2; ++k) {
    candidate_[k] = torch::empty({3, h_, w_}, parts.target8.options().dtype(torch::kFloat32));
    scalars_[k] = torch::empty({3}, parts.target8.options().dtype(torch::kFloat32));
  }
}

size_t DipIteration::Slot(int slot) {
  if (slot != 0 && slot != 1) throw std::invalid_argument("DipIteration: slot must be 0 or 1");
  return static_cast<size_t>(slot);
}

void DipIteration::Perturb() {
  PerturbInput(parts_.z, options_.reg_noise_std, z_t_, options_.philox_noise != 0,
               parts_.generator);
}

void DipIteration::Forward(const ForwardHook& hook) {
  output_ = parts_.net->forward(z_t_);
  const auto injected = parts_.injection->forward(output_);
  loss_ = torch::mse_loss(injected, parts_.target);
  if (options_.prnu_weight > 0) {
    // λ·ρ² on the candidate Iφ (0..255, unpadded), against the assembly's P.
    const auto image = output_.slice(2, 0, h_).slice(3, 0, w_)[0] * 255.0;
    loss_ = loss_ + options_.prnu_weight * PrnuCorrelationLoss(image, parts_.pattern,
                                                               options_.prnu_block,
                                                               ResidualOptions{options_.sigma})
                                               .to(loss_.scalar_type());
  }
  if (hook) hook(z_t_.detach(), output_.detach(), injected.detach());
}

void DipIteration::Backward() {
  parts_.adam->ZeroGrad();
  loss_.backward();
}

void DipIteration::Step() {
  parts_.adam->Step();
  parts_.injection->ClampGamma();
}

void DipIteration::Outputs(int slot) {
  torch::NoGradGuard no_grad;
  auto& candidate = candidate_[Slot(slot)];
  // The candidate is the network output Iφ (not the injected one), in 8 bits.
  torch::round_out(candidate, output_.detach().slice(2, 0, h_).slice(3, 0, w_)[0] * 255.0);
  candidate.clamp_(0, 255);
  const auto& b = parts_.psnr_box;
  const auto judged =
      whole_ ? candidate : candidate.slice(-2, b[0], b[0] + b[2]).slice(-1, b[1], b[1] + b[3]);
  const auto mse8 = (judged - target8_judged_).square().mean();
  // The three scalars travel together: one device-to-host copy per iteration.
  torch::stack_out(scalars_[Slot(slot)], {loss_.detach(), mse8, parts_.injection->Gamma()});
  output_ = torch::Tensor();  // the graph of this iteration is not kept past its outputs
  loss_ = torch::Tensor();
}

void DipIteration::Run(int slot, const ForwardHook& hook) {
  Perturb();
  Forward(hook);
  Backward();
  Step();
  Outputs(slot);
}

}  // namespace dippas
