#include "dippas/dip/network.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

#include "dippas/dip/batch_norm_cpu.h"
#include "dippas/util/blas.h"

namespace dippas {
namespace {

constexpr double kLeakySlope = 0.2;

void Require(bool ok, const std::string& field, const std::string& why) {
  if (!ok) throw std::invalid_argument("NetworkOptions." + field + ": " + why);
}

// The overlap of an H×W plane with itself shifted by (dy, dx): rows [y0, y0 + h) of the output
// read rows [y0 + dy, y0 + dy + h) of the tap, and likewise for columns.
struct Overlap {
  int64_t y0, h, x0, w;
};
Overlap ShiftOverlap(int64_t height, int64_t width, int64_t dy, int64_t dx) {
  const int64_t y0 = std::max<int64_t>(0, -dy), x0 = std::max<int64_t>(0, -dx);
  return {y0, height - std::abs(dy), x0, width - std::abs(dx)};
}

torch::Tensor Window(const torch::Tensor& t, int64_t y, int64_t h, int64_t x, int64_t w) {
  return t.narrow(-2, y, h).narrow(-1, x, w);
}

// taps (N, 9, C, H, W), tap k = 3·ky + kx → (N, C, H, W) with
// out[y, x] = Σ_k taps[k][y + ky − 1, x + kx − 1] (zero outside): a 3×3 cross-correlation
// with padding 1 whose per-tap products were computed beforehand. The backward pass shifts
// the gradient back, with zeros where a tap fell outside the plane.
struct ShiftSum : torch::autograd::Function<ShiftSum> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& taps) {
    const int64_t height = taps.size(3), width = taps.size(4);
    ctx->saved_data["shape"] = taps.sizes().vec();
    auto out = taps.select(1, 4).clone(at::MemoryFormat::Contiguous);  // the centre tap
    for (int64_t k = 0; k < 9; ++k) {
      if (k == 4) continue;
      const auto o = ShiftOverlap(height, width, k / 3 - 1, k % 3 - 1);
      Window(out, o.y0, o.h, o.x0, o.w)
          .add_(Window(taps.select(1, k), o.y0 + k / 3 - 1, o.h, o.x0 + k % 3 - 1, o.w));
    }
    return out;
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    const auto shape = ctx->saved_data["shape"].toIntVector();
    const auto& g = grads[0];
    auto taps = torch::zeros(shape, g.options());
    const int64_t height = shape[3], width = shape[4];
    for (int64_t k = 0; k < 9; ++k) {
      const auto o = ShiftOverlap(height, width, k / 3 - 1, k % 3 - 1);
      Window(taps.select(1, k), o.y0 + k / 3 - 1, o.h, o.x0 + k % 3 - 1, o.w)
          .copy_(Window(g, o.y0, o.h, o.x0, o.w));
    }
    return {taps};
  }
};

// rows (M×K) · x (K×N) for 2-D float CPU tensors, by ChunkedSgemm forward and for the rows'
// gradient (g·xᵀ) and x's (rowsᵀ·g).
struct ChunkedMm : torch::autograd::Function<ChunkedMm> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& rows,
                               const torch::Tensor& x) {
    ctx->save_for_backward({rows, x});
    auto y = torch::empty({rows.size(0), x.size(1)}, x.options());
    ChunkedSgemmNN(rows.size(0), x.size(1), rows.size(1), rows.data_ptr<float>(),
                   x.data_ptr<float>(), y.data_ptr<float>(), at::get_num_threads());
    return y;
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto& rows = saved[0];
    const auto& x = saved[1];
    const auto g = grads[0].contiguous();
    torch::Tensor grad_rows, grad_x;
    if (ctx->needs_input_grad(0)) {
      grad_rows = torch::empty_like(rows);
      ChunkedSgemmNT(rows.size(0), x.size(1), rows.size(1), g.data_ptr<float>(),
                     x.data_ptr<float>(), grad_rows.data_ptr<float>(), at::get_num_threads());
    }
    if (ctx->needs_input_grad(1)) {
      grad_x = torch::empty_like(x);
      ChunkedSgemmTN(rows.size(0), x.size(1), rows.size(1), rows.data_ptr<float>(),
                     g.data_ptr<float>(), grad_x.data_ptr<float>(), at::get_num_threads());
    }
    return {grad_rows, grad_x};
  }
};

