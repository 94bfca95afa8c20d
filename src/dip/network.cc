#include "dippas/dip/network.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

#include "dippas/kernels/cpu/chunked_sgemm.h"
#include "dippas/kernels/cpu/network_ops.h"

namespace dippas {
namespace {

constexpr double kLeakySlope = 0.2;

void Require(bool ok, const std::string& field, const std::string& why) {
  if (!ok) throw std::invalid_argument("NetworkOptions." + field + ": " + why);
}


bool FusableNorm(const torch::nn::BatchNorm2d& bn, const torch::Tensor& x,
                 const torch::Tensor& x2) {
  auto plain = [](const torch::Tensor& t) {
    return t.is_cpu() && t.scalar_type() == torch::kFloat && t.is_contiguous();
  };
  return bn->is_training() && bn->options.affine() && bn->options.track_running_stats() &&
         x.dim() == 4 && plain(x) && (!x2.defined() || (plain(x2) && x2.sizes() == x.sizes())) &&
         plain(bn->weight) && plain(bn->bias) && x.size(0) * x.size(2) * x.size(3) > 1;
}

}  // namespace

torch::Tensor NormActivate(const torch::nn::BatchNorm2d& bn, const torch::Tensor& x,
                           const torch::Tensor& x2, double pre_slope, double post_slope,
                           bool fused) {
  if (!fused || !FusableNorm(bn, x, x2)) {
    auto t = x2.defined() ? x + x2 : x;
    if (pre_slope != 1) t = torch::leaky_relu(t, pre_slope);
    auto y = bn.ptr()->forward(t);
    return post_slope != 1 ? torch::leaky_relu(y, post_slope) : y;
  }
  NormStats stats;
  auto y = FusedNormActivate(x, x2.defined() ? x2 : x, bn->weight, bn->bias, x2.defined(),
                              pre_slope, post_slope, bn->options.eps(), &stats);
  // The running statistics, as BatchNorm2d updates them (unbiased variance).
  torch::NoGradGuard no_grad;
  bn->num_batches_tracked.add_(1);
  const double momentum = bn->options.momentum().has_value()
                              ? *bn->options.momentum()
                              : 1.0 / static_cast<double>(bn->num_batches_tracked.item<int64_t>());
  const double count = static_cast<double>(x.size(0) * x.size(2) * x.size(3));
  // In double, rounded once, as LibTorch's CPU kernel does.
  bn->running_mean.copy_(momentum * stats.mean +
                         (1 - momentum) * bn->running_mean.to(torch::kDouble));
  bn->running_var.copy_(momentum * (stats.var * (count / (count - 1))) +
                        (1 - momentum) * bn->running_var.to(torch::kDouble));
  return y;
}

void NetworkOptions::Check() const {
  Require(input_depth > 0, "input_depth", "must be positive, got " + std::to_string(input_depth));
  Require(output_channels > 0, "output_channels",
          "must be positive, got " + std::to_string(output_channels));
  Require(std::isfinite(alpha) && alpha > 0, "alpha", "must be positive and finite");
  Require(!filters.empty(), "filters", "needs at least one level");
  // The input is padded to a multiple of 2^(levels−1): bounded so that the shift stays defined.
  Require(filters.size() <= 8, "filters",
          "at most 8 levels, got " + std::to_string(filters.size()));
  Require(skips.size() + 1 == filters.size(), "skips",
          "needs filters.size() - 1 = " + std::to_string(filters.size() - 1) + " entries, got " +
              std::to_string(skips.size()));
  for (size_t l = 0; l < filters.size(); ++l) {
    const std::string name = "filters[" + std::to_string(l) + "]";
    Require(filters[l] > 0, name, "must be positive, got " + std::to_string(filters[l]));
    // c1 is the smallest branch; a zero-width conv would fail deep inside LibTorch.
    Require(MultiResSplit(filters[l], alpha)[0] > 0, name,
            "too small for alpha: its MultiRes block would have an empty branch");
  }
  for (size_t l = 0; l < skips.size(); ++l) {
    Require(skips[l] > 0, "skips[" + std::to_string(l) + "]",
            "must be positive, got " + std::to_string(skips[l]));
  }
}

std::array<int64_t, 3> MultiResSplit(int64_t u, double alpha) {
  // Same operation order and truncation as Python's int(0.167 * (alpha * U)).
  const double w = alpha * static_cast<double>(u);
  return {static_cast<int64_t>(0.167 * w), static_cast<int64_t>(0.333 * w),
          static_cast<int64_t>(0.5 * w)};
}

int64_t MultiResWidth(int64_t u, double alpha) {
  const auto c = MultiResSplit(u, alpha);
  return c[0] + c[1] + c[2];
}


torch::Tensor DirectConv3x3(const torch::Tensor& x, const torch::nn::Conv2d& conv) {
  return Conv3x3Direct(x, conv->weight, conv->bias);
}

torch::Tensor Conv1x1Product(const torch::Tensor& x, const torch::nn::Conv2d& conv) {
  const int64_t cin = x.size(1), cout = conv->weight.size(0), height = x.size(2), width = x.size(3);
  auto y = TapsProduct(conv->weight.view({cout, cin}), x.view({cin, height * width}));
  if (conv->bias.defined()) y = y + conv->bias.view({cout, 1});
  return y.view({1, cout, height, width});
}

bool DirectConvApplies(const torch::Tensor& x, int64_t kernel, int64_t out_channels) {
  if (x.dim() != 4 || !x.is_cpu() || x.scalar_type() != torch::kFloat) return false;
  const bool wide = x.size(3) >= kDirectConvMinWidth;
  const bool narrow = x.size(3) >= kDirectConvNarrowMinWidth &&
                      x.size(1) * out_channels <= kDirectConvNarrowMaxChannels;
  if (!wide && !narrow) return false;
  if (kernel == 1) return x.size(0) == 1 && x.is_contiguous() && HaveChunkedSgemm();
  return kernel == 3 && x.size(3) % 16 == 0;
}

ConvUnitImpl::ConvUnitImpl(int64_t in, int64_t out, int64_t kernel, int64_t stride)
    : kernel_(kernel), stride_(stride) {
  conv = register_module("conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, kernel)
                                                       .stride(stride)
                                                       .padding((kernel - 1) / 2)
                                                       .bias(true)));
  bn = register_module("bn", torch::nn::BatchNorm2d(out));
}

