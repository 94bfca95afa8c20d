// AMSGrad (Adam keeping the running maximum of the second moment; the DIP optimizer of SPEC §5)
// over all parameters at once. The parameters and their gradients are re-pointed to views of two
// flat buffers, so that a step is a fixed handful of element-wise kernels over one buffer
// (instead of about ten per parameter tensor: the U-Net has ~200), and zeroing the gradients is
// one kernel. The arithmetic is that of torch::optim::Adam(amsgrad=true), operation for
// operation.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <vector>

namespace dippas {

struct AmsGradOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  // The step count and the bias corrections as tensors on the parameters' device, updated by
  // the step's own kernels (for a CUDA graph, which freezes host scalars: issue #41): no host
  // value changes from one step to the next, and after the first step no allocation. The same
  // AMSGrad; its last bits differ from torch::optim::Adam's (the step size multiplies the first
  // moment before the division instead of after).
  bool device_state = false;
};

class FlatAmsGrad {
 public:
  // `params`: leaf tensors requiring grad, all of one dtype and device (the module's own
  // parameter tensors: they keep their identity, only their storage moves into the buffer).
  FlatAmsGrad(const std::vector<torch::Tensor>& params, AmsGradOptions options);

  // Zeroes every gradient (one kernel over the flat gradient buffer).
  void ZeroGrad();
  // One AMSGrad step over all parameters.
  void Step();

  int64_t steps() const { return step_; }

  // Everything a step depends on besides the gradients, for a checkpoint of the loop: the
  // parameters and the three moment buffers (flat, on the parameters' device), the step count.
  struct State {
    int64_t step = 0;
    torch::Tensor params, exp_avg, exp_avg_sq, max_exp_avg_sq;
  };
  State GetState() const;
  // Copies a State of an optimizer over the same parameters back into the buffers (the
  // parameters' values included); std::invalid_argument when the sizes differ.
  void SetState(const State& state);
  // The flat buffers (elements between parameters are padding for alignment, always 0).
  const torch::Tensor& flat_params() const { return params_; }
  const torch::Tensor& flat_grads() const { return grads_; }

 private:
  void DeviceStep();

  AmsGradOptions options_;
  int64_t step_ = 0;
  torch::Tensor params_, grads_, exp_avg_, exp_avg_sq_, max_exp_avg_sq_, denom_;
  // device_state: one-element tensors in the parameters' dtype and device (a Scalar operand would
  // be wrapped into a new tensor at every call): 1, β1, β2, −lr, ε, the step count, the two bias
  // corrections and the step size; and a buffer for the scaled first moment.
  torch::Tensor one_t_, beta1_t_, beta2_t_, neg_lr_t_, eps_t_, step_t_, bias1_t_, bias2_t_,
      step_size_t_, scaled_;
};

}  // namespace dippas