// BatchNorm with training statistics and the LeakyReLU and sum around it, y = post(BN(pre(x +
// x2))), by NormActForward/Backward (dip/batch_norm_cpu.h); without has_x2, x2 is x again and
// unused (LibTorch 1.13's custom functions take no undefined input). The batch mean
// and biased variance (c doubles) go to *stats for the running statistics. Saved for backward:
// t = pre(x + x2) (x itself when there is neither), the weights and the statistics.
struct NormStats {
  torch::Tensor mean, var;
};
struct FusedNormAct : torch::autograd::Function<FusedNormAct> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& x2, const torch::Tensor& weight,
                               const torch::Tensor& bias, bool has_x2, double pre_slope,
                               double post_slope, double eps, NormStats* stats) {
    const NormShape shape{x.size(0), x.size(1), x.size(2) * x.size(3)};
    const NormAct act{static_cast<float>(pre_slope), static_cast<float>(post_slope), eps};
    const bool write_t = has_x2 || act.pre_slope != 1;
    auto t = write_t ? torch::empty_like(x) : x;
    auto y = torch::empty_like(x);
    stats->mean = torch::empty({shape.c}, x.options().dtype(torch::kDouble));
    stats->var = torch::empty({shape.c}, x.options().dtype(torch::kDouble));
    NormActForward(x.data_ptr<float>(), has_x2 ? x2.data_ptr<float>() : nullptr, shape,
                   weight.data_ptr<float>(), bias.data_ptr<float>(), act,
                   write_t ? t.data_ptr<float>() : nullptr, y.data_ptr<float>(),
                   stats->mean.data_ptr<double>(), stats->var.data_ptr<double>(),
                   at::get_num_threads());
    ctx->save_for_backward({t, weight, bias});
    ctx->saved_data["mean"] = stats->mean;
    ctx->saved_data["var"] = stats->var;
    ctx->saved_data["pre"] = pre_slope;
    ctx->saved_data["post"] = post_slope;
    ctx->saved_data["eps"] = eps;
    ctx->saved_data["x2"] = has_x2;
    return y;
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto& t = saved[0];
    const auto& weight = saved[1];
    const auto& bias = saved[2];
    const auto mean = ctx->saved_data["mean"].toTensor();
    const auto var = ctx->saved_data["var"].toTensor();
    const NormAct act{static_cast<float>(ctx->saved_data["pre"].toDouble()),
                      static_cast<float>(ctx->saved_data["post"].toDouble()),
                      ctx->saved_data["eps"].toDouble()};
    const NormShape shape{t.size(0), t.size(1), t.size(2) * t.size(3)};
    const auto gy = grads[0].contiguous();
    auto g_in = torch::empty_like(t);
    auto grad_w = torch::empty({shape.c}, mean.options());
    auto grad_b = torch::empty({shape.c}, mean.options());
    NormActBackward(gy.data_ptr<float>(), t.data_ptr<float>(), shape, weight.data_ptr<float>(),
                    bias.data_ptr<float>(), act, mean.data_ptr<double>(), var.data_ptr<double>(),
                    g_in.data_ptr<float>(), grad_w.data_ptr<double>(), grad_b.data_ptr<double>(),
                    at::get_num_threads());
    const bool has_x2 = ctx->saved_data["x2"].toBool();
    return {g_in,
            has_x2 ? g_in : torch::Tensor(),
            grad_w.to(weight.scalar_type()),
            grad_b.to(bias.scalar_type()),
            torch::Tensor(),
            torch::Tensor(),
            torch::Tensor(),
            torch::Tensor(),
            torch::Tensor()};
  }
};

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
  auto y = FusedNormAct::apply(x, x2.defined() ? x2 : x, bn->weight, bn->bias, x2.defined(),
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

ConvUnitImpl::ConvUnitImpl(int64_t in, int64_t out, int64_t kernel, int64_t stride) {
  conv = register_module("conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, kernel)
                                                       .stride(stride)
                                                       .padding((kernel - 1) / 2)
                                                       .bias(true)));
  bn = register_module("bn", torch::nn::BatchNorm2d(out));
}

torch::Tensor ConvUnitImpl::forward(const torch::Tensor& x) { return Finish(conv(x)); }

torch::Tensor ConvUnitImpl::Finish(const torch::Tensor& conv_out) {
  return NormActivate(bn, conv_out, {}, 1, kLeakySlope, fused_norm);
}

torch::Tensor TapsProduct(const torch::Tensor& rows, const torch::Tensor& x) {
  if (rows.dim() == 2 && x.dim() == 2 && rows.is_cpu() && x.is_cpu() &&
      rows.scalar_type() == torch::kFloat && x.scalar_type() == torch::kFloat &&
      rows.is_contiguous() && x.is_contiguous() && HaveChunkedSgemm()) {
    return ChunkedMm::apply(rows, x);
  }
  return torch::mm(rows, x);
}

std::pair<torch::Tensor, torch::Tensor> FusedConv3x3And1x1(const torch::Tensor& x,
                                                           const torch::nn::Conv2d& conv3,
                                                           const torch::nn::Conv2d& conv1) {
  const auto& w3 = conv3->weight;  // (C3, Cin, 3, 3)
  const auto& w1 = conv1->weight;  // (C1, Cin, 1, 1)
  const int64_t n = x.size(0), cin = x.size(1), height = x.size(2), width = x.size(3);
  const int64_t c3 = w3.size(0), c1 = w1.size(0);
  // Rows 9·c3 taps (tap-major: row k·c3 + o is W3[o, :, ky, kx]), then the c1 shortcut rows.
  const auto rows =
      torch::cat({w3.permute({2, 3, 0, 1}).reshape({9 * c3, cin}), w1.view({c1, cin})});
  const auto flat = x.reshape({n, cin, height * width});
  const auto y = n == 1 ? TapsProduct(rows, flat[0]).unsqueeze(0) : torch::matmul(rows, flat);
  const auto taps = y.narrow(1, 0, 9 * c3).reshape({n, 9, c3, height, width});
  auto out3 = ShiftSum::apply(taps) + conv3->bias.view({1, c3, 1, 1});
  auto out1 =
      y.narrow(1, 9 * c3, c1).reshape({n, c1, height, width}) + conv1->bias.view({1, c1, 1, 1});
  return {out3, out1};
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

torch::Tensor MultiResBlockImpl::ForwardFused(const torch::Tensor& x) {
  auto [pre1, pre_shortcut] = FusedConv3x3And1x1(x, conv1->conv, shortcut->conv);
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
