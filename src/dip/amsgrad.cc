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
  if (options_.device_state) {
    const auto one = [&](double v) { return torch::full({1}, v, params_.options()); };
    one_t_ = one(1);
    beta1_t_ = one(options_.beta1);
    beta2_t_ = one(options_.beta2);
    neg_lr_t_ = one(-options_.lr);
    eps_t_ = one(options_.eps);
    step_t_ = one(0);
    bias1_t_ = one(0);
    bias2_t_ = one(0);
    step_size_t_ = one(0);
    scaled_ = torch::empty_like(params_);
  }
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
  if (step_t_.defined()) step_t_.fill_(static_cast<double>(step_));
}

void FlatAmsGrad::ZeroGrad() { grads_.zero_(); }

void FlatAmsGrad::Step() {
  if (options_.device_state) return DeviceStep();
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

void FlatAmsGrad::DeviceStep() {
  torch::NoGradGuard no_grad;
  ++step_;  // for steps() and checkpoints; the kernels read step_t_
  const double beta1 = options_.beta1, beta2 = options_.beta2;
  step_t_.add_(one_t_);
  // 1 − β^t in place: β^t, negated, plus 1; then √(1 − β2^t) and −lr/(1 − β1^t).
  at::pow_out(bias1_t_, beta1_t_, step_t_).neg_().add_(one_t_);
  at::pow_out(bias2_t_, beta2_t_, step_t_).neg_().add_(one_t_).sqrt_();
  at::div_out(step_size_t_, neg_lr_t_, bias1_t_);
  exp_avg_.mul_(beta1_t_).add_(grads_, 1 - beta1);
  exp_avg_sq_.mul_(beta2_t_).addcmul_(grads_, grads_, 1 - beta2);
  torch::max_out(max_exp_avg_sq_, exp_avg_sq_, max_exp_avg_sq_);
  torch::sqrt_out(denom_, max_exp_avg_sq_);
  denom_.div_(bias2_t_).add_(eps_t_);
  at::mul_out(scaled_, exp_avg_, step_size_t_);
  params_.addcdiv_(scaled_, denom_, 1);
}

}  // namespace dippas