torch::Tensor ConvUnitImpl::forward(const torch::Tensor& x) {
  if (direct_conv && stride_ == 1 && DirectConvApplies(x, kernel_, conv->weight.size(0))) {
    return Finish(kernel_ == 3 ? DirectConv3x3(x, conv) : Conv1x1Product(x, conv));
  }
  return Finish(conv(x));
}

torch::Tensor ConvUnitImpl::Finish(const torch::Tensor& conv_out) {
  return NormActivate(bn, conv_out, {}, 1, kLeakySlope, fused_norm);
}

torch::Tensor TapsProduct(const torch::Tensor& rows, const torch::Tensor& x) {
  if (rows.dim() == 2 && x.dim() == 2 && rows.is_cpu() && x.is_cpu() &&
      rows.scalar_type() == torch::kFloat && x.scalar_type() == torch::kFloat &&
      rows.is_contiguous() && x.is_contiguous() && HaveChunkedSgemm()) {
    return ChunkedMatmul(rows, x);
  }
  return torch::mm(rows, x);
}

std::pair<torch::Tensor, torch::Tensor> FusedConv3x3And1x1(const torch::Tensor& x,
                                                           const torch::nn::Conv2d& conv3,
                                                           const torch::nn::Conv2d& conv1,
                                                           const torch::Tensor& low) {
  const auto& w3 = conv3->weight;  // (C3, Cin, 3, 3)
  const auto& w1 = conv1->weight;  // (C1, Cin, 1, 1)
  const int64_t n = x.size(0), height = x.size(2), width = x.size(3);
  const int64_t cx = x.size(1), cin = cx + (low.defined() ? low.size(1) : 0);
  const int64_t c3 = w3.size(0), c1 = w1.size(0);
  if (low.defined() &&
      (n != 1 || low.size(0) != 1 || low.size(2) * 2 != height || low.size(3) * 2 != width)) {
    // Another batch or shape: the upsampled concatenation itself.
    namespace F = torch::nn::functional;
    const auto up = F::interpolate(low, F::InterpolateFuncOptions()
                                            .size(std::vector<int64_t>{height, width})
                                            .mode(torch::kNearest));
    return FusedConv3x3And1x1(torch::cat({x, up}, /*dim=*/1), conv3, conv1);
  }
  // Rows 9·c3 taps (tap-major: row k·c3 + o is W3[o, :, ky, kx]), then the c1 shortcut rows.
  const auto rows =
      torch::cat({w3.permute({2, 3, 0, 1}).reshape({9 * c3, cin}), w1.view({c1, cin})});
  const auto flat = x.reshape({n, cx, height * width});
  torch::Tensor y;
  if (low.defined()) {
    // The taps of x's channels at full resolution plus those of low's at half, upsampled.
    const auto y_x =
        TapsProduct(rows.slice(1, 0, cx).contiguous(), flat.view({cx, height * width}));
    const auto y_low =
        TapsProduct(rows.slice(1, cx).contiguous(), low.reshape({cin - cx, height * width / 4}));
    y = AddUpsampledTaps(y_x, y_low, height, width).unsqueeze(0);
  } else {
    // N = 1 through a view, not flat[0]: a select's backward zero-fills and copies x's gradient.
    y = n == 1 ? TapsProduct(rows, flat.view({cx, height * width})).unsqueeze(0)
               : torch::matmul(rows, flat);
  }
  // A convolution without bias adds zeros (not a parameter: no gradient).
  const auto b3 = conv3->bias.defined() ? conv3->bias : torch::zeros({c3}, x.options());
  const auto b1 = conv1->bias.defined() ? conv1->bias : torch::zeros({c1}, x.options());
  return TapsToOutputs(y, b3, b1, height, width);
}

