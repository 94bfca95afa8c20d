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
  AmsGradOptions options_;
  int64_t step_ = 0;
  torch::Tensor params_, grads_, exp_avg_, exp_avg_sq_, max_exp_avg_sq_, denom_;
};

}  // namespace dippas
