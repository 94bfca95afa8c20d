// The DIP loop (SPEC §5): injection alignment, γ ≥ 0, stop rules, pool
// admission, odd sizes, determinism.
#include <ATen/Parallel.h>

#include "dippas/dip/injection.h"
#include "dippas/dip/loop.h"
#include "dippas/prnu/detection.h"
#include "test_util.h"

namespace dippas {
namespace {

// A network small enough for unit tests (seconds on a CPU).
DipRunOptions Tiny() {
  DipRunOptions r;
  r.dip.input_depth = 8;
  r.dip.filters = {4, 8, 8, 8, 8};
  r.dip.skips = {4, 4, 4, 4};
  r.dip.lr = 0.01;
  r.dip.max_iterations = 12;
  r.dip.psnr_min = 0.5;
  r.dip.psnr_stop = 99;
  r.dip.block_size = 16;
  r.dip.top = 3;
  return r;
}

torch::Tensor TestImage(int64_t h, int64_t w) {
  auto gen = torch::make_generator<at::CPUGeneratorImpl>(42);
  auto base = torch::rand({3, h / 8 + 1, w / 8 + 1}, gen) * 200 + 20;
  auto up = torch::upsample_bilinear2d(base.unsqueeze(0), {h, w}, false)[0];
  return (up + torch::randn({3, h, w}, gen) * 3).clamp(0, 255).round();
}

torch::Tensor TestPattern(int64_t h, int64_t w) {
  auto gen = torch::make_generator<at::CPUGeneratorImpl>(7);
  return torch::randn({h, w}, gen) * 0.002;
}

double Corr(const torch::Tensor& a, const torch::Tensor& b) {
  auto x = a.flatten().to(torch::kFloat64), y = b.flatten().to(torch::kFloat64);
  x = x - x.mean();
  y = y - y.mean();
  return ((x * y).sum() / (x.norm() * y.norm())).item<double>();
}

TEST(Injection, AlignedWithPatternNotItsTranspose) {
  auto p = TestPattern(24, 24);
  PrnuInjection inj(p);
  {
    torch::NoGradGuard g;
    inj->gamma.fill_(1.0);
  }
  auto injected = inj->forward(torch::ones({1, 3, 24, 24})) - 1.0;  // = γ·P̃ per channel
  for (int c = 0; c < 3; ++c) {
    EXPECT_GT(Corr(injected[0][c], p), 0.999);
    EXPECT_LT(std::fabs(Corr(injected[0][c], p.t())), 0.2);
  }
  // P̃ is P scaled to unit standard deviation, so γ is scale-free.
  EXPECT_NEAR(injected[0][0].std().item<double>(), 1.0, 1e-4);
}

TEST(Injection, GammaStartsAtZeroAndIsClamped) {
  PrnuInjection inj(TestPattern(8, 8));
  EXPECT_EQ(inj->gamma.item<double>(), 0.0);
  EXPECT_TRUE(inj->gamma.requires_grad());
  {
    torch::NoGradGuard g;
    inj->gamma.fill_(-0.3);
  }
  inj->ClampGamma();
  EXPECT_EQ(inj->gamma.item<double>(), 0.0);
}

TEST(Loop, DefaultNetworkParameterCount) { EXPECT_EQ(NetworkParameterCount(DipOptions{}), 2219718); }

TEST(Loop, SameSeedSameImageBitForBit) {
  at::set_num_threads(2);
  auto img = TestImage(32, 32);
  auto p = TestPattern(32, 32);
  auto a = RunDip(img, p, Tiny());
  auto b = RunDip(img, p, Tiny());
  ASSERT_EQ(a.iterations, 12);
  EXPECT_TRUE(torch::equal(a.image, b.image));
  EXPECT_EQ(a.gamma, b.gamma);
  auto other = Tiny();
  other.dip.seed = 1;
  EXPECT_FALSE(torch::equal(RunDip(img, p, other).image, a.image));
}

TEST(Loop, StopRulesAndAdmission) {
  auto img = TestImage(32, 32);
  auto p = TestPattern(32, 32);
  auto opt = Tiny();
  opt.dip.max_iterations = 5;
  std::vector<IterationRecord> seen;
  LoopCallbacks cb;
  cb.on_iteration = [&](const IterationRecord& r, int64_t pool, std::optional<double>) {
    seen.push_back(r);
    EXPECT_GE(r.gamma, 0.0);  // clamped after every step
    EXPECT_EQ(pool, r.iteration);  // τ = 0.5 dB: everything is admitted
    EXPECT_TRUE(r.admitted);
    ASSERT_TRUE(r.ncc.has_value());
  };
  auto r = RunDip(img, p, opt, cb);
  EXPECT_EQ(r.stop_reason, "max_iterations");
  EXPECT_EQ(r.iterations, 5);
  EXPECT_EQ(r.pool_size, 5);
  EXPECT_FALSE(r.fallback);
  ASSERT_EQ(seen.size(), 5u);
  // The PSNR reported is that of the 8-bit candidate against I.
  EXPECT_GT(r.best_psnr, 0.0);

  // A stop PSNR below the first candidate's PSNR stops after one iteration.
  opt.dip.psnr_stop = 1.0;
  r = RunDip(img, p, opt);
  EXPECT_EQ(r.stop_reason, "psnr_stop");
  EXPECT_EQ(r.iterations, 1);

  // Nothing reaches τ: empty pool, the best candidate stands in.
  opt.dip.psnr_stop = 99;
  opt.dip.psnr_min = 90;
  r = RunDip(img, p, opt);
  EXPECT_EQ(r.pool_size, 0);
  EXPECT_TRUE(r.fallback);
  EXPECT_EQ(r.image.sizes(), img.sizes());
}

TEST(Loop, InterruptStopsAtTheNextIteration) {
  auto opt = Tiny();
  LoopCallbacks cb;
  int64_t calls = 0;
  cb.stop_requested = [&] { return ++calls > 3; };
  auto r = RunDip(TestImage(32, 32), TestPattern(32, 32), opt, cb);
  EXPECT_EQ(r.stop_reason, "interrupted");
  EXPECT_EQ(r.iterations, 3);
  EXPECT_EQ(r.pool_size, 3);
}

TEST(Loop, OddSizesArePaddedAndCroppedBack) {
  auto opt = Tiny();
  opt.dip.max_iterations = 3;
  auto r = RunDip(TestImage(40, 37), TestPattern(40, 37), opt);
  EXPECT_EQ(r.image.size(1), 40);
  EXPECT_EQ(r.image.size(2), 37);
  // Integer 8-bit values.
  EXPECT_TRUE(torch::equal(r.image, r.image.round().clamp(0, 255)));
}

TEST(Loop, RefusesTinyImagesAndBadOptions) {
  EXPECT_THROW(RunDip(TestImage(31, 40), TestPattern(31, 40), Tiny()), std::invalid_argument);
  auto opt = Tiny();
  opt.dip.psnr_min = 50;
  opt.dip.psnr_stop = 40;  // τ above the stop PSNR
  EXPECT_THROW(RunDip(TestImage(32, 32), TestPattern(32, 32), opt), std::invalid_argument);
  EXPECT_THROW(RunDip(TestImage(32, 32), TestPattern(16, 32), Tiny()), std::invalid_argument);
}

// The loop learns: the candidates approach the image (PSNR rises).
TEST(Loop, PsnrRisesWithIterations) {
  auto opt = Tiny();
  opt.dip.max_iterations = 60;
  std::vector<double> psnr;
  LoopCallbacks cb;
  cb.on_iteration = [&](const IterationRecord& r, int64_t, std::optional<double>) { psnr.push_back(r.psnr); };
  RunDip(TestImage(32, 32), TestPattern(32, 32), opt, cb);
  ASSERT_EQ(psnr.size(), 60u);
  EXPECT_GT(psnr.back(), psnr.front() + 3.0);
}

}  // namespace
}  // namespace dippas