MultiResBlockImpl::MultiResBlockImpl(int64_t u, int64_t in, double alpha) {
  const auto c = MultiResSplit(u, alpha);
  out_channels_ = c[0] + c[1] + c[2];
  conv1 = register_module("conv1", ConvUnit(in, c[0], 3));
  conv2 = register_module("conv2", ConvUnit(c[0], c[1], 3));
  conv3 = register_module("conv3", ConvUnit(c[1], c[2], 3));
  bn_concat = register_module("bn_concat", torch::nn::BatchNorm2d(out_channels_));
  shortcut = register_module("shortcut", ConvUnit(in, out_channels_, 1));
  bn_out = register_module("bn_out", torch::nn::BatchNorm2d(out_channels_));
}

torch::Tensor MultiResBlockImpl::forward(const torch::Tensor& x) {
  auto a = conv1(x);
  auto b = conv2(a);
  auto c = conv3(b);
  auto concat = NormActivate(bn_concat, torch::cat({a, b, c}, /*dim=*/1), {}, 1, 1, fused_norm);
  return NormActivate(bn_out, shortcut(x), concat, kLeakySlope, 1, fused_norm);
}

void MultiResBlockImpl::SetFusedNorm(bool on) {
  fused_norm = on;
  for (auto* unit : {&conv1, &conv2, &conv3, &shortcut}) (*unit)->fused_norm = on;
}

torch::Tensor MultiResBlockImpl::ForwardFused(const torch::Tensor& x, const torch::Tensor& low) {
  auto [pre1, pre_shortcut] = FusedConv3x3And1x1(x, conv1->conv, shortcut->conv, low);
  auto a = conv1->Finish(pre1);
  auto b = conv2(a);
  auto c = conv3(b);
  auto concat = NormActivate(bn_concat, torch::cat({a, b, c}, /*dim=*/1), {}, 1, 1, fused_norm);
  return NormActivate(bn_out, shortcut->Finish(pre_shortcut), concat, kLeakySlope, 1, fused_norm);
}

ResPathImpl::ResPathImpl(int64_t in, int64_t out) {
  conv3 = register_module("conv3", ConvUnit(in, out, 3));
  conv1 = register_module("conv1", ConvUnit(in, out, 1));
  bn = register_module("bn", torch::nn::BatchNorm2d(out));
}

torch::Tensor ResPathImpl::forward(const torch::Tensor& x) {
  return NormActivate(bn, conv3(x), conv1(x), kLeakySlope, 1, fused_norm);
}

void ResPathImpl::SetFusedNorm(bool on) {
  fused_norm = on;
  conv3->fused_norm = on;
  conv1->fused_norm = on;
}

