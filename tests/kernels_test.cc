// The hand-written CPU kernels (kernels/cpu/) on their own: each against LibTorch in double, the
// same bits on any thread count where they promise it, the shapes each refuses, and the dispatch
// level (DIPPAS_CPU_LEVEL) they run at. ctest runs this file once per level the CPU has.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "dippas/dip/network.h"
#include "dippas/kernels/cpu/batch_norm.h"
#include "dippas/kernels/cpu/chunked_sgemm.h"
#include "dippas/kernels/cpu/conv3x3.h"
#include "dippas/kernels/cpu/dispatch.h"
#include "dippas/kernels/cpu/network_ops.h"
#include "dippas/kernels/cpu/philox.h"
#include "dippas/kernels/cpu/wavelet.h"
#include "kernel_counts.h"
#include "test_util.h"

namespace dippas {
namespace {

// A BatchNorm2d in double with bn's parameters and running statistics: the reference.
torch::nn::BatchNorm2d DoubleCopy(const torch::nn::BatchNorm2d& bn) {
  torch::nn::BatchNorm2d copy(bn->options);
  copy->to(torch::kDouble);
  torch::NoGradGuard no_grad;
  copy->weight.copy_(bn->weight);
  copy->bias.copy_(bn->bias);
  copy->running_mean.copy_(bn->running_mean);
  copy->running_var.copy_(bn->running_var);
  copy->num_batches_tracked.copy_(bn->num_batches_tracked);
  return copy;
}

// The fused normalisation (kernels/cpu/batch_norm.h) against LibTorch's separate operators in double,
// for the network's three patterns (ConvUnit: BN → leaky; bn_concat: BN; res path and bn_out:
// leaky(x + x2) → BN), on shapes whose planes leave short vector tails, with batches of 1 and 2,
// data far from zero (the variance's cancellation) and parallel channels: the output, the
// gradients of x, x2, γ and β, and the running statistics (momentum 0.1 and cumulative).
TEST(Kernels, FusedNormMatchesLibTorchInDouble) {
  struct Case {
    int64_t n, c, h, w;
    double offset, pre, post;
    bool x2;
  };
  const std::vector<Case> cases = {
      {1, 5, 17, 13, 0, 1, 0.2, false},   {1, 5, 17, 13, 40, 1, 1, false},
      {2, 3, 9, 11, 0, 0.2, 1, true},     {1, 4, 64, 160, 3, 0.2, 1, true},
      {1, 6, 128, 128, 0, 1, 0.2, false}, {2, 7, 40, 37, -25, 1, 0.2, false}};
  torch::manual_seed(11);
  for (const auto& k : cases) {
    for (const bool cumulative : {false, true}) {
      SCOPED_TRACE(::testing::Message()
                   << k.n << "x" << k.c << "x" << k.h << "x" << k.w << " offset " << k.offset
                   << " pre " << k.pre << " post " << k.post << (k.x2 ? " x2" : "")
                   << (cumulative ? " cumulative" : ""));
      auto options = torch::nn::BatchNorm2dOptions(k.c);
      if (cumulative) options.momentum(c10::nullopt);
      torch::nn::BatchNorm2d bn(options);
      {
        torch::NoGradGuard no_grad;
        bn->weight.uniform_(0.5, 1.5);
        bn->bias.uniform_(-0.5, 0.5);
        bn->running_mean.uniform_(-1, 1);
        bn->running_var.uniform_(0.5, 2);
      }
      auto ref_bn = DoubleCopy(bn);
      const auto x = (k.offset + torch::randn({k.n, k.c, k.h, k.w})).requires_grad_(true);
      const auto x2 = torch::randn({k.n, k.c, k.h, k.w}).requires_grad_(true);
      const auto g = torch::randn({k.n, k.c, k.h, k.w});
      const auto xd = x.detach().to(torch::kDouble).requires_grad_(true);
      const auto x2d = x2.detach().to(torch::kDouble).requires_grad_(true);

      auto y = NormActivate(bn, x, k.x2 ? x2 : torch::Tensor(), k.pre, k.post, /*fused=*/true);
      auto yd = NormActivate(ref_bn, xd, k.x2 ? x2d : torch::Tensor(), k.pre, k.post,
                             /*fused=*/true);  // double: LibTorch's operators
      EXPECT_REL_CLOSE(y, yd, 2e-6);
      y.backward(g);
      yd.backward(g.to(torch::kDouble));
      EXPECT_REL_CLOSE(x.grad(), xd.grad(), 2e-5);
      if (k.x2) {
        EXPECT_REL_CLOSE(x2.grad(), x2d.grad(), 2e-5);
      }
      EXPECT_FALSE(k.x2 ? !x2.grad().defined() : x2.grad().defined());
      EXPECT_REL_CLOSE(bn->weight.grad(), ref_bn->weight.grad(), 2e-5);
      EXPECT_REL_CLOSE(bn->bias.grad(), ref_bn->bias.grad(), 2e-5);
      EXPECT_REL_CLOSE(bn->running_mean, ref_bn->running_mean, 1e-6);
      EXPECT_REL_CLOSE(bn->running_var, ref_bn->running_var, 1e-6);
      EXPECT_EQ(bn->num_batches_tracked.item<int64_t>(),
                ref_bn->num_batches_tracked.item<int64_t>());
    }
  }
}

// The fused kernels on data far from zero (values near 1e5 and −1000, spreads 0.5 and 0.05)
// against two-pass sums in double. The statistics are accumulated shifted by a value of the
// channel, so the variance keeps its digits (Σx²/M − μ² in double loses ~4e-6 of it). With a
// constant gradient Σ gu·(t − μ) = 0, so the weight's gradient and the input's are ~0, although
// t − μ_f in float is off from t − μ by μ − float(μ) (up to half an ulp of μ: uncorrected, the
// weight's gradient would be M·(μ − μ_f)·invstd).
TEST(Kernels, FusedNormKernelsKeepTheDigitsOfDataFarFromZero) {
  const NormShape s{2, 2, 257};
  const double offset[2] = {1e5 + 0.37, -1000.3}, spread[2] = {0.5, 0.05};
  std::mt19937 rng(17);
  std::normal_distribution<double> normal;
  std::vector<float> x(s.n * s.c * s.m);
  for (int64_t i = 0; i < s.n; ++i)
    for (int64_t ch = 0; ch < s.c; ++ch)
      for (int64_t j = 0; j < s.m; ++j)
        x[(i * s.c + ch) * s.m + j] = static_cast<float>(offset[ch] + spread[ch] * normal(rng));
  const std::vector<float> w = {1.3f, 0.7f}, b = {0.2f, -0.1f};
  const NormAct act;  // no activations: t = x, and gu = the output's gradient
  std::vector<float> y(x.size()), g_in(x.size()), ones(x.size(), 1.0f);
  double mean[2], var[2], grad_w[2], grad_b[2];
  NormActForward(x.data(), nullptr, s, w.data(), b.data(), act, nullptr, y.data(), mean, var, 1);
  NormActBackward(ones.data(), x.data(), s, w.data(), b.data(), act, mean, var, g_in.data(), grad_w,
                  grad_b, 1);
  for (int64_t ch = 0; ch < s.c; ++ch) {
    SCOPED_TRACE("channel " + std::to_string(ch));
    const double count = static_cast<double>(s.n * s.m);
    double mu = 0, v = 0, abs_dev = 0;
    for (int64_t i = 0; i < s.n; ++i)
      for (int64_t j = 0; j < s.m; ++j) mu += x[(i * s.c + ch) * s.m + j];
    mu /= count;
    for (int64_t i = 0; i < s.n; ++i) {
      for (int64_t j = 0; j < s.m; ++j) {
        const double d = x[(i * s.c + ch) * s.m + j] - mu;
        v += d * d;
        abs_dev += std::abs(d);
      }
    }
    v /= count;
    const double invstd = 1 / std::sqrt(v + act.eps);
    EXPECT_NEAR(mean[ch], mu, 1e-12 * std::abs(mu));
    EXPECT_NEAR(var[ch], v, 1e-9 * v);
    EXPECT_NEAR(grad_b[ch], count, 1e-9 * count);
    // Σ (t − μ)·invstd = 0, on the scale of Σ |t − μ|·invstd.
    EXPECT_NEAR(grad_w[ch], 0, 1e-9 * abs_dev * invstd);
    // ∂(Σ y)/∂x = 0, on the scale of w·invstd (float rounding of the three coefficients).
    float worst = 0;
    for (int64_t i = 0; i < s.n; ++i)
      for (int64_t j = 0; j < s.m; ++j)
        worst = std::max(worst, std::abs(g_in[(i * s.c + ch) * s.m + j]));
    EXPECT_LE(worst, 1e-5 * w[ch] * invstd);
  }
}

// What the fused operation does not take goes to LibTorch's operators, giving their exact bits:
// eval mode (running statistics), a non-contiguous input, double, and fused = false.
TEST(Kernels, FusedNormFallsBackToLibTorch) {
  torch::manual_seed(12);
  torch::nn::BatchNorm2d bn(4);
  const auto x = torch::randn({1, 4, 12, 10});
  auto separate = [&](const torch::Tensor& in) {
    return torch::leaky_relu(bn.ptr()->forward(in), 0.2);
  };
  torch::NoGradGuard no_grad;
  // LibTorch's operators both ways, on one machine: the same bits.
  const auto fallbacks = test::KernelCallsDuring([&] {
    EXPECT_TRUE(torch::equal(NormActivate(bn, x, {}, 1, 0.2, false), separate(x)));
    const auto strided = x.transpose(2, 3);
    EXPECT_TRUE(torch::equal(NormActivate(bn, strided, {}, 1, 0.2, true), separate(strided)));
    const auto xd = x.to(torch::kDouble);
    bn->to(torch::kDouble);
    EXPECT_TRUE(torch::equal(NormActivate(bn, xd, {}, 1, 0.2, true), separate(xd)));
    bn->to(torch::kFloat);
    bn->eval();
    EXPECT_TRUE(torch::equal(NormActivate(bn, x, {}, 1, 0.2, true), separate(x)));
  });
  EXPECT_EQ(fallbacks[KernelId::kNormAct], 0) << "a fallback ran the fused kernel";
  // Training mode in float does take the fused path, with the same values.
  bn->train();
  torch::Tensor fused;
  EXPECT_EQ(test::KernelCallsDuring([&] { fused = NormActivate(bn, x, {}, 1, 0.2, true); })
                [KernelId::kNormAct],
            1)
      << "the fused path did not run";
  const auto plain = separate(x);
  EXPECT_REL_CLOSE(fused, plain, 1e-5);
}
// conv_fn(x, conv) in float against `ref` (conv's weights in double) on a random x of that shape:
// the output and the gradients of x, the weights and the bias, to 1e-6 of the largest value.
void ExpectConvMatchesDouble(
    const std::function<torch::Tensor(const torch::Tensor&, const torch::nn::Conv2d&)>& conv_fn,
    const torch::nn::Conv2d& conv, torch::nn::Conv2d ref, std::vector<int64_t> shape) {
  const auto x = torch::randn(shape).requires_grad_();
  const auto x_ref = x.detach().to(torch::kDouble).requires_grad_();
  auto out = conv_fn(x, conv);
  auto out_ref = ref(x_ref);
  EXPECT_REL_CLOSE(out, out_ref, 1e-6);
  const auto g = torch::randn(out.sizes());
  out.backward(g);
  out_ref.backward(g.to(torch::kDouble));
  EXPECT_REL_CLOSE(x.grad(), x_ref.grad(), 1e-6) << "x";
  EXPECT_REL_CLOSE(conv->weight.grad(), ref->weight.grad(), 1e-6) << "weights";
  EXPECT_REL_CLOSE(conv->bias.grad(), ref->bias.grad(), 1e-6) << "bias";
}

// The direct 3×3 kernels (kernels/cpu/conv3x3.h) of every instruction set this CPU has, against
// LibTorch's convolution in double: the output and the gradients of x, the weights and the bias,
// in float. The shapes have output channels that fill no whole block (3, 13, 17), heights that
// fill no whole band of rows (1, 7, 10), widths of one to nine vectors, and a batch of two.
TEST(Kernels, DirectConvKernelsMatchLibTorch) {
  const std::string best = Conv3x3Kernel();
  struct Shape {
    int64_t n, cin, cout, h, w;
  };
  int kernels = 0;
  for (const char* kernel : {"generic", "avx2", "avx512"}) {
    if (!SelectConv3x3Kernel(kernel)) continue;
    ++kernels;
    for (const auto& s : {Shape{1, 4, 8, 16, 16}, Shape{1, 8, 13, 7, 48}, Shape{2, 5, 17, 10, 32},
                          Shape{1, 3, 3, 1, 16}, Shape{1, 25, 16, 12, 144}}) {
      SCOPED_TRACE(std::string(kernel) + ": n " + std::to_string(s.n) + ", " +
                   std::to_string(s.cin) + " → " + std::to_string(s.cout) + ", " +
                   std::to_string(s.h) + "x" + std::to_string(s.w));
      torch::manual_seed(9);
      namespace nn = torch::nn;
      nn::Conv2d conv(nn::Conv2dOptions(s.cin, s.cout, 3).padding(1).bias(true));
      nn::Conv2d ref(nn::Conv2dOptions(s.cin, s.cout, 3).padding(1).bias(true));
      ref->to(torch::kDouble);
      {
        torch::NoGradGuard no_grad;  // a non-zero bias, so that a lost one shows
        conv->bias.uniform_(-1, 1);
        ref->weight.copy_(conv->weight);
        ref->bias.copy_(conv->bias);
      }
      ExpectConvMatchesDouble(DirectConv3x3, conv, ref, {s.n, s.cin, s.h, s.w});
    }
  }
  EXPECT_GE(kernels, 1);
  EXPECT_TRUE(SelectConv3x3Kernel(best));
}

// The same bits on 1, 2 and 3 threads: rows are split in fixed bands, and the weights' gradient
// sums the bands in order whatever thread computed them.
TEST(Kernels, DirectConvGivesTheSameBitsOnAnyThreadCount) {
  const int threads_before = at::get_num_threads();
  torch::manual_seed(10);
  namespace nn = torch::nn;
  nn::Conv2d conv(nn::Conv2dOptions(8, 13, 3).padding(1).bias(true));
  const auto x = torch::randn({1, 8, 66, 64});
  const auto g = torch::randn({1, 13, 66, 64});
  std::vector<std::vector<torch::Tensor>> runs;
  for (int threads : {1, 2, 3}) {
    at::set_num_threads(threads);
    const auto xt = x.clone().requires_grad_();
    conv->zero_grad();
    auto out = DirectConv3x3(xt, conv);
    out.backward(g);
    runs.push_back(
        {out.detach(), xt.grad(), conv->weight.grad().clone(), conv->bias.grad().clone()});
  }
  at::set_num_threads(threads_before);
  for (size_t r = 1; r < runs.size(); ++r) {
    for (size_t i = 0; i < runs[0].size(); ++i) {
      EXPECT_TRUE(torch::equal(runs[r][i], runs[0][i])) << "run " << r << ", tensor " << i;
    }
  }
}

// The 1×1 convolution as a matrix product, against LibTorch's convolution in double: the output
// and the gradients of x, the weights and the bias, in float, on a width that leaves TapsProduct
// a short last chunk.
TEST(Kernels, Conv1x1ProductMatchesLibTorch) {
  torch::manual_seed(15);
  namespace nn = torch::nn;
  const int64_t cin = 25, cout = 3, h = 40, w = 240;  // 9,600 pixels: one chunk and a part
  nn::Conv2d conv(nn::Conv2dOptions(cin, cout, 1).bias(true));
  nn::Conv2d ref(nn::Conv2dOptions(cin, cout, 1).bias(true));
  ref->to(torch::kDouble);
  {
    torch::NoGradGuard no_grad;
    conv->bias.uniform_(-1, 1);
    ref->weight.copy_(conv->weight);
    ref->bias.copy_(conv->bias);
  }
  ExpectConvMatchesDouble(Conv1x1Product, conv, ref, {1, cin, h, w});
}

// The chunked product (OpenBLAS on dippas's threads) against a double reference, forward and
// both gradients, on a width that leaves a short last chunk; and the same bits on 1, 2 and 3
// threads, since the chunks do not follow the thread count.
TEST(Kernels, TapsProductInChunksEqualsTheProduct) {
  if (!HaveChunkedSgemm()) GTEST_SKIP() << "OpenBLAS is not loaded: TapsProduct runs torch::mm";
  torch::manual_seed(7);
  const int64_t m = 61, k = 40, n = 2 * kGemmChunk + 123;
  const auto rows = torch::randn({m, k}).requires_grad_(true);
  const auto x = torch::randn({k, n}).requires_grad_(true);
  const auto g = torch::randn({m, n});
  const auto rd = rows.detach().to(torch::kDouble), xd = x.detach().to(torch::kDouble);
  const auto gd = g.to(torch::kDouble);

  const int threads_before = at::get_num_threads();
  std::vector<std::array<torch::Tensor, 3>> runs;
  for (int threads : {2, 1, 3}) {
    at::set_num_threads(threads);
    rows.mutable_grad().reset();
    x.mutable_grad().reset();
    auto y = TapsProduct(rows, x);
    y.backward(g);
    runs.push_back({y.detach(), rows.grad().clone(), x.grad().clone()});
  }
  at::set_num_threads(threads_before);
  EXPECT_REL_CLOSE(runs[0][0], rd.mm(xd), 1e-5);
  EXPECT_REL_CLOSE(runs[0][1], gd.mm(xd.t()), 1e-5);  // summed over 3 chunks of n
  EXPECT_REL_CLOSE(runs[0][2], rd.t().mm(gd), 1e-5);
  for (size_t r = 1; r < runs.size(); ++r) {
    for (int i = 0; i < 3; ++i) EXPECT_TRUE(torch::equal(runs[r][i], runs[0][i])) << r << " " << i;
  }
  // Not torch::mm under another name: forward and the two gradients were chunked products.
  rows.mutable_grad().reset();
  x.mutable_grad().reset();
  const auto calls = test::KernelCallsDuring([&] { TapsProduct(rows, x).backward(g); });
  EXPECT_EQ(calls[KernelId::kChunkedSgemm], 3);
}


// The kernels run the level DIPPAS_CPU_LEVEL names (ctest runs this file once per level the CPU
// has), or the CPU's best without it; a forward convolution counts on that level's kernel.
TEST(Kernels, RunAtTheDispatchLevel) {
  const char* env = std::getenv("DIPPAS_CPU_LEVEL");
  const std::string expected = env != nullptr && *env ? env : CpuLevelName(CpuMaxLevel());
  std::printf("dispatch level: %s (this CPU runs up to %s)\n", expected.c_str(),
              CpuLevelName(CpuMaxLevel()));
  EXPECT_EQ(Conv3x3Kernel(), expected);
  EXPECT_EQ(PhiloxKernel(), expected);
  std::vector<float> in(2 * 3 * 16, 1.0f), w(4 * 2 * 9, 0.5f), out(4 * 3 * 16);
  const auto calls = test::KernelCallsDuring(
      [&] { Conv3x3Forward(in.data(), w.data(), nullptr, {2, 4, 3, 16}, out.data(), 1); });
  EXPECT_EQ(calls[test::Conv3x3KernelOf(expected.c_str())], 1);
  std::vector<float> z(64, 0.0f), n(64);
  const auto philox = test::KernelCallsDuring(
      [&] { PhiloxPerturb(z.data(), 1.0f, 7, n.data(), 0, 64); });
  const auto level = ParseCpuLevel(expected);
  ASSERT_TRUE(level.has_value());
  const KernelId philox_id = *level == CpuLevel::kAvx512 ? KernelId::kPhiloxAvx512
                             : *level == CpuLevel::kAvx2 ? KernelId::kPhiloxAvx2
                                                         : KernelId::kPhiloxGeneric;
  EXPECT_EQ(philox[philox_id], 1);
}

// The hook refuses an unknown level, and a level above the CPU's (shown here for every pair, so
// the refusal is tested on any machine), naming the variable; unset, the CPU's best.
TEST(Kernels, DispatchLevelRefusesWhatTheCpuLacks) {
  const std::vector<CpuLevel> levels = {CpuLevel::kGeneric, CpuLevel::kAvx2, CpuLevel::kAvx512};
  for (CpuLevel max : levels) {
    EXPECT_EQ(ResolveCpuLevel(nullptr, max), max);
    EXPECT_EQ(ResolveCpuLevel("", max), max);
    for (CpuLevel l : levels) {
      if (static_cast<int>(l) <= static_cast<int>(max)) {
        EXPECT_EQ(ResolveCpuLevel(CpuLevelName(l), max), l);
      } else {
        try {
          ResolveCpuLevel(CpuLevelName(l), max);
          ADD_FAILURE() << CpuLevelName(l) << " accepted on a CPU up to " << CpuLevelName(max);
        } catch (const std::runtime_error& e) {
          EXPECT_NE(std::string(e.what()).find("DIPPAS_CPU_LEVEL"), std::string::npos) << e.what();
          EXPECT_NE(std::string(e.what()).find("lacks"), std::string::npos) << e.what();
        }
      }
    }
    EXPECT_THROW(ResolveCpuLevel("avx3", max), std::runtime_error);
    EXPECT_THROW(ResolveCpuLevel("AVX2", max), std::runtime_error);
  }
  // The selection functions refuse what this CPU lacks too.
  for (CpuLevel l : levels) {
    if (CpuHas(l)) continue;
    EXPECT_FALSE(SelectConv3x3Kernel(CpuLevelName(l)));
    EXPECT_FALSE(SelectPhiloxKernel(CpuLevelName(l)));
  }
  EXPECT_FALSE(SelectConv3x3Kernel("avx3"));
}

// Each hand-written kernel checks what it assumes — widths, sizes, contiguity, dtype, arrays —
// and refuses the rest with std::invalid_argument instead of reading past an array (the direct
// 3×3 kernels read whole 16-float vectors along a row: at width 20 they read beyond it).
TEST(Kernels, RefuseShapesTheyWereNotWrittenFor) {
  std::vector<float> a(4096, 0.5f), b(4096, 0.25f), c(4096);
  std::vector<double> d1(64), d2(64);
  // 3×3 convolutions: width 20, width 0, no channel, a null array; the smallest shape they take.
  for (Conv3x3Shape s : {Conv3x3Shape{2, 3, 5, 20}, Conv3x3Shape{2, 3, 5, 0},
                         Conv3x3Shape{0, 3, 5, 16}, Conv3x3Shape{2, 3, 0, 16}}) {
    EXPECT_THROW(Conv3x3Forward(a.data(), b.data(), nullptr, s, c.data(), 1), std::invalid_argument);
    EXPECT_THROW(Conv3x3BackwardInput(a.data(), b.data(), s, c.data(), 1), std::invalid_argument);
    EXPECT_THROW(Conv3x3BackwardWeight(a.data(), b.data(), s, c.data(), 1), std::invalid_argument);
  }
  EXPECT_THROW(Conv3x3Forward(nullptr, b.data(), nullptr, {2, 3, 5, 16}, c.data(), 1),
               std::invalid_argument);
  EXPECT_NO_THROW(Conv3x3Forward(a.data(), b.data(), nullptr, {2, 3, 5, 16}, c.data(), 1));
  const auto x20 = torch::randn({1, 2, 5, 20}), x16 = torch::randn({1, 2, 5, 16});
  const auto w = torch::randn({3, 2, 3, 3}), bias = torch::randn({3});
  EXPECT_THROW(Conv3x3Direct(x20, w, bias), std::invalid_argument);
  EXPECT_THROW(Conv3x3Direct(x16.to(torch::kDouble), w, bias), std::invalid_argument);
  EXPECT_THROW(Conv3x3Direct(x16, torch::randn({3, 2, 5, 5}), bias), std::invalid_argument);
  EXPECT_NO_THROW(Conv3x3Direct(x16, w, bias));
  // Philox: a range not starting on a chunk, a reversed one, no output.
  EXPECT_THROW(PhiloxPerturb(a.data(), 1.0f, 1, c.data(), 5, 64), std::invalid_argument);
  EXPECT_THROW(PhiloxPerturb(a.data(), 1.0f, 1, c.data(), 64, 32), std::invalid_argument);
  EXPECT_THROW(PhiloxPerturb(a.data(), 1.0f, 1, nullptr, 0, 64), std::invalid_argument);
  EXPECT_THROW(PhiloxPerturbGeneric(a.data(), 1.0f, 1, c.data(), 31, 64), std::invalid_argument);
  EXPECT_NO_THROW(PhiloxPerturb(a.data(), 1.0f, 1, c.data(), 32, 45));
  // BatchNorm: one value per channel (no variance), no channel, a null array.
  const NormAct act{1, 0.2f, 1e-5};
  EXPECT_THROW(NormActForward(a.data(), nullptr, {1, 2, 1}, b.data(), b.data(), act, nullptr,
                              c.data(), d1.data(), d2.data(), 1),
               std::invalid_argument);
  EXPECT_THROW(NormActForward(a.data(), nullptr, {1, 0, 8}, b.data(), b.data(), act, nullptr,
                              c.data(), d1.data(), d2.data(), 1),
               std::invalid_argument);
  EXPECT_THROW(NormActForward(a.data(), nullptr, {1, 2, 8}, nullptr, b.data(), act, nullptr,
                              c.data(), d1.data(), d2.data(), 1),
               std::invalid_argument);
  EXPECT_THROW(NormActBackward(a.data(), b.data(), {2, 2, 0}, b.data(), b.data(), act, d1.data(),
                               d2.data(), c.data(), d1.data(), d2.data(), 1),
               std::invalid_argument);
  EXPECT_NO_THROW(NormActForward(a.data(), nullptr, {1, 2, 8}, b.data(), b.data(), act, nullptr,
                                 c.data(), d1.data(), d2.data(), 1));
  // The chunked products: a negative size, a null array with elements.
  if (HaveChunkedSgemm()) {
    EXPECT_THROW(ChunkedSgemmNN(-1, 4, 4, a.data(), b.data(), c.data(), 1), std::invalid_argument);
    EXPECT_THROW(ChunkedSgemmNT(4, 4, 4, nullptr, b.data(), c.data(), 1), std::invalid_argument);
    EXPECT_THROW(ChunkedSgemmTN(4, 4, 4, a.data(), b.data(), nullptr, 1), std::invalid_argument);
    EXPECT_NO_THROW(ChunkedSgemmNN(4, 4, 4, a.data(), b.data(), c.data(), 1));
    EXPECT_THROW(ChunkedMatmul(torch::randn({3, 4}), torch::randn({5, 6})), std::invalid_argument);
    EXPECT_THROW(ChunkedMatmul(torch::randn({4, 3}).t(), torch::randn({4, 6})),
                 std::invalid_argument);  // not contiguous
  }
  // The network's operators: sizes that do not fit together, odd sides, another dtype.
  EXPECT_THROW(TapsToOutputs(torch::randn({1, 20, 12}), torch::randn({2}), torch::randn({1}), 3, 4),
               std::invalid_argument);  // 20 rows ≠ 9·2 + 1
  EXPECT_NO_THROW(
      TapsToOutputs(torch::randn({1, 19, 12}), torch::randn({2}), torch::randn({1}), 3, 4));
  EXPECT_THROW(AddUpsampledTaps(torch::randn({2, 15}), torch::randn({2, 4}), 3, 5),
               std::invalid_argument);
  EXPECT_THROW(AddUpsampledTaps(torch::randn({2, 16}), torch::randn({3, 4}), 4, 4),
               std::invalid_argument);
  NormStats stats;
  const auto nx = torch::randn({1, 2, 3, 4});
  EXPECT_THROW(FusedNormActivate(nx.to(torch::kDouble), nx.to(torch::kDouble), torch::ones({2}),
                                 torch::zeros({2}), false, 1, 0.2, 1e-5, &stats),
               std::invalid_argument);
  EXPECT_THROW(FusedNormActivate(nx, nx, torch::ones({3}), torch::zeros({3}), false, 1, 0.2, 1e-5,
                                 &stats),
               std::invalid_argument);
  EXPECT_THROW(FusedNormActivate(nx.transpose(2, 3), nx.transpose(2, 3), torch::ones({2}),
                                 torch::zeros({2}), false, 1, 0.2, 1e-5, &stats),
               std::invalid_argument);
  // The residual's plane kernels: no pixel, no level, a negative variance.
  EXPECT_THROW(cpu::WaveletNoisePlane(a.data(), 0, 5, 9.0, 4, c.data()), std::invalid_argument);
  EXPECT_THROW(cpu::WaveletNoisePlane(a.data(), 8, 8, 9.0, 0, c.data()), std::invalid_argument);
  EXPECT_THROW(cpu::WaveletNoisePlane(a.data(), 8, 8, -1.0, 4, c.data()), std::invalid_argument);
  EXPECT_THROW(cpu::WienerAdaptivePlane(d1.data(), 8, 0, 9.0), std::invalid_argument);
  EXPECT_THROW(cpu::WienerGainPlane(nullptr, 8, 8, 9.0), std::invalid_argument);
  EXPECT_NO_THROW(cpu::WaveletNoisePlane(a.data(), 8, 8, 9.0, 4, c.data()));
}

}  // namespace
}  // namespace dippas
