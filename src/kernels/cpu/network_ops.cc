#include "dippas/kernels/cpu/network_ops.h"

#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

#include "dippas/kernels/cpu/batch_norm.h"
#include "dippas/kernels/cpu/chunked_sgemm.h"
#include "dippas/kernels/cpu/conv3x3.h"
#include "dippas/kernels/cpu/dispatch.h"
#include "dippas/util/parallel.h"

namespace dippas {
namespace {

// What every operator below assumes of its tensors; std::invalid_argument naming the operator.
void Require(bool ok, const char* op, const std::string& what) {
  if (!ok) throw std::invalid_argument(std::string(op) + ": " + what);
}

bool PlainCpu(const torch::Tensor& t, bool floating_any = false) {
  return t.defined() && t.is_cpu() &&
         (floating_any ? t.is_floating_point() : t.scalar_type() == torch::kFloat);
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
// x2))), by NormActForward/Backward (kernels/cpu/batch_norm.h); without has_x2, x2 is x again and
// unused (LibTorch 1.13's custom functions take no undefined input). The batch mean
// and biased variance (c doubles) go to *stats for the running statistics. Saved for backward:
// t = pre(x + x2) (x itself when there is neither), the weights and the statistics.
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

// conv(x, w) + b for a 3×3 convolution (stride 1, padding 1) by kernels/cpu/conv3x3.h's direct kernels,
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

std::pair<torch::Tensor, torch::Tensor> TapsToOutputs(const torch::Tensor& y, const torch::Tensor& b3,
                                                      const torch::Tensor& b1, int64_t height,
                                                      int64_t width) {
  constexpr const char* kOp = "TapsToOutputs";
  Require(PlainCpu(y, true) && PlainCpu(b3, true) && PlainCpu(b1, true), kOp,
          "CPU floating-point tensors only");
  Require(b3.scalar_type() == y.scalar_type() && b1.scalar_type() == y.scalar_type(), kOp,
          "biases of another type than y");
  Require(y.dim() == 3 && b3.dim() == 1 && b1.dim() == 1 && height > 0 && width > 0 &&
              y.size(1) == 9 * b3.size(0) + b1.size(0) && y.size(2) == height * width,
          kOp, "y must be (N, 9·c3 + c1, H·W) with b3 (c3) and b1 (c1)");
  CountKernel(KernelId::kTapsOutputs);
  auto outs = TapsOutputs::apply(y, b3, b1, height, width);
  return {outs[0], outs[1]};
}

torch::Tensor AddUpsampledTaps(const torch::Tensor& y, const torch::Tensor& y_low, int64_t height,
                               int64_t width) {
  constexpr const char* kOp = "AddUpsampledTaps";
  Require(PlainCpu(y, true) && PlainCpu(y_low, true) && y.scalar_type() == y_low.scalar_type(),
          kOp, "CPU floating-point tensors of one type only");
  Require(height > 0 && width > 0 && height % 2 == 0 && width % 2 == 0, kOp,
          "H and W must be even and positive");
  Require(y.dim() == 2 && y_low.dim() == 2 && y.size(0) == y_low.size(0) &&
              y.size(1) == height * width && y_low.size(1) == height * width / 4,
          kOp, "y must be (R, H·W) and y_low (R, H/2·W/2)");
  CountKernel(KernelId::kAddUpsampled);
  return AddUpsampled::apply(y, y_low, height, width);
}

torch::Tensor ChunkedMatmul(const torch::Tensor& rows, const torch::Tensor& x) {
  constexpr const char* kOp = "ChunkedMatmul";
  Require(HaveChunkedSgemm(), kOp, "OpenBLAS is not loaded");
  Require(PlainCpu(rows) && PlainCpu(x) && rows.is_contiguous() && x.is_contiguous(), kOp,
          "contiguous float CPU tensors only");
  Require(rows.dim() == 2 && x.dim() == 2 && rows.size(1) == x.size(0), kOp,
          "rows (M×K) and x (K×N) expected");
  return ChunkedMm::apply(rows, x);
}

torch::Tensor FusedNormActivate(const torch::Tensor& x, const torch::Tensor& x2,
                                const torch::Tensor& weight, const torch::Tensor& bias,
                                bool has_x2, double pre_slope, double post_slope, double eps,
                                NormStats* stats) {
  constexpr const char* kOp = "FusedNormActivate";
  auto plain = [](const torch::Tensor& t) { return PlainCpu(t) && t.is_contiguous(); };
  Require(stats != nullptr, kOp, "no statistics output");
  Require(plain(x) && plain(x2) && plain(weight) && plain(bias), kOp,
          "contiguous float CPU tensors only");
  Require(x.dim() == 4 && x2.sizes() == x.sizes() && weight.numel() == x.size(1) &&
              bias.numel() == x.size(1),
          kOp, "x and x2 (N, C, H, W), weight and bias (C) expected");
  return FusedNormAct::apply(x, x2, weight, bias, has_x2, pre_slope, post_slope, eps, stats);
}

torch::Tensor Conv3x3Direct(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b) {
  constexpr const char* kOp = "Conv3x3Direct";
  Require(PlainCpu(x) && PlainCpu(w) && PlainCpu(b), kOp, "float CPU tensors only");
  Require(x.dim() == 4 && w.dim() == 4 && w.size(1) == x.size(1) && w.size(2) == 3 &&
              w.size(3) == 3 && b.dim() == 1 && b.size(0) == w.size(0),
          kOp, "x (N, Cin, H, W), w (Cout, Cin, 3, 3) and b (Cout) expected");
  Require(Conv3x3Supported({x.size(1), w.size(0), x.size(2), x.size(3)}), kOp,
          "width must be a positive multiple of 16, got " + std::to_string(x.size(3)));
  return DirectConv3x3Fn::apply(x, w, b);
}

}  // namespace dippas
