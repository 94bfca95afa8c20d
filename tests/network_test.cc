// The DIP network f_φ against SPEC §5: widths, parameter counts, shapes, option checks.
#include "dippas/dip/network.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <functional>
#include <map>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "dippas/kernels/cpu/batch_norm.h"
#include "dippas/kernels/cpu/conv3x3.h"
#include "dippas/kernels/cpu/chunked_sgemm.h"
#include "kernel_counts.h"
#include "test_util.h"

namespace dippas {
namespace {

TEST(Network, MultiResWidthsMatchSpec) {
  const std::array<int64_t, 5> u = {16, 32, 64, 128, 256};
  const std::array<std::array<int64_t, 3>, 5> split = {
      {{4, 8, 13}, {8, 17, 26}, {17, 35, 53}, {35, 71, 106}, {71, 142, 213}}};
  const std::array<int64_t, 5> width = {25, 51, 105, 212, 426};
  for (size_t i = 0; i < u.size(); ++i) {
    EXPECT_EQ(MultiResSplit(u[i], 1.67), split[i]) << "U = " << u[i];
    EXPECT_EQ(MultiResWidth(u[i], 1.67), width[i]) << "U = " << u[i];
  }
}

TEST(Network, DefaultParameterCount) {
  MultiResUNet net;
  EXPECT_EQ(net->NumParameters(), 2219718);
  EXPECT_EQ(net->EncoderWidths(), (std::vector<int64_t>{25, 51, 105, 212, 426}));
}

TEST(Network, DefaultForwardShapeAndRange) {
  torch::manual_seed(0);
  MultiResUNet net;
  auto z = 0.1 * torch::randn({1, 512, 32, 32});
  auto out = net->forward(z);
  EXPECT_EQ(out.sizes(), (std::vector<int64_t>{1, 3, 32, 32}));
  EXPECT_GT(out.min().item<float>(), 0.0f);
  EXPECT_LT(out.max().item<float>(), 1.0f);
  // Every trainable parameter takes part in the graph.
  out.mean().backward();
  for (const auto& p : net->named_parameters()) {
    EXPECT_TRUE(p.value().grad().defined()) << p.key();
  }
}

TEST(Network, RejectsSizeNotMultipleOf16) {
  MultiResUNet net;
  EXPECT_THROW(net->forward(torch::zeros({1, 512, 24, 32})), std::invalid_argument);
  EXPECT_THROW(net->forward(torch::zeros({1, 512, 32, 40})), std::invalid_argument);
  EXPECT_THROW(net->forward(torch::zeros({1, 8, 32, 32})), std::invalid_argument);
  EXPECT_THROW(net->forward(torch::zeros({512, 32, 32})), std::invalid_argument);
}

NetworkOptions TinyOptions() {
  NetworkOptions o;
  o.input_depth = 2;
  o.filters = {4, 8};
  o.skips = {4};
  return o;  // alpha 1.67, 3 output channels
}

TEST(Network, TinyParameterCountByHand) {
  // MR(4): W = 6.68 → (1, 2, 3) = 6; MR(8): W = 13.36 → (2, 4, 6) = 12.
  // conv k×k in→out: k·k·in·out + out; BatchNorm(ch): 2·ch; conv unit = both.
  const int64_t encoder0 = (9 * 2 * 1 + 1 + 2 * 1)       // 3×3 unit 2→1
                           + (9 * 1 * 2 + 2 + 2 * 2)     // 3×3 unit 1→2
                           + (9 * 2 * 3 + 3 + 2 * 3)     // 3×3 unit 2→3
                           + 2 * 6                       // BN(concat)
                           + (1 * 2 * 6 + 6 + 2 * 6)     // 1×1 shortcut unit 2→6
                           + 2 * 6;                      // BN(out)
  const int64_t down1 = 9 * 6 * 6 + 6 + 2 * 6;           // 3×3 stride-2 unit 6→6
  const int64_t encoder1 = (9 * 6 * 2 + 2 + 2 * 2)       // 3×3 unit 6→2
                           + (9 * 2 * 4 + 4 + 2 * 4)     // 3×3 unit 2→4
                           + (9 * 4 * 6 + 6 + 2 * 6)     // 3×3 unit 4→6
                           + 2 * 12                      // BN(concat)
                           + (1 * 6 * 12 + 12 + 2 * 12)  // 1×1 shortcut unit 6→12
                           + 2 * 12;                     // BN(out)
  const int64_t skip0 = (9 * 6 * 4 + 4 + 2 * 4)          // 3×3 unit 6→4
                        + (1 * 6 * 4 + 4 + 2 * 4)        // 1×1 unit 6→4
                        + 2 * 4;                         // BN
  const int64_t decoder0 = (9 * 16 * 1 + 1 + 2 * 1)      // 3×3 unit (4+12)→1
                           + (9 * 1 * 2 + 2 + 2 * 2)     // 3×3 unit 1→2
                           + (9 * 2 * 3 + 3 + 2 * 3)     // 3×3 unit 2→3
                           + 2 * 6                       // BN(concat)
                           + (1 * 16 * 6 + 6 + 2 * 6)    // 1×1 shortcut unit 16→6
                           + 2 * 6;                      // BN(out)
  const int64_t head = 1 * 6 * 3 + 3;                    // 1×1 conv 6→3, no BN
  const int64_t expected = encoder0 + down1 + encoder1 + skip0 + decoder0 + head;
  ASSERT_EQ(expected, 1757);

  MultiResUNet net(TinyOptions());
  EXPECT_EQ(net->NumParameters(), expected);
  EXPECT_EQ(net->EncoderWidths(), (std::vector<int64_t>{6, 12}));

  // Two levels: any even size works; odd ones are rejected.
  auto out = net->forward(torch::randn({2, 2, 6, 10}));
  EXPECT_EQ(out.sizes(), (std::vector<int64_t>{2, 3, 6, 10}));
  EXPECT_THROW(net->forward(torch::randn({2, 2, 7, 10})), std::invalid_argument);
}

// Runs Check() and returns the message, or "" when it passes.
std::string CheckMessage(const NetworkOptions& o) {
  try {
    o.Check();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

TEST(Network, CheckRejectsBadOptions) {
  EXPECT_EQ(CheckMessage(NetworkOptions{}), "");
  EXPECT_EQ(CheckMessage(TinyOptions()), "");

  auto o = NetworkOptions{};
  o.skips = {16, 32, 64};  // one short
  EXPECT_NE(CheckMessage(o).find("skips"), std::string::npos);
  o.skips = {16, 32, 64, 128, 256};  // one too many
  EXPECT_NE(CheckMessage(o).find("skips"), std::string::npos);

  o = NetworkOptions{};
  o.filters[2] = 0;
  EXPECT_NE(CheckMessage(o).find("filters[2]"), std::string::npos);
  o.filters[2] = -64;
  EXPECT_NE(CheckMessage(o).find("filters[2]"), std::string::npos);
  o.filters[2] = 1;  // c1 = int(0.167·1.67) = 0
  EXPECT_NE(CheckMessage(o).find("filters[2]"), std::string::npos);

  o = NetworkOptions{};
  o.skips[1] = 0;
  EXPECT_NE(CheckMessage(o).find("skips[1]"), std::string::npos);

  o = NetworkOptions{};
  o.input_depth = 0;
  EXPECT_NE(CheckMessage(o).find("input_depth"), std::string::npos);

  o = NetworkOptions{};
  o.output_channels = -3;
  EXPECT_NE(CheckMessage(o).find("output_channels"), std::string::npos);

  o = NetworkOptions{};
  o.alpha = 0.0;
  EXPECT_NE(CheckMessage(o).find("alpha"), std::string::npos);

  o = NetworkOptions{};
  o.filters.clear();
  o.skips.clear();
  EXPECT_NE(CheckMessage(o).find("filters"), std::string::npos);

  // The constructor checks too.
  o = NetworkOptions{};
  o.skips.pop_back();
  EXPECT_THROW(MultiResUNet{o}, std::invalid_argument);
}

// The fused path against LibTorch's own convolutions, in double so that only the summation
// order separates them: outputs and the gradients of both weights and biases and of x (the last
// decoder block's input, fused_decoder, needs it).
TEST(Network, FusedConvsEqualTheConvolutions) {
  torch::manual_seed(3);
  struct Shape {
    int64_t n, cin, c3, c1, h, w;
  };
  const int threads_before = at::get_num_threads();
  // On 3 threads the rows of the shifted sums split inside a plane and across the batch.
  for (int threads : {1, 3})
    for (const auto& s : {Shape{1, 13, 4, 6, 7, 5}, Shape{2, 3, 2, 5, 4, 9},
                          Shape{1, 5, 3, 2, 1, 3}, Shape{1, 512, 4, 25, 16, 16}}) {
      at::set_num_threads(threads);
      SCOPED_TRACE("n " + std::to_string(s.n) + ", in " + std::to_string(s.cin) + ", " +
                   std::to_string(s.h) + "x" + std::to_string(s.w) + ", " +
                   std::to_string(threads) + " threads");
      namespace nn = torch::nn;
      nn::Conv2d conv3(nn::Conv2dOptions(s.cin, s.c3, 3).padding(1).bias(true));
      nn::Conv2d conv1(nn::Conv2dOptions(s.cin, s.c1, 1).bias(true));
      conv3->to(torch::kDouble);
      conv1->to(torch::kDouble);
      {
        torch::NoGradGuard no_grad;  // non-zero biases, so that a lost bias shows
        conv3->bias.uniform_(-1, 1);
        conv1->bias.uniform_(-1, 1);
      }
      const auto x = torch::randn({s.n, s.cin, s.h, s.w}, torch::kDouble).requires_grad_();
      const auto g3 = torch::randn({s.n, s.c3, s.h, s.w}, torch::kDouble);
      const auto g1 = torch::randn({s.n, s.c1, s.h, s.w}, torch::kDouble);

      auto ref3 = conv3(x), ref1 = conv1(x);
      torch::autograd::backward({ref3, ref1}, {g3, g1});
      const std::vector<torch::Tensor> ref_grads = {
          conv3->weight.grad().clone(), conv3->bias.grad().clone(), conv1->weight.grad().clone(),
          conv1->bias.grad().clone(), x.grad().clone()};
      for (auto& p : {conv3->weight, conv3->bias, conv1->weight, conv1->bias, x})
        p.mutable_grad().reset();

      auto [out3, out1] = FusedConv3x3And1x1(x, conv3, conv1);
      EXPECT_REL_CLOSE(out3, ref3, 1e-12);
      EXPECT_REL_CLOSE(out1, ref1, 1e-12);
      torch::autograd::backward({out3, out1}, {g3, g1});
      const std::vector<torch::Tensor> grads = {conv3->weight.grad(), conv3->bias.grad(),
                                                conv1->weight.grad(), conv1->bias.grad(), x.grad()};
      for (size_t i = 0; i < grads.size(); ++i) {
        ASSERT_TRUE(grads[i].defined()) << "gradient " << i;
        EXPECT_REL_CLOSE(grads[i], ref_grads[i], 1e-12) << "gradient " << i;
      }
    }
  at::set_num_threads(threads_before);
}

// With `low`: the convolutions of cat(x, nearest ×2 upsampling of low), low's taps multiplied at
// its resolution. Against LibTorch's convolutions on the upsampled concatenation, in double:
// outputs and the gradients of the weights, biases, x and low. An odd size or a batch of two
// takes the concatenation itself.
TEST(Network, FusedConvsOnAnUpsampledInputEqualTheConvolutions) {
  torch::manual_seed(4);
  struct Shape {
    int64_t n, cx, cl, c3, c1, h, w;
  };
  const int threads_before = at::get_num_threads();
  for (int threads : {1, 3})
    for (const auto& s : {Shape{1, 3, 5, 4, 6, 8, 6}, Shape{1, 16, 51, 4, 25, 16, 16},
                          Shape{1, 2, 3, 2, 3, 3, 10}, Shape{2, 3, 4, 2, 5, 4, 8}}) {
      at::set_num_threads(threads);
      SCOPED_TRACE("n " + std::to_string(s.n) + ", x " + std::to_string(s.cx) + ", low " +
                   std::to_string(s.cl) + ", " + std::to_string(s.h) + "x" + std::to_string(s.w) +
                   ", " + std::to_string(threads) + " threads");
      namespace nn = torch::nn;
      namespace F = torch::nn::functional;
      nn::Conv2d conv3(nn::Conv2dOptions(s.cx + s.cl, s.c3, 3).padding(1).bias(true));
      nn::Conv2d conv1(nn::Conv2dOptions(s.cx + s.cl, s.c1, 1).bias(true));
      conv3->to(torch::kDouble);
      conv1->to(torch::kDouble);
      {
        torch::NoGradGuard no_grad;
        conv3->bias.uniform_(-1, 1);
        conv1->bias.uniform_(-1, 1);
      }
      const auto x = torch::randn({s.n, s.cx, s.h, s.w}, torch::kDouble).requires_grad_();
      const auto low = torch::randn({s.n, s.cl, s.h / 2, s.w / 2}, torch::kDouble).requires_grad_();
      const auto g3 = torch::randn({s.n, s.c3, s.h, s.w}, torch::kDouble);
      const auto g1 = torch::randn({s.n, s.c1, s.h, s.w}, torch::kDouble);

      const auto up = F::interpolate(
          low,
          F::InterpolateFuncOptions().size(std::vector<int64_t>{s.h, s.w}).mode(torch::kNearest));
      const auto in = torch::cat({x, up}, 1);
      auto ref3 = conv3(in), ref1 = conv1(in);
      torch::autograd::backward({ref3, ref1}, {g3, g1});
      const std::vector<torch::Tensor> ref_grads = {
          conv3->weight.grad().clone(), conv3->bias.grad().clone(), conv1->weight.grad().clone(),
          conv1->bias.grad().clone(),   x.grad().clone(),           low.grad().clone()};
      for (auto& p : {conv3->weight, conv3->bias, conv1->weight, conv1->bias, x, low})
        p.mutable_grad().reset();

      auto [out3, out1] = FusedConv3x3And1x1(x, conv3, conv1, low);
      EXPECT_REL_CLOSE(out3, ref3, 1e-12);
      EXPECT_REL_CLOSE(out1, ref1, 1e-12);
      torch::autograd::backward({out3, out1}, {g3, g1});
      const std::vector<torch::Tensor> grads = {
          conv3->weight.grad(), conv3->bias.grad(), conv1->weight.grad(),
          conv1->bias.grad(),   x.grad(),           low.grad()};
      for (size_t i = 0; i < grads.size(); ++i) {
        ASSERT_TRUE(grads[i].defined()) << "gradient " << i;
        EXPECT_REL_CLOSE(grads[i], ref_grads[i], 1e-12) << "gradient " << i;
      }
    }
  at::set_num_threads(threads_before);
}

// The whole default network with and without a fused block (the first, fused_input; the last
// decoder block, fused_decoder), from the same weights, in double: the same output and gradients
// up to rounding, and the same parameters (a checkpoint of one loads into the other). Gradients
// are compared against the largest of the network: the biases of convolutions followed by
// BatchNorm have a gradient of zero, i.e. rounding noise.
void ExpectFusedBlockMatchesConvolutions(std::vector<bool NetworkOptions::*> fused_blocks,
                                         torch::Tensor* output = nullptr,
                                         test::KernelCounts* calls = nullptr) {
  NetworkOptions fused, plain;
  fused.fused_input = fused.fused_decoder = fused.fused_upsample = false;
  for (auto field : fused_blocks) fused.*field = true;
  plain.fused_input = plain.fused_decoder = plain.fused_upsample = false;
  torch::manual_seed(5);
  MultiResUNet a(fused);
  MultiResUNet b(plain);
  a->to(torch::kDouble);
  b->to(torch::kDouble);
  {
    torch::NoGradGuard no_grad;
    auto pa = a->named_parameters(), pb = b->named_parameters();
    ASSERT_EQ(pa.size(), pb.size());
    for (const auto& p : pa) pb[p.key()].copy_(p.value());
  }
  const auto z = 0.1 * torch::randn({1, 512, 32, 48}, torch::kDouble);
  const auto g = torch::randn({1, 3, 32, 48}, torch::kDouble);
  torch::Tensor out_a, out_b;
  const auto calls_a = test::KernelCallsDuring([&] { out_a = a->forward(z); });
  const auto calls_b = test::KernelCallsDuring([&] { out_b = b->forward(z); });
  EXPECT_REL_CLOSE(out_a, out_b, 1e-12);
  // Each fused block (fused_upsample changes how the decoder's is made) turns one taps product
  // into outputs; the plain network runs none.
  const auto blocks = std::count_if(fused_blocks.begin(), fused_blocks.end(), [](auto field) {
    return field != &NetworkOptions::fused_upsample;
  });
  EXPECT_EQ(calls_a[KernelId::kTapsOutputs], blocks) << "the fused blocks did not run";
  EXPECT_EQ(calls_b[KernelId::kTapsOutputs], 0);
  if (calls) *calls = calls_a;
  if (output) *output = out_a.detach();
  out_a.backward(g);
  out_b.backward(g);
  double largest = 0;
  for (const auto& p : b->parameters())
    largest = std::max(largest, p.grad().abs().max().item<double>());
  auto pb = b->named_parameters();
  for (const auto& p : a->named_parameters()) {
    const double diff = (p.value().grad() - pb[p.key()].grad()).abs().max().item<double>();
    EXPECT_LE(diff, 1e-10 * largest) << p.key();
  }
}

TEST(Network, FusedInputMatchesTheConvolutionNetwork) {
  ExpectFusedBlockMatchesConvolutions({&NetworkOptions::fused_input});
}

TEST(Network, FusedDecoderMatchesTheConvolutionNetwork) {
  ExpectFusedBlockMatchesConvolutions({&NetworkOptions::fused_decoder});
}

TEST(Network, FusedDecoderOnTheDeeperFeaturesMatchesTheConvolutionNetwork) {
  test::KernelCounts with, without;
  ExpectFusedBlockMatchesConvolutions(
      {&NetworkOptions::fused_decoder, &NetworkOptions::fused_upsample}, nullptr, &with);
  ExpectFusedBlockMatchesConvolutions({&NetworkOptions::fused_decoder}, nullptr, &without);
  // fused_upsample multiplies the deeper features' taps at their resolution and adds them up.
  EXPECT_EQ(with[KernelId::kAddUpsampled], 1) << "fused_upsample did not run";
  EXPECT_EQ(without[KernelId::kAddUpsampled], 0);
}

// In float, the fused outputs' bits: the nine taps of the product shifted and added whole, the
// centre tap first, then k = 0..8, then the bias (the order of the sums before one pass did
// them), and the shortcut rows plus their bias.
TEST(Network, FusedConvsSumTheTapsInTheirOrder) {
  torch::manual_seed(11);
  namespace nn = torch::nn;
  const int64_t cin = 7, c3 = 3, c1 = 2, h = 6, w = 9;
  nn::Conv2d conv3(nn::Conv2dOptions(cin, c3, 3).padding(1).bias(true));
  nn::Conv2d conv1(nn::Conv2dOptions(cin, c1, 1).bias(true));
  const auto x = torch::randn({1, cin, h, w});
  torch::NoGradGuard no_grad;
  auto [out3, out1] = FusedConv3x3And1x1(x, conv3, conv1);
  const auto rows = torch::cat(
      {conv3->weight.permute({2, 3, 0, 1}).reshape({9 * c3, cin}), conv1->weight.view({c1, cin})});
  const auto y = TapsProduct(rows, x.reshape({cin, h * w}));
  const auto taps = y.narrow(0, 0, 9 * c3).reshape({9, c3, h, w});
  auto sum = taps[4].clone();
  for (int64_t k = 0; k < 9; ++k) {
    if (k == 4) continue;
    const int64_t dy = k / 3 - 1, dx = k % 3 - 1;
    const int64_t y0 = std::max<int64_t>(0, -dy), x0 = std::max<int64_t>(0, -dx);
    const int64_t rh = h - std::abs(dy), rw = w - std::abs(dx);
    sum.narrow(1, y0, rh).narrow(2, x0, rw) +=
        taps[k].narrow(1, y0 + dy, rh).narrow(2, x0 + dx, rw);
  }
  EXPECT_TRUE(torch::equal(out3[0], sum + conv3->bias.view({c3, 1, 1})));
  EXPECT_TRUE(torch::equal(
      out1[0], y.narrow(0, 9 * c3, c1).reshape({c1, h, w}) + conv1->bias.view({c1, 1, 1})));
}


// The whole default network in float with one CPU rewrite (options `rewrite`) and without it
// (`plain`), from the same weights, against the same network in double: the rewrite loses no
// accuracy against LibTorch's float operators. Float gradients of this network are noisy: a value
// within rounding of a LeakyReLU's kink takes the other slope in float than in double, and one
// such pixel moves every gradient upstream by up to ~1e-2 of its largest value, in either network
// and on any machine's kernels (measured on AVX-512 and AVX2 kernels, several OpenBLAS core
// types: single parameters at 14× or 50× LibTorch's error while others sit at 0.3×). So the test
// compares the errors as a whole — each the smallest over five weight draws, their geometric mean
// ratio to LibTorch's at most 4 — and bounds each parameter only against a wrong gradient (error
// ≥ 5% of its largest value). Measured: 0.7–1.4 against LibTorch's vector code, 2.5 against its
// plain C++ loops (ATEN_CPU_CAPABILITY=default, BatchNorm summed another way), ~1400 with the
// direct convolution's output rounded 1% of the way to bfloat16: a lasting loss of accuracy
// raises the errors of every layer it touches and shows in the mean.
void ExpectAsAccurateAsLibTorchInFloat(const NetworkOptions& rewrite, const NetworkOptions& plain) {
  std::map<std::string, double> best_a, best_b;  // per parameter's gradient, and "output"
  auto keep = [](std::map<std::string, double>& best, const std::string& key, double err) {
    auto it = best.find(key);
    if (it == best.end() || err < it->second) best[key] = err;
  };
  for (int seed : {13, 1, 2, 3, 4}) {
    torch::manual_seed(seed);
    MultiResUNet a(rewrite), b(plain), ref(plain);
    {
      torch::NoGradGuard no_grad;
      auto pa = a->named_parameters();
      for (auto* net : {&b, &ref})
        for (auto& p : (*net)->named_parameters()) p.value().copy_(pa[p.key()]);
    }
    ref->to(torch::kDouble);
    const auto z = 0.1 * torch::randn({1, 512, 32, 48});
    const auto g = torch::randn({1, 3, 32, 48});
    torch::Tensor out_a, out_b;
    const auto calls_a = test::KernelCallsDuring([&] { out_a = a->forward(z); });
    const auto calls_b = test::KernelCallsDuring([&] { out_b = b->forward(z); });
    EXPECT_NE(calls_a, calls_b) << "both ran the same kernels: the rewrite did not run";
    auto out_ref = ref->forward(z.to(torch::kDouble));
    keep(best_a, "output", test::RelMaxError(out_a, out_ref));
    keep(best_b, "output", test::RelMaxError(out_b, out_ref));
    out_a.backward(g);
    out_b.backward(g);
    out_ref.backward(g.to(torch::kDouble));
    auto pb = b->named_parameters(), pr = ref->named_parameters();
    for (const auto& p : a->named_parameters()) {
      if (p.key().find("bn") == std::string::npos && p.key().find("head") == std::string::npos &&
          p.key().find("weight") == std::string::npos)
        continue;  // a convolution's bias before BatchNorm: a gradient of zero, rounding noise
      const auto& gr = pr[p.key()].grad();
      if (gr.abs().max().item<double>() == 0) continue;
      keep(best_a, p.key(), test::RelMaxError(p.value().grad(), gr));
      keep(best_b, p.key(), test::RelMaxError(pb[p.key()].grad(), gr));
    }
  }
  ASSERT_GT(best_a.size(), 100u);
  double log_ratio = 0;
  for (const auto& [key, err_a] : best_a) {
    const double err_b = best_b.at(key);
    log_ratio += std::log(std::max(err_a, 1e-12) / std::max(err_b, 1e-12));
    EXPECT_LE(err_a, std::max(4 * err_b, key == "output" ? 1e-4 : 0.05))
        << key << ", LibTorch's: " << err_b;
  }
  const double mean_ratio = std::exp(log_ratio / static_cast<double>(best_a.size()));
  EXPECT_LE(mean_ratio, 4.0) << "geometric mean of the rewrite's errors over LibTorch's";
  std::printf("error ratio to LibTorch's, geometric mean over %zu tensors: %.2f\n", best_a.size(),
              mean_ratio);
}

// The fused normalisation, LibTorch's convolutions on both sides.
TEST(Network, FusedNormNetworkAsAccurateAsLibTorchInFloat) {
  NetworkOptions fused, plain;
  fused.direct_conv = plain.direct_conv = false;
  plain.fused_norm = false;
  ExpectAsAccurateAsLibTorchInFloat(fused, plain);
}

// dippas's own convolutions (at 32 × 48 the first level's narrow layers), the fused
// normalisation on both sides.
TEST(Network, DirectConvNetworkAsAccurateAsLibTorchInFloat) {
  NetworkOptions direct, plain;
  plain.direct_conv = false;
  ExpectAsAccurateAsLibTorchInFloat(direct, plain);
}

// Where direct_conv takes over: 3×3 on a float image at least kDirectConvMinWidth wide (width a
// multiple of 16), or narrower down to kDirectConvNarrowMinWidth with at most
// kDirectConvNarrowMaxChannels input × output channels; 1×1 likewise, batch 1 and contiguous.
TEST(Network, DirectConvAppliesToTheLayersItWasMeasuredOn) {
  const int64_t w = kDirectConvMinWidth, narrow = kDirectConvNarrowMinWidth;
  const auto image = [](int64_t n, int64_t c, int64_t width) {
    return torch::zeros({n, c, 4, width});
  };
  EXPECT_TRUE(DirectConvApplies(image(1, 4, w), 3, 8));
  EXPECT_TRUE(DirectConvApplies(image(1, 276, w), 3, 105));
  EXPECT_TRUE(DirectConvApplies(image(2, 4, w), 3, 8));
  EXPECT_TRUE(DirectConvApplies(image(1, 4, narrow), 3, 8));
  EXPECT_TRUE(DirectConvApplies(image(1, 64, w - 16), 3, 64));  // 4,096 channels
  EXPECT_FALSE(DirectConvApplies(image(1, 64, w - 16), 3, 65));
  EXPECT_FALSE(DirectConvApplies(image(1, 4, narrow - 16), 3, 8));
  EXPECT_FALSE(DirectConvApplies(image(1, 4, w + 8), 3, 8));  // not a multiple of 16
  EXPECT_FALSE(DirectConvApplies(image(1, 4, w).to(torch::kDouble), 3, 8));
  EXPECT_FALSE(DirectConvApplies(image(1, 4, w), 5, 8));
  const bool blas = HaveChunkedSgemm();
  EXPECT_EQ(DirectConvApplies(image(1, 25, w), 1, 3), blas);
  EXPECT_EQ(DirectConvApplies(image(1, 25, w + 8), 1, 3), blas);  // any width
  EXPECT_EQ(DirectConvApplies(image(1, 25, narrow), 1, 16), blas);
  EXPECT_FALSE(DirectConvApplies(image(1, 80, w - 16), 1, 80));
  EXPECT_FALSE(DirectConvApplies(image(2, 25, w), 1, 3));
  EXPECT_FALSE(DirectConvApplies(image(1, 25, w).transpose(2, 3), 1, 3));  // not contiguous
}

// A conv unit takes dippas's convolution where DirectConvApplies says so — the direct 3×3
// kernels of the dispatch level (forward, and backward for x and for the weights), or the chunked
// product for 1×1 (forward and the two gradients) — and LibTorch's for a stride of 2, with
// direct_conv off, or where it does not apply; the same values either way.
TEST(Network, ConvUnitTakesTheDirectKernelsWhereTheyApply) {
  torch::manual_seed(12);
  const KernelId level_kernel = test::Conv3x3KernelOf(Conv3x3Kernel());
  // The kernels a forward and backward of `unit` on x ran with direct_conv on, after checking
  // that its output equals the one with direct_conv off (which must run none).
  const auto direct_calls = [](ConvUnit unit, const torch::Tensor& x) {
    unit->direct_conv = false;
    torch::Tensor plain;
    const auto off = test::KernelCallsDuring([&] {
      const auto xp = x.clone().requires_grad_();
      plain = unit(xp);
      plain.sum().backward();
    });
    EXPECT_EQ(off.conv3x3() + off[KernelId::kChunkedSgemm], 0) << "direct_conv off";
    unit->direct_conv = true;
    torch::Tensor direct;
    const auto on = test::KernelCallsDuring([&] {
      const auto xd = x.clone().requires_grad_();
      direct = unit(xd);
      direct.sum().backward();
    });
    EXPECT_REL_CLOSE(direct, plain, 1e-5);
    return on;
  };
  const int64_t w = kDirectConvMinWidth;
  const auto c3 = direct_calls(ConvUnit(25, 16, 3), torch::randn({1, 25, 8, w}));
  EXPECT_EQ(c3[level_kernel], 3) << "3×3: forward, x's gradient, the weights' gradient";
  EXPECT_EQ(c3.conv3x3(), 3) << "kernels of another level ran";
  EXPECT_EQ(direct_calls(ConvUnit(25, 16, 3, 2), torch::randn({1, 25, 8, w})).conv3x3(), 0)
      << "stride 2";
  EXPECT_EQ(direct_calls(ConvUnit(64, 65, 3), torch::randn({1, 64, 4, w - 16})).conv3x3(), 0)
      << "narrow image, too many channels";
  const auto c1 = direct_calls(ConvUnit(51, 32, 1), torch::randn({1, 51, 8, w}));
  EXPECT_EQ(c1[KernelId::kChunkedSgemm], HaveChunkedSgemm() ? 3 : 0)
      << "1×1: forward and the two gradients as chunked products (with OpenBLAS loaded)";
}

// The network passes direct_conv to its conv units: at 128², on and off, the same output up to
// float rounding, the direct kernels run only when it is on.
TEST(Network, DirectConvNetworkMatchesTheConvolutionNetwork) {
  NetworkOptions direct, plain;
  plain.direct_conv = false;
  torch::manual_seed(14);
  MultiResUNet a(direct), b(plain);
  {
    torch::NoGradGuard no_grad;
    auto pa = a->named_parameters();
    for (auto& p : b->named_parameters()) p.value().copy_(pa[p.key()]);
  }
  const auto z = 0.1 * torch::randn({1, 512, 128, 128});
  torch::Tensor out_a, out_b;
  const auto calls_a = test::KernelCallsDuring([&] { out_a = a->forward(z); });
  const auto calls_b = test::KernelCallsDuring([&] { out_b = b->forward(z); });
  EXPECT_REL_CLOSE(out_a, out_b, 1e-4);
  EXPECT_GT(calls_a.conv3x3(), 0) << "direct_conv on ran no direct 3×3 kernel";
  EXPECT_EQ(calls_b.conv3x3(), 0) << "direct_conv off ran the direct 3×3 kernels";
}

// sigmoid_floor ε: the same output, and a backward whose slope at the output is max(σ'(a), ε).
// σ' = y(1 − y) from the output y itself, so the head's bias gradient of Σ g·y is known in closed
// form: Σ g·max(y(1 − y), ε) per channel. Channel 0 saturated (bias +9: σ' ≈ 1e-4), where the
// floor raises the slope 400-fold.
TEST(Network, SigmoidFloorKeepsTheOutputAndFloorsItsSlope) {
  const auto z = (torch::manual_seed(7), torch::rand({1, 4, 32, 32}));
  const auto g = torch::randn({1, 3, 32, 32});
  std::map<double, torch::Tensor> outputs, grads;
  for (double eps : {0.0, 0.05}) {
    NetworkOptions o;
    o.input_depth = 4;
    o.filters = {4, 8};
    o.skips = {4};
    o.sigmoid_floor = eps;
    torch::manual_seed(5);
    MultiResUNet net(o);
    torch::Tensor bias;
    for (const auto& p : net->named_parameters()) {
      if (p.key() == "head.bias") bias = p.value();
    }
    ASSERT_TRUE(bias.defined());
    {
      torch::NoGradGuard no_grad;
      bias[0].fill_(9.0);
    }
    const auto y = net->forward(z);
    (y * g).sum().backward();
    const auto yd = y.detach().to(torch::kFloat64);
    const auto want = (g.to(torch::kFloat64) * (yd * (1 - yd)).clamp_min(eps)).sum({0, 2, 3});
    EXPECT_LT(test::RelMaxError(bias.grad().to(torch::kFloat64), want), 1e-4) << "ε = " << eps;
    outputs[eps] = y.detach();
    grads[eps] = bias.grad().clone();
  }
  EXPECT_TRUE(torch::equal(outputs[0.0], outputs[0.05])) << "ε changed the output";
  EXPECT_GT(grads[0.05][0].abs().item<double>(), 50 * grads[0.0][0].abs().item<double>())
      << "the saturated channel's slope was not raised";
}

}  // namespace
}  // namespace dippas
