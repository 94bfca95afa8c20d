#include "dippas/dip/network.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

#include "dippas/dip/batch_norm_cpu.h"
#include "dippas/dip/conv_cpu.h"
#include "dippas/util/blas.h"
#include "dippas/util/parallel.h"

namespace dippas {
namespace {

constexpr double kLeakySlope = 0.2;

void Require(bool ok, const std::string& field, const std::string& why) {
  if (!ok) throw std::invalid_argument("NetworkOptions." + field + ": " + why);
}

// y (N, 9·c3 + c1, H·W), the product of FusedConv3x3And1x1 → out3 (N, c3, H, W) and out1
// (N, c1, H, W). Row k·c3 + o of y is tap k = 3·ky + kx of output o: out3[y, x] =
// Σ_k tap_k[y + ky − 1, x + kx − 1] (zero outside, the centre tap first, then k = 0..8 in
// order) + b3; out1 = the last c1 rows + b1. Each output row is written in one pass, and backward
// writes y's gradient in one pass (the shifted gradient of out3, zeros where a tap fell outside,
// then out1's), where a chain of LibTorch operators would make a pass per tap and zero-fill and
// add y-sized gradients. The sums are those of shifting and adding whole taps, element for
// element in the same order, so the bits are too.
template <typename T>
void ShiftSumRows(const T* taps, int64_t plane_stride, int64_t height, int64_t width, T bias,
                  int64_t y_begin, int64_t y_end, T* out) {
  for (int64_t y = y_begin; y < y_end; ++y) {
    T* row = out + y * width;
    const T* centre = taps + 4 * plane_stride + y * width;
    std::copy(centre, centre + width, row);
    for (int64_t k = 0; k < 9; ++k) {
      const int64_t dy = k / 3 - 1, dx = k % 3 - 1;
      if (k == 4 || y + dy < 0 || y + dy >= height) continue;
      const T* src = taps + k * plane_stride + (y + dy) * width + dx;
      const int64_t x1 = width - std::max<int64_t>(0, dx);
      for (int64_t x = std::max<int64_t>(0, -dx); x < x1; ++x) row[x] += src[x];
    }
    for (int64_t x = 0; x < width; ++x) row[x] += bias;
  }
}

// The gradient of tap k's plane: grad[y + dy, x + dx] = g[y, x] inside, 0 where the tap fell
// outside.
template <typename T>
void UnshiftPlane(const T* g, int64_t k, int64_t height, int64_t width, T* grad) {
  const int64_t dy = k / 3 - 1, dx = k % 3 - 1;
  for (int64_t y = 0; y < height; ++y) {
    T* row = grad + y * width;
    const int64_t src_y = y - dy;
    if (src_y < 0 || src_y >= height) {
      std::fill(row, row + width, T(0));
      continue;
    }
    const T* src = g + src_y * width - dx;
    const int64_t x0 = std::min(width, std::max<int64_t>(0, dx));
    const int64_t x1 = std::max(x0, width + std::min<int64_t>(0, dx));
    std::fill(row, row + x0, T(0));
    std::copy(src + x0, src + x1, row + x0);
    std::fill(row + x1, row + width, T(0));
  }
}

struct TapsOutputs : torch::autograd::Function<TapsOutputs> {
  static torch::autograd::tensor_list forward(torch::autograd::AutogradContext* ctx,
                                              const torch::Tensor& y, const torch::Tensor& b3,
                                              const torch::Tensor& b1, int64_t height,
                                              int64_t width) {
    const int64_t n = y.size(0), c3 = b3.size(0), c1 = b1.size(0), hw = height * width;
    ctx->saved_data["shape"] = std::vector<int64_t>{n, c3, c1, height, width};
    const auto yc = y.contiguous(), b3c = b3.contiguous(), b1c = b1.contiguous();
    auto out3 = torch::empty({n, c3, height, width}, y.options());
    auto out1 = torch::empty({n, c1, height, width}, y.options());
    AT_DISPATCH_FLOATING_TYPES(y.scalar_type(), "TapsOutputs", [&] {
      const scalar_t* src = yc.data_ptr<scalar_t>();
      const scalar_t* bias3 = b3c.data_ptr<scalar_t>();
      const scalar_t* bias1 = b1c.data_ptr<scalar_t>();
      scalar_t* o3 = out3.data_ptr<scalar_t>();
      scalar_t* o1 = out1.data_ptr<scalar_t>();
      const int64_t rows = 9 * c3 + c1;
      // Rows of the c3 shifted sums (9 passes each) first, then the c1 plain planes, each loop
      // split evenly between the threads.
      ParallelFor(0, n * c3 * height, 1, at::get_num_threads(), [&](int64_t begin, int64_t end) {
        for (int64_t j = begin; j < end;) {
          const int64_t plane = j / height, y0 = j % height;
          const int64_t y1 = std::min(height, y0 + end - j);
          const int64_t b = plane / c3, o = plane % c3;
          ShiftSumRows(src + (b * rows + o) * hw, c3 * hw, height, width, bias3[o], y0, y1,
                       o3 + plane * hw);
          j += y1 - y0;
        }
      });
      ParallelFor(0, n * c1, 1, at::get_num_threads(), [&](int64_t begin, int64_t end) {
        for (int64_t j = begin; j < end; ++j) {
          const int64_t b = j / c1, o = j % c1;
          const scalar_t* in = src + (b * rows + 9 * c3 + o) * hw;
          scalar_t* out = o1 + j * hw;
          for (int64_t i = 0; i < hw; ++i) out[i] = in[i] + bias1[o];
        }
      });
    });
    return {out3, out1};
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    const auto shape = ctx->saved_data["shape"].toIntVector();
    const int64_t n = shape[0], c3 = shape[1], c1 = shape[2], height = shape[3], width = shape[4],
                  hw = height * width;
    // An output that took no part in the loss has no gradient: zeros.
    const auto& any = grads[0].defined() ? grads[0] : grads[1];
    const auto g3 = grads[0].defined() ? grads[0].contiguous()
                                       : torch::zeros({n, c3, height, width}, any.options());
    const auto g1 = grads[1].defined() ? grads[1].contiguous()
                                       : torch::zeros({n, c1, height, width}, any.options());
    auto grad_y = torch::empty({n, 9 * c3 + c1, hw}, g3.options());
    AT_DISPATCH_FLOATING_TYPES(g3.scalar_type(), "TapsOutputsBackward", [&] {
      const scalar_t* gp3 = g3.data_ptr<scalar_t>();
      const scalar_t* gp1 = g1.data_ptr<scalar_t>();
      scalar_t* gy = grad_y.data_ptr<scalar_t>();
      const int64_t rows = 9 * c3 + c1;
      ParallelFor(0, n * rows, 1, at::get_num_threads(), [&](int64_t begin, int64_t end) {
        for (int64_t j = begin; j < end; ++j) {
          const int64_t b = j / rows, r = j % rows;
          scalar_t* out = gy + j * hw;
          if (r < 9 * c3) {
            UnshiftPlane(gp3 + (b * c3 + r % c3) * hw, r / c3, height, width, out);
          } else {
            std::copy(gp1 + (b * c1 + r - 9 * c3) * hw, gp1 + (b * c1 + r - 9 * c3 + 1) * hw, out);
          }
        }
      });
    });
    // As autograd reduces the broadcast bias of `out + bias.view(1, c, 1, 1)`.
    auto grad_b3 = at::sum_to(g3, at::IntArrayRef({1, c3, 1, 1})).view({c3});
    auto grad_b1 = at::sum_to(g1, at::IntArrayRef({1, c1, 1, 1})).view({c1});
    return {grad_y, grad_b3, grad_b1, torch::Tensor(), torch::Tensor()};
  }
};

// out = y + the nearest ×2 upsampling of y_low, y (R, H·W) and y_low (R, H/2·W/2): the taps of
// the upsampled channels added to those of the others. Backward: y's gradient is out's (the same
// tensor), y_low's the sum of each 2×2 cell, in the order (0, 0), (0, 1), (1, 0), (1, 1).
struct AddUpsampled : torch::autograd::Function<AddUpsampled> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& y,
                               const torch::Tensor& y_low, int64_t height, int64_t width) {
    const int64_t rows = y.size(0), h2 = height / 2, w2 = width / 2;
    ctx->saved_data["shape"] = std::vector<int64_t>{rows, height, width};
    const auto yc = y.contiguous(), lc = y_low.contiguous();
    auto out = torch::empty_like(yc);
    AT_DISPATCH_FLOATING_TYPES(y.scalar_type(), "AddUpsampled", [&] {
      const scalar_t* src = yc.data_ptr<scalar_t>();
      const scalar_t* low = lc.data_ptr<scalar_t>();
      scalar_t* dst = out.data_ptr<scalar_t>();
      ParallelFor(0, rows * height, 1, at::get_num_threads(), [&](int64_t begin, int64_t end) {
        for (int64_t j = begin; j < end; ++j) {
          const int64_t r = j / height, row = j % height;
          const scalar_t* in = src + j * width;
          const scalar_t* l = low + (r * h2 + row / 2) * w2;
          scalar_t* o = dst + j * width;
          for (int64_t x = 0; x < width; ++x) o[x] = in[x] + l[x / 2];
        }
      });
    });
    return out;
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    const auto shape = ctx->saved_data["shape"].toIntVector();
    const int64_t rows = shape[0], height = shape[1], width = shape[2];
    const int64_t h2 = height / 2, w2 = width / 2;
    const auto g = grads[0].contiguous();
    auto grad_low = torch::empty({rows, h2 * w2}, g.options());
    AT_DISPATCH_FLOATING_TYPES(g.scalar_type(), "AddUpsampledBackward", [&] {
      const scalar_t* gp = g.data_ptr<scalar_t>();
      scalar_t* gl = grad_low.data_ptr<scalar_t>();
      ParallelFor(0, rows * h2, 1, at::get_num_threads(), [&](int64_t begin, int64_t end) {
        for (int64_t j = begin; j < end; ++j) {
          const int64_t r = j / h2, i = j % h2;
          const scalar_t* top = gp + (r * height + 2 * i) * width;
          const scalar_t* bottom = top + width;
          scalar_t* o = gl + j * w2;
          for (int64_t x = 0; x < w2; ++x)
            o[x] = top[2 * x] + top[2 * x + 1] + bottom[2 * x] + bottom[2 * x + 1];
        }
      });
    });
    return {g, grad_low, torch::Tensor(), torch::Tensor()};
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

namespace {

// conv(x, w) + b for a 3×3 convolution (stride 1, padding 1) by dip/conv_cpu.h's direct kernels,
// sample by sample; backward: x's and w's gradients by the same kernels, b's as autograd reduces
// a broadcast bias.
struct DirectConv3x3Fn : torch::autograd::Function<DirectConv3x3Fn> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& w, const torch::Tensor& b) {
    const auto xc = x.contiguous(), wc = w.contiguous(), bc = b.contiguous();
    const int64_t n = x.size(0), cin = x.size(1), height = x.size(2), width = x.size(3);
    const Conv3x3Shape shape{cin, w.size(0), height, width};
    auto out = torch::empty({n, shape.cout, height, width}, x.options());
    for (int64_t i = 0; i < n; ++i) {
      Conv3x3Forward(xc.data_ptr<float>() + i * cin * height * width, wc.data_ptr<float>(),
                     bc.data_ptr<float>(), shape,
                     out.data_ptr<float>() + i * shape.cout * height * width,
                     at::get_num_threads());
    }
    ctx->save_for_backward({xc, wc});
    return out;
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto& x = saved[0];
    const auto& w = saved[1];
    const auto g = grads[0].contiguous();
    const int64_t n = x.size(0), cin = x.size(1), height = x.size(2), width = x.size(3);
    const Conv3x3Shape shape{cin, w.size(0), height, width};
    const int64_t in_size = cin * height * width, out_size = shape.cout * height * width;
    const int threads = at::get_num_threads();
    torch::Tensor grad_x;
    if (ctx->needs_input_grad(0)) {
      grad_x = torch::empty_like(x);
      for (int64_t i = 0; i < n; ++i) {
        Conv3x3BackwardInput(g.data_ptr<float>() + i * out_size, w.data_ptr<float>(), shape,
                             grad_x.data_ptr<float>() + i * in_size, threads);
      }
    }
    torch::Tensor grad_w;
    if (ctx->needs_input_grad(1)) {
      grad_w = torch::empty_like(w);
      auto sample = n > 1 ? torch::empty_like(w) : grad_w;
      for (int64_t i = 0; i < n; ++i) {
        Conv3x3BackwardWeight(x.data_ptr<float>() + i * in_size, g.data_ptr<float>() + i * out_size,
                              shape, (i == 0 ? grad_w : sample).data_ptr<float>(), threads);
        if (i > 0) grad_w.add_(sample);
      }
    }
    torch::Tensor grad_b;
    if (ctx->needs_input_grad(2)) {
      grad_b = at::sum_to(g, at::IntArrayRef({1, shape.cout, 1, 1})).view({shape.cout});
    }
    return {grad_x, grad_w, grad_b};
  }
};

}  // namespace