MultiResUNetImpl::MultiResUNetImpl(const NetworkOptions& options) : options_(options) {
  options_.Check();
  const size_t levels = options_.filters.size();
  // Encoder: MR at every level; a stride-2 conv unit (width unchanged) enters each deeper one.
  int64_t width = options_.input_depth;
  for (size_t l = 0; l < levels; ++l) {
    const std::string level = std::to_string(l);
    if (l > 0) downs_.push_back(register_module("down" + level, ConvUnit(width, width, 3, 2)));
    encoders_.push_back(register_module("encoder" + level,
                                        MultiResBlock(options_.filters[l], width, options_.alpha)));
    width = encoders_.back()->out_channels();
    encoder_widths_.push_back(width);
  }
  // Decoder, built deepest first so `width` follows the data; stored by level.
  skips_.resize(levels - 1, ResPath(nullptr));
  decoders_.resize(levels - 1, MultiResBlock(nullptr));
  for (size_t l = levels - 1; l-- > 0;) {
    const std::string level = std::to_string(l);
    skips_[l] = register_module("skip" + level, ResPath(encoder_widths_[l], options_.skips[l]));
    decoders_[l] = register_module(
        "decoder" + level,
        MultiResBlock(options_.filters[l], options_.skips[l] + width, options_.alpha));
    width = decoders_[l]->out_channels();
  }
  for (auto& unit : downs_) unit->fused_norm = options_.fused_norm;
  for (auto& block : encoders_) block->SetFusedNorm(options_.fused_norm);
  for (auto& block : decoders_) block->SetFusedNorm(options_.fused_norm);
  for (auto& path : skips_) path->SetFusedNorm(options_.fused_norm);
  for (const auto& module : modules(/*include_self=*/false)) {
    if (auto* unit = module->as<ConvUnitImpl>()) unit->direct_conv = options_.direct_conv;
  }
  head_ = register_module(
      "head", torch::nn::Conv2d(torch::nn::Conv2dOptions(width, options_.output_channels, 1)));
}

torch::Tensor MultiResUNetImpl::forward(torch::Tensor z) {
  const size_t levels = encoders_.size();
  if (z.dim() != 4 || z.size(1) != options_.input_depth) {
    throw std::invalid_argument(
        "MultiResUNet: input must be (N, " + std::to_string(options_.input_depth) +
        ", H, W), got " + std::to_string(z.dim()) + " dims with sizes " + c10::str(z.sizes()));
  }
  const int64_t multiple = int64_t{1} << (levels - 1);
  if (z.size(2) % multiple != 0 || z.size(3) % multiple != 0) {
    throw std::invalid_argument(
        "MultiResUNet: H and W must be multiples of " + std::to_string(multiple) + " (2^" +
        std::to_string(levels - 1) + " for " + std::to_string(levels) + " levels), got " +
        std::to_string(z.size(2)) + "x" + std::to_string(z.size(3)) + "; pad or crop the image");
  }
  std::vector<torch::Tensor> features;
  // On CUDA the convolutions stay: the loop there is bound by kernel launches, which the
  // nine-tap sum would multiply.
  auto x = options_.fused_input && z.is_cpu() ? encoders_[0]->ForwardFused(z) : encoders_[0](z);
  features.push_back(x);
  for (size_t l = 1; l < levels; ++l) {
    x = encoders_[l](downs_[l - 1](x));
    features.push_back(x);
  }
  namespace F = torch::nn::functional;
  for (size_t l = levels - 1; l-- > 0;) {
    const auto& skip = features[l];
    const bool fused = l == 0 && options_.fused_decoder && skip.is_cpu();
    if (fused && options_.fused_upsample) {
      x = decoders_[l]->ForwardFused(skips_[l](skip), x);
      continue;
    }
    auto up = F::interpolate(x, F::InterpolateFuncOptions()
                                    .size(std::vector<int64_t>{skip.size(2), skip.size(3)})
                                    .mode(torch::kNearest));
    auto in = torch::cat({skips_[l](skip), up}, /*dim=*/1);
    x = fused ? decoders_[l]->ForwardFused(in) : decoders_[l](in);
  }
  const bool product = options_.direct_conv && DirectConvApplies(x, 1, options_.output_channels);
  const auto a = product ? Conv1x1Product(x, head_) : head_(x);
  auto y = torch::sigmoid(a);
  if (options_.sigmoid_floor > 0 && a.requires_grad()) {
    // a − a.detach() is exactly 0: the same output, and dy/da = σ' + (ε − σ')₊ = max(σ', ε).
    const auto s = y.detach();
    y = y + (options_.sigmoid_floor - s * (1 - s)).clamp_min(0) * (a - a.detach());
  }
  return y;
}

int64_t MultiResUNetImpl::NumParameters() const {
  int64_t n = 0;
  for (const auto& p : parameters()) {
    if (p.requires_grad()) n += p.numel();
  }
  return n;
}

}  // namespace dippas