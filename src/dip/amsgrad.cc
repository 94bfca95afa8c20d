#include "dippas/dip/amsgrad.h"

#include <torch/torch.h>

#include <cmath>
#include <stdexcept>

namespace dippas {
namespace {

// Each parameter starts on a 64-byte boundary for float32 (vector loads, cuDNN/oneDNN weights).
constexpr int64_t kAlign = 16;

int64_t RoundUp(int64_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

}  // namespace

FlatAmsGrad::FlatAmsGrad(const std::vector<torch::Tensor>& params, AmsGradOptions options)
    : options_(options) {
  if (params.empty()) throw std::invalid_argument("FlatAmsGrad: no parameters");
  const auto opts = params.front().options();
  int64_t total = 0;
  for (const auto& p : params) {
    if (!p.is_leaf() || !p.requires_grad()) {
      throw std::invalid_argument("FlatAmsGrad: parameters must be leaves that require grad");
    }
    if (p.scalar_type() != opts.dtype().toScalarType() || p.device() != opts.device()) {
      throw std::invalid_argument("FlatAmsGrad: parameters must share one dtype and device");
    }
    total += RoundUp(p.numel());
  }
  torch::NoGradGuard no_grad;
  params_ = torch::zeros({total}, opts.requires_grad(false));
  grads_ = torch::zeros({total}, opts.requires_grad(false));
  int64_t offset = 0;
  for (auto p : params) {  // a copy of the handle; set_data changes the shared tensor
    const int64_t n = p.numel();
    auto data = params_.narrow(0, offset, n).view(p.sizes());
    data.copy_(p.detach());
    p.set_data(data);
    // A defined gradient is accumulated into in place by autograd (first-order backward).
    p.mutable_grad() = grads_.narrow(0, offset, n).view(p.sizes());
    offset += RoundUp(n);
  }
  exp_avg_ = torch::zeros_like(params_);
  exp_avg_sq_ = torch::zeros_like(params_);
  max_exp_avg_sq_ = torch::zeros_like(params_);
  denom_ = torch::empty_like(params_);
}

FlatAmsGrad::State FlatAmsGrad::GetState() const {
  return State{step_, params_, exp_avg_, exp_avg_sq_, max_exp_avg_sq_};
}

void FlatAmsGrad::SetState(const State& state) {
  for (const auto* t : {&state.params, &state.exp_avg, &state.exp_avg_sq, &state.max_exp_avg_sq}) {
    if (!t->defined() || t->dim() != 1 || t->numel() != params_.numel()) {
      throw std::invalid_argument("optimizer state of another network size");
    }
  }
  if (state.step < 0) throw std::invalid_argument("optimizer state: negative step count");
  torch::NoGradGuard no_grad;
  params_.copy_(state.params);  // the parameter tensors are views of it
  exp_avg_.copy_(state.exp_avg);
  exp_avg_sq_.copy_(state.exp_avg_sq);
  max_exp_avg_sq_.copy_(state.max_exp_avg_sq);
  step_ = state.step;
}

void FlatAmsGrad::ZeroGrad() { grads_.zero_(); }

void FlatAmsGrad::Step() {
  torch::NoGradGuard no_grad;
  ++step_;
  const double beta1 = options_.beta1, beta2 = options_.beta2;
  const double bias_correction1 = 1 - std::pow(beta1, static_cast<double>(step_));
  const double bias_correction2 = 1 - std::pow(beta2, static_cast<double>(step_));
  // As torch::optim::Adam::step with amsgrad, on the flat buffers.
  exp_avg_.mul_(beta1).add_(grads_, 1 - beta1);
  exp_avg_sq_.mul_(beta2).addcmul_(grads_, grads_, 1 - beta2);
  torch::max_out(max_exp_avg_sq_, exp_avg_sq_, max_exp_avg_sq_);
  torch::sqrt_out(denom_, max_exp_avg_sq_);
  denom_.div_(std::sqrt(bias_correction2)).add_(options_.eps);
  params_.addcdiv_(exp_avg_, denom_, -options_.lr / bias_correction1);
}

}  // namespace dippas