torch::Tensor DirectConv3x3(const torch::Tensor& x, const torch::nn::Conv2d& conv) {
  return DirectConv3x3Fn::apply(x, conv->weight, conv->bias);
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
    return ChunkedMm::apply(rows, x);
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
    y = AddUpsampled::apply(y_x, y_low, height, width).unsqueeze(0);
  } else {
    // N = 1 through a view, not flat[0]: a select's backward zero-fills and copies x's gradient.
    y = n == 1 ? TapsProduct(rows, flat.view({cx, height * width})).unsqueeze(0)
               : torch::matmul(rows, flat);
  }
  // A convolution without bias adds zeros (not a parameter: no gradient).
  const auto b3 = conv3->bias.defined() ? conv3->bias : torch::zeros({c3}, x.options());
  const auto b1 = conv1->bias.defined() ? conv1->bias : torch::zeros({c1}, x.options());
  auto outs = TapsOutputs::apply(y, b3, b1, height, width);
  return {outs[0], outs[1]};
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
  return torch::sigmoid(product ? Conv1x1Product(x, head_) : head_(x));
}

int64_t MultiResUNetImpl::NumParameters() const {
  int64_t n = 0;
  for (const auto& p : parameters()) {
    if (p.requires_grad()) n += p.numel();
  }
  return n;
}

}  // namespace dippas
