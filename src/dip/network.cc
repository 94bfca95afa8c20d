#include "dippas/dip/network.h"

#include <cmath>
#include <stdexcept>
#include <string>

namespace dippas {
namespace {

constexpr double kLeakySlope = 0.2;

torch::Tensor Leaky(const torch::Tensor& x) { return torch::leaky_relu(x, kLeakySlope); }

void Require(bool ok, const std::string& field, const std::string& why) {
  if (!ok) throw std::invalid_argument("NetworkOptions." + field + ": " + why);
}

}  // namespace

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

ConvUnitImpl::ConvUnitImpl(int64_t in, int64_t out, int64_t kernel, int64_t stride) {
  conv = register_module("conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, kernel)
                                                       .stride(stride)
                                                       .padding((kernel - 1) / 2)
                                                       .bias(true)));
  bn = register_module("bn", torch::nn::BatchNorm2d(out));
}

torch::Tensor ConvUnitImpl::forward(const torch::Tensor& x) { return Leaky(bn(conv(x))); }

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
  auto concat = bn_concat(torch::cat({a, b, c}, /*dim=*/1));
  return bn_out(Leaky(shortcut(x) + concat));
}

ResPathImpl::ResPathImpl(int64_t in, int64_t out) {
  conv3 = register_module("conv3", ConvUnit(in, out, 3));
  conv1 = register_module("conv1", ConvUnit(in, out, 1));
  bn = register_module("bn", torch::nn::BatchNorm2d(out));
}

torch::Tensor ResPathImpl::forward(const torch::Tensor& x) {
  return bn(Leaky(conv3(x) + conv1(x)));
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
  auto x = encoders_[0](z);
  features.push_back(x);
  for (size_t l = 1; l < levels; ++l) {
    x = encoders_[l](downs_[l - 1](x));
    features.push_back(x);
  }
  namespace F = torch::nn::functional;
  for (size_t l = levels - 1; l-- > 0;) {
    const auto& skip = features[l];
    auto up = F::interpolate(x, F::InterpolateFuncOptions()
                                    .size(std::vector<int64_t>{skip.size(2), skip.size(3)})
                                    .mode(torch::kNearest));
    x = decoders_[l](torch::cat({skips_[l](skip), up}, /*dim=*/1));
  }
  return torch::sigmoid(head_(x));
}

int64_t MultiResUNetImpl::NumParameters() const {
  int64_t n = 0;
  for (const auto& p : parameters()) {
    if (p.requires_grad()) n += p.numel();
  }
  return n;
}

}  // namespace dippas
