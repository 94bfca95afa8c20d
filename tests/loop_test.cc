// The DIP loop (SPEC §5): injection alignment, γ ≥ 0, stop rules, pool
// admission, odd sizes, determinism.
#include "dippas/dip/loop.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <array>
#include <cmath>

#include "dippas/assembly/assembly.h"
#include "dippas/dip/injection.h"
#include "dippas/dip/network.h"
#include "dippas/dip/prnu_loss.h"
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

TEST(Loop, PoolFullStopsOnceThePoolHoldsM) {
  auto opt = Tiny();  // τ = 0.5 dB: every candidate joins the pool
  opt.dip.max_iterations = 20;
  opt.dip.pool_max = 4;
  const auto r = RunDip(TestImage(32, 32), TestPattern(32, 32), opt);
  EXPECT_EQ(r.stop_reason, "pool_full");
  EXPECT_EQ(r.iterations, 4);
  EXPECT_EQ(r.pool_size, 4);
}

// The plateau rule as documented, on a recorded run: at every multiple of W from 2W, stop when
// max(last window) + rate·(iterations left) < target, rate = Δ(window means) / W, target τ
// while the pool is empty and psnr_stop after.
int64_t PlateauStop(const std::vector<double>& psnr, const std::vector<int64_t>& pool,
                    const DipOptions& o) {
  const int64_t w = o.plateau_window;
  for (int64_t it = 2 * w; it <= static_cast<int64_t>(psnr.size()); it += w) {
    double last = 0, before = 0, best = -INFINITY;
    for (int64_t i = it - w; i < it; ++i) {
      last += psnr[static_cast<size_t>(i)];
      best = std::max(best, psnr[static_cast<size_t>(i)]);
    }
    for (int64_t i = it - 2 * w; i < it - w; ++i) before += psnr[static_cast<size_t>(i)];
    const double rate = (last - before) / static_cast<double>(w * w);
    const double target = pool[static_cast<size_t>(it - 1)] > 0 ? o.psnr_stop : o.psnr_min;
    if (it < o.max_iterations &&
        (rate <= 0 || best + rate * static_cast<double>(o.max_iterations - it) < target))
      return it;
  }
  return -1;
}

TEST(Loop, PlateauStopsOnlyRunsThatCannotReachTheTarget) {
  const auto img = TestImage(32, 32);
  const auto p = TestPattern(32, 32);
  auto opt = Tiny();
  opt.dip.max_iterations = 60;
  opt.dip.plateau_window = 6;
  opt.dip.psnr_min = 90;  // out of reach
  opt.dip.restarts = 0;   // the rule alone (restarts: below)
  std::vector<double> psnr;
  std::vector<int64_t> pool;
  LoopCallbacks cb;
  cb.on_iteration = [&](const IterationRecord& r, int64_t m, std::optional<double>) {
    psnr.push_back(r.psnr);
    pool.push_back(m);
  };
  auto r = RunDip(img, p, opt, cb);
  EXPECT_EQ(r.stop_reason, "plateau");
  EXPECT_EQ(r.iterations, 12);  // the first check
  ASSERT_EQ(psnr.size(), 12u);
  EXPECT_EQ(PlateauStop(psnr, pool, opt.dip), 12);

  // τ just within the projection at 12: the run goes on (same seed, same PSNRs: τ only decides
  // admission), and stops where the rule says, if at all.
  double last = 0, before = 0, best = -INFINITY;
  for (int i = 6; i < 12; ++i) last += psnr[i], best = std::max(best, psnr[i]);
  for (int i = 0; i < 6; ++i) before += psnr[i];
  const double rate = (last - before) / 36.0;
  ASSERT_GT(rate, 0) << "the tiny network should still be learning at iteration 12";
  opt.dip.psnr_min = best + rate * 48 - 0.01;
  psnr.clear();
  pool.clear();
  r = RunDip(img, p, opt, cb);
  EXPECT_GT(r.iterations, 12);
  const int64_t expected = PlateauStop(psnr, pool, opt.dip);
  if (expected < 0) {
    EXPECT_EQ(r.stop_reason, "max_iterations");
    EXPECT_EQ(r.iterations, 60);
  } else {
    EXPECT_EQ(r.stop_reason, "plateau");
    EXPECT_EQ(r.iterations, expected);
  }
  // A run that took off (no stop at the first check) is restarted only if the plateau rule
  // stopped it more than kStallMarginDb below τ (IsStall, tested on its own below).
  opt.dip.restarts = 1;
  const auto again = RunDip(img, p, opt);
  ASSERT_FALSE(again.attempts.empty());
  EXPECT_EQ(again.attempts[0].iterations, r.iterations);
  if (r.stop_reason == "plateau" && r.best_psnr < opt.dip.psnr_min - kStallMarginDb) {
    ASSERT_EQ(again.attempts.size(), 2u);
    EXPECT_EQ(again.iterations, r.iterations + again.attempts[1].iterations);
  } else {
    EXPECT_EQ(again.attempts.size(), 1u);
    EXPECT_EQ(again.iterations, r.iterations);
  }
  opt.dip.restarts = 0;

  // A network that cannot learn (lr ≈ 0) stops at the first check even with a reachable-looking
  // τ; with plateau_window = 0 it runs the whole budget.
  opt.dip.lr = 1e-9;
  opt.dip.psnr_min = 20;
  r = RunDip(img, p, opt);
  EXPECT_EQ(r.stop_reason, "plateau");
  EXPECT_EQ(r.iterations, 12);
  opt.dip.plateau_window = 0;
  r = RunDip(img, p, opt);
  EXPECT_EQ(r.stop_reason, "max_iterations");
  EXPECT_EQ(r.iterations, 60);
}

// restarts: a run the plateau rule stops with an empty pool starts again with the next seed. The
// expectations come from separate runs with restarts = 0, one per seed.
TEST(Loop, RestartsARunThatPlateausWithAnEmptyPool) {
  const auto img = TestImage(32, 32);
  const auto p = TestPattern(32, 32);
  auto opt = Tiny();
  opt.dip.max_iterations = 60;
  opt.dip.plateau_window = 6;
  opt.dip.psnr_min = 90;  // out of reach: every attempt stops at the first check, pool empty
  opt.dip.seed = 5;
  opt.dip.restarts = 0;
  std::vector<DipResult> alone;
  for (int64_t k = 0; k < 3; ++k) {
    auto o = opt;
    o.dip.seed = 5 + k;
    alone.push_back(RunDip(img, p, o));
    ASSERT_EQ(alone.back().stop_reason, "plateau");
    ASSERT_EQ(alone.back().pool_size, 0);
  }
  opt.dip.restarts = 2;
  std::vector<int64_t> iterations;
  std::vector<std::vector<double>> restarts;
  LoopCallbacks cb;
  cb.on_iteration = [&](const IterationRecord& r, int64_t, std::optional<double>) {
    iterations.push_back(r.iteration);
  };
  cb.on_restart = [&](int64_t k, double best, int64_t n, int64_t seed) {
    restarts.push_back(
        {static_cast<double>(k), best, static_cast<double>(n), static_cast<double>(seed)});
  };
  const auto r = RunDip(img, p, opt, cb);
  ASSERT_EQ(r.attempts.size(), 3u);
  int64_t total = 0, best = 0;
  for (int64_t k = 0; k < 3; ++k) {
    const auto& a = r.attempts[static_cast<size_t>(k)];
    const auto& x = alone[static_cast<size_t>(k)];
    EXPECT_EQ(a.seed, 5 + k);
    EXPECT_EQ(a.iterations, x.iterations);
    EXPECT_EQ(a.stop_reason, "plateau");
    EXPECT_DOUBLE_EQ(a.best_psnr, x.best_psnr);
    total += x.iterations;
    if (x.best_psnr > alone[static_cast<size_t>(best)].best_psnr) best = k;
  }
  EXPECT_EQ(r.iterations, total);
  EXPECT_EQ(r.kept, best);  // no attempt admitted a candidate: the best PSNR is kept
  EXPECT_TRUE(r.fallback);
  EXPECT_TRUE(torch::equal(r.image, alone[static_cast<size_t>(best)].image));
  EXPECT_DOUBLE_EQ(r.best_psnr, alone[static_cast<size_t>(best)].best_psnr);
  // The callbacks see one run: iterations 1..total, and a notice before each restart.
  ASSERT_EQ(static_cast<int64_t>(iterations.size()), total);
  for (int64_t i = 0; i < total; ++i) EXPECT_EQ(iterations[static_cast<size_t>(i)], i + 1);
  ASSERT_EQ(restarts.size(), 2u);
  for (size_t k = 0; k < 2; ++k) {
    EXPECT_EQ(restarts[k][0], static_cast<double>(k));
    EXPECT_DOUBLE_EQ(restarts[k][1], alone[k].best_psnr);
    EXPECT_EQ(restarts[k][2], static_cast<double>(alone[k].iterations));
    EXPECT_EQ(restarts[k][3], static_cast<double>(5 + k + 1));
  }
}

// The first attempt that admits candidates ends the run, and is the one kept.
// Which plateau stops count as stalls (independently of the loop: the attempts are made up).
TEST(Loop, StallIsAnEmptyPoolPlateauAtTheFirstCheckOrFarBelowTau) {
  DipOptions o;
  o.plateau_window = 500;
  o.psnr_min = 38;
  auto attempt = [](int64_t n, const char* reason, int64_t pool, double best) {
    DipAttempt a;
    a.iterations = n;
    a.stop_reason = reason;
    a.pool_size = pool;
    a.best_psnr = best;
    return a;
  };
  EXPECT_TRUE(IsStall(attempt(1000, "plateau", 0, 15.6), o));   // first check
  EXPECT_TRUE(IsStall(attempt(1000, "plateau", 0, 36.0), o));   // first check, near τ
  EXPECT_TRUE(IsStall(attempt(1500, "plateau", 0, 20.4), o));   // later, still 17.6 dB below τ
  EXPECT_TRUE(IsStall(attempt(1500, "plateau", 0, 27.99), o));  // just over 10 dB below
  EXPECT_FALSE(IsStall(attempt(1500, "plateau", 0, 28.0), o));  // took off: slow, not stuck
  EXPECT_FALSE(IsStall(attempt(4500, "plateau", 0, 36.7), o));
  EXPECT_FALSE(IsStall(attempt(1000, "plateau", 3, 38.2), o));  // the pool has candidates
  EXPECT_FALSE(IsStall(attempt(1500, "plateau", 1, 20.0), o));
  EXPECT_FALSE(IsStall(attempt(1000, "max_iterations", 0, 15.0), o));
  EXPECT_FALSE(IsStall(attempt(700, "interrupted", 0, 15.0), o));
  o.psnr_min = 30;  // the margin follows τ
  EXPECT_FALSE(IsStall(attempt(1500, "plateau", 0, 20.4), o));
}

TEST(Loop, RestartStopsAtTheFirstAttemptWithCandidates) {
  const auto img = TestImage(32, 32);
  const auto p = TestPattern(32, 32);
  auto opt = Tiny();
  opt.dip.max_iterations = 60;
  opt.dip.plateau_window = 6;
  // The network keeps its initial output and sees the same z every iteration: each seed has its
  // own PSNR, the same at every iteration, so a run's best does not depend on how long it runs.
  opt.dip.lr = 1e-9;
  opt.dip.reg_noise_std = 0;
  opt.dip.psnr_min = 90;
  opt.dip.restarts = 0;
  std::vector<double> best;
  for (int64_t seed = 0; seed < 8; ++seed) {
    auto o = opt;
    o.dip.seed = seed;
    best.push_back(RunDip(img, p, o).best_psnr);
  }
  // The first seed whose PSNR beats every seed before it; τ halfway between.
  size_t k = 1;
  while (k < best.size() &&
         best[k] <= *std::max_element(best.begin(), best.begin() + static_cast<long>(k)))
    ++k;
  ASSERT_LT(k, best.size()) << "no seed beats the ones before it";
  const double before = *std::max_element(best.begin(), best.begin() + static_cast<long>(k));
  opt.dip.psnr_min = 0.5 * (before + best[k]);
  auto o = opt;
  o.dip.seed = static_cast<int64_t>(k);
  const auto expected = RunDip(img, p, o);
  ASSERT_GT(expected.pool_size, 0);
  opt.dip.restarts = static_cast<int64_t>(best.size());
  const auto r = RunDip(img, p, opt);
  ASSERT_EQ(r.attempts.size(), k + 1);
  EXPECT_EQ(r.kept, static_cast<int64_t>(k));
  for (size_t i = 0; i < k; ++i) {
    EXPECT_EQ(r.attempts[i].pool_size, 0);
    EXPECT_EQ(r.attempts[i].stop_reason, "plateau");
  }
  EXPECT_EQ(r.pool_size, expected.pool_size);
  EXPECT_FALSE(r.fallback);
  EXPECT_TRUE(torch::equal(r.image, expected.image));

  // restarts = 0: the paper-like single attempt.
  opt.dip.restarts = 0;
  const auto once = RunDip(img, p, opt);
  EXPECT_EQ(once.attempts.size(), 1u);
  EXPECT_EQ(once.pool_size, 0);
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
  // A 7-level network pads to a multiple of 64: a 40×40 image is too small for the reflection.
  opt = Tiny();
  opt.dip.filters = {4, 4, 4, 4, 4, 4, 4};
  opt.dip.skips = {4, 4, 4, 4, 4, 4};
  try {
    RunDip(TestImage(40, 40), TestPattern(40, 40), opt);
    ADD_FAILURE() << "a 40x40 image accepted by a 7-level network";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "image is 40x40: the DIP needs at least 64x64 pixels");
  }
}

// An image shot by a camera whose PRNU is the pattern: I = scene·(1 + K) + noise, with K strong
// enough (std 3 %) that explaining it through γ·P lowers the loss from the first iteration.
torch::Tensor CameraImage(const torch::Tensor& k) {
  auto gen = torch::make_generator<at::CPUGeneratorImpl>(5);
  const int64_t h = k.size(0), w = k.size(1);
  auto base = torch::rand({1, 3, 4, 4}, gen) * 150 + 60;
  auto scene = torch::upsample_bilinear2d(base, {h, w}, true)[0];
  return (scene * (1 + k) + torch::randn({3, h, w}, gen)).round().clamp(0, 255);
}

// γ is trained with the network: in aware mode, with the camera's own K as P, γ leaves 0 and
// settles near the strength of K, std(K) = 0.03, since P̃ = P/std(P) (dropping γ from the
// optimizer leaves it at exactly 0; a misaligned injection leaves it near 0).
TEST(Loop, GammaIsTrainedWithTheNetwork) {
  auto gen = torch::make_generator<at::CPUGeneratorImpl>(11);
  const auto k = torch::randn({32, 32}, gen) * 0.03;
  auto opt = Tiny();
  opt.dip.max_iterations = 30;
  std::vector<double> gammas;
  LoopCallbacks cb;
  cb.on_iteration = [&](const IterationRecord& r, int64_t, std::optional<double>) {
    gammas.push_back(r.gamma);
  };
  const auto r = RunDip(CameraImage(k), k, opt, cb);
  ASSERT_EQ(gammas.size(), 30u);
  // Adam moves γ by about lr = 0.01 per step while the gradient keeps its sign.
  EXPECT_GT(gammas[4], 0.01);
  EXPECT_NEAR(gammas[9], 0.03, 0.01);
  EXPECT_NEAR(r.gamma, 0.03, 0.01);
}

// gamma_lr is γ's own learning rate: AMSGrad's first step is ±lr on the trained g, so γ after
// one iteration is lr with the paper's parametrization and gamma_lr with its own.
TEST(Loop, GammaLrIsGammasOwnStepSize) {
  auto gen = torch::make_generator<at::CPUGeneratorImpl>(11);
  const auto k = torch::randn({32, 32}, gen) * 0.03;
  auto first_gamma = [&](double gamma_lr) {
    auto opt = Tiny();
    opt.dip.max_iterations = 1;
    opt.dip.gamma_lr = gamma_lr;
    return RunDip(CameraImage(k), k, opt, {}).gamma;
  };
  EXPECT_NEAR(first_gamma(0), 0.01, 1e-4);  // lr of Tiny()
  EXPECT_NEAR(first_gamma(0.01), 0.01, 1e-4);
  EXPECT_NEAR(first_gamma(0.002), 0.002, 2e-5);
  EXPECT_NEAR(first_gamma(0.05), 0.05, 5e-4);
}

// With prnu_weight λ the loss is MSE(Iφ·(1+γP̃), I) + λ·ρ², ρ² of the candidate Iφ (0..255)
// against P, whole image or per block: recomputed here from the iteration's own forward pass.
TEST(Loop, PrnuTermIsAddedToTheLoss) {
  auto gen = torch::make_generator<at::CPUGeneratorImpl>(11);
  const auto k = torch::randn({32, 32}, gen) * 0.03;
  const auto image = CameraImage(k);
  for (int64_t block : {0, 16}) {
    SCOPED_TRACE("block " + std::to_string(block));
    auto opt = Tiny();
    opt.dip.max_iterations = 5;
    opt.dip.gamma_lr = 0.05;  // γ well away from 0, so that Iφ and the injected output differ
    opt.dip.prnu_weight = 3;
    opt.dip.prnu_block = block;
    std::vector<double> expected, reported;
    double max_gamma = 0;
    LoopCallbacks cb;
    cb.on_forward = [&](const torch::Tensor&, const torch::Tensor& out,
                        const torch::Tensor& injected) {
      const double mse = torch::mse_loss(injected, image.unsqueeze(0) / 255.0).item<double>();
      const double rho2 = PrnuCorrelationLoss(out[0] * 255.0, k, block, {}).item<double>();
      EXPECT_GT(rho2, 0);
      expected.push_back(mse + 3 * rho2);
    };
    cb.on_iteration = [&](const IterationRecord& r, int64_t, std::optional<double>) {
      reported.push_back(r.loss);
      max_gamma = std::max(max_gamma, r.gamma);
    };
    RunDip(image, k, opt, cb);
    EXPECT_GT(max_gamma, 0.02);
    ASSERT_EQ(reported.size(), 5u);
    for (size_t i = 0; i < 5; ++i) EXPECT_NEAR(reported[i], expected[i], 1e-5 * expected[i]) << i;
  }
}

// The candidate is Iφ, the network output, quantized: never the injected output Iφ·(1+γP̃),
// which would put P back into every candidate.
TEST(Loop, CandidateIsTheNetworkOutputNotTheInjectedOne) {
  auto gen = torch::make_generator<at::CPUGeneratorImpl>(11);
  const auto k = torch::randn({32, 32}, gen) * 0.03;
  auto opt = Tiny();
  opt.dip.max_iterations = 30;
  std::vector<torch::Tensor> outputs, injected;
  int64_t checked = 0, differs = 0;
  LoopCallbacks cb;
  cb.on_forward = [&](const torch::Tensor&, const torch::Tensor& out, const torch::Tensor& inj) {
    outputs.push_back(out.clone());
    injected.push_back(inj.clone());
  };
  cb.on_candidate = [&](const torch::Tensor& candidate, const IterationRecord& rec) {
    ASSERT_EQ(static_cast<int64_t>(outputs.size()), rec.iteration);
    auto eight_bit = [](const torch::Tensor& x) {
      return (x[0].slice(1, 0, 32).slice(2, 0, 32) * 255.0).round().clamp(0, 255).to(torch::kUInt8);
    };
    EXPECT_TRUE(torch::equal(candidate, eight_bit(outputs.back())))
        << "iteration " << rec.iteration;
    ++checked;
    if (!torch::equal(candidate, eight_bit(injected.back()))) ++differs;
  };
  const auto r = RunDip(CameraImage(k), k, opt, cb);
  EXPECT_EQ(checked, 30);
  ASSERT_GT(r.gamma, 0.02);
  // Once γ > 0 the two differ, so the check above could tell them apart.
  EXPECT_GE(differs, 25);
}

// z_t = z + σ_r·N(0,1) with fresh noise every iteration: any two inputs differ by noise of std
// σ_r·√2 around the same z (noise drawn once, or none, would make them equal).
TEST(Loop, NetworkInputGetsFreshNoiseEveryIteration) {
  for (const int64_t philox : {1, 0}) {  // Philox normals (the CPU default), torch's normal_
    SCOPED_TRACE(philox ? "philox" : "torch");
    auto opt = Tiny();
    opt.dip.max_iterations = 6;
    opt.dip.reg_noise_std = 0.1;
    opt.dip.philox_noise = philox;
    std::vector<torch::Tensor> inputs;
    LoopCallbacks cb;
    cb.on_forward = [&](const torch::Tensor& z_t, const torch::Tensor&, const torch::Tensor&) {
      inputs.push_back(z_t.to(torch::kFloat64).clone());
    };
    RunDip(TestImage(32, 32), TestPattern(32, 32), opt, cb);
    ASSERT_EQ(inputs.size(), 6u);
    EXPECT_EQ(inputs[0].sizes(), (std::vector<int64_t>{1, 8, 32, 32}));
    for (size_t i = 0; i < inputs.size(); ++i) {
      for (size_t j = i + 1; j < inputs.size(); ++j) {
        const double sd = (inputs[i] - inputs[j]).std().item<double>();
        EXPECT_NEAR(sd, 0.1 * std::sqrt(2.0), 0.01) << "z_" << i + 1 << " − z_" << j + 1;
      }
    }
    // The perturbation's std matches reg_noise_std: z_t around z, whose own std is input_noise_std.
    const auto mean = torch::stack(inputs).mean(0);
    EXPECT_NEAR((inputs[0] - mean).std().item<double>(), 0.1 * std::sqrt(5.0 / 6.0), 0.01);
    EXPECT_NEAR(mean.std().item<double>(), std::sqrt(0.01 + 0.01 / 6.0), 0.01);

    // Without perturbation every iteration sees the same z.
    opt.dip.reg_noise_std = 0;
    inputs.clear();
    RunDip(TestImage(32, 32), TestPattern(32, 32), opt, cb);
    ASSERT_EQ(inputs.size(), 6u);
    EXPECT_TRUE(torch::equal(inputs[0], inputs[5]));
  }
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

// DipRunOptions::psnr_box: admission (and stop) judge the PSNR of the box the caller keeps — a
// tile's core — not of the whole image it fits. Here the margin is flat (easy) and the core a
// fine texture (hard): judged on the whole image, candidates enter the pool with a core far below
// τ; judged on the core, every admitted candidate's core is at τ or above, and each record's PSNR
// is the core's.
TEST(Loop, PsnrBoxJudgesTheKeptCore) {
  auto gen = torch::make_generator<at::CPUGeneratorImpl>(11);
  const int64_t n = 64;
  auto image = torch::full({3, n, n}, 120.0);
  const std::array<int64_t, 4> core = {16, 16, 32, 32};
  image.slice(1, 16, 48).slice(2, 16, 48).copy_((torch::rand({3, 32, 32}, gen) * 200 + 20).round());
  const auto pattern = TestPattern(n, n);
  auto core_psnr = [&](const torch::Tensor& c) {
    const auto d = c.to(torch::kFloat64).slice(1, 16, 48).slice(2, 16, 48) -
                   image.slice(1, 16, 48).slice(2, 16, 48).to(torch::kFloat64);
    return 10 * std::log10(255.0 * 255.0 / d.square().mean().item<double>());
  };
  DipRunOptions run = Tiny();
  run.dip.max_iterations = 60;
  run.dip.psnr_min = 14;  // the flat margin takes the whole-image PSNR past it early
  std::vector<double> whole_admitted, core_admitted;
  std::vector<std::pair<double, double>> judged;  // record's PSNR, core PSNR recomputed
  LoopCallbacks cb;
  cb.on_candidate = [&](const torch::Tensor& c, const IterationRecord&) {
    whole_admitted.push_back(core_psnr(c));
  };
  RunDip(image, pattern, run, cb);
  run.psnr_box = core;
  cb.on_candidate = [&](const torch::Tensor& c, const IterationRecord& r) {
    core_admitted.push_back(core_psnr(c));
    judged.emplace_back(r.psnr, core_psnr(c));
  };
  RunDip(image, pattern, run, cb);
  ASSERT_FALSE(whole_admitted.empty());
  EXPECT_LT(*std::min_element(whole_admitted.begin(), whole_admitted.end()), run.dip.psnr_min)
      << "the whole-image PSNR let no weak core in: the test shows nothing";
  for (const double p : core_admitted) EXPECT_GE(p, run.dip.psnr_min);
  for (const auto& [reported, recomputed] : judged) EXPECT_NEAR(reported, recomputed, 1e-3);
  run.psnr_box = {40, 40, 32, 32};  // past the image's edge
  EXPECT_THROW(RunDip(image, pattern, run), std::invalid_argument);
}

// DipRunOptions::selection_pattern: the online assembly ranks by it, not by the injected P —
// the loop's image is the offline assembly of its own candidates against S, and not against P.
TEST(Loop, SelectionPatternRanksTheBlocks) {
  const int64_t n = 64;
  const auto image = TestImage(n, n);
  const auto pattern = TestPattern(n, n);
  auto gen = torch::make_generator<at::CPUGeneratorImpl>(9);
  const auto selection = torch::randn({n, n}, gen);
  DipRunOptions run = Tiny();
  run.dip.max_iterations = 16;
  run.selection_pattern = selection;
  std::vector<std::pair<torch::Tensor, int64_t>> pool;
  LoopCallbacks cb;
  cb.on_candidate = [&](const torch::Tensor& c, const IterationRecord& r) {
    pool.emplace_back(c.clone(), r.iteration);
  };
  const DipResult r = RunDip(image, pattern, run, cb);
  ASSERT_GT(pool.size(), static_cast<size_t>(run.dip.top));
  AssemblyOptions ao;
  ao.block_size = run.dip.block_size;
  ao.top = run.dip.top;
  ao.sigma = run.dip.sigma;
  auto offline = [&](const torch::Tensor& p) {
    BlockAssembler a(p, ao);
    for (const auto& [c, it] : pool) a.Add(c, it);
    return a.Finish().image;
  };
  EXPECT_TRUE(torch::equal(r.image, offline(selection)));
  EXPECT_FALSE(torch::equal(r.image, offline(pattern)))
      << "S and P pick alike: the test shows nothing";
  run.selection_pattern = torch::randn({n, n + 1}, gen);
  EXPECT_THROW(RunDip(image, pattern, run), std::invalid_argument);
}

// DipRunOptions::initial_network (a warm start): the loop's first forward pass is that network's,
// on the loop's own z_t — recomputed here with the exported weights and statistics loaded into
// a fresh network; and a network of another shape is refused.
TEST(Loop, InitialNetworkIsWhereTheLoopStarts) {
  const auto image = TestImage(32, 48);
  const auto pattern = TestPattern(32, 48);
  DipRunOptions run = Tiny();
  run.export_network = true;
  const auto first = RunDip(image, pattern, run);
  ASSERT_TRUE(first.network);
  DipRunOptions warm = Tiny();
  warm.dip.seed = 5;
  warm.dip.max_iterations = 1;
  warm.initial_network = first.network;
  torch::Tensor z_t, out;
  LoopCallbacks cb;
  cb.on_forward = [&](const torch::Tensor& z, const torch::Tensor& o, const torch::Tensor&) {
    z_t = z.clone();
    out = o.clone();
  };
  RunDip(image, pattern, warm, cb);
  MultiResUNet net(ToNetworkOptions(warm.dip));
  {
    torch::NoGradGuard no_grad;
    for (auto& p : net->named_parameters()) p.value().copy_(first.network->at("param." + p.key()));
    for (auto& b : net->named_buffers()) b.value().copy_(first.network->at("buffer." + b.key()));
  }
  net->train();
  EXPECT_TRUE(torch::equal(net->forward(z_t).detach(), out));
  // A cold start from the same seed is another network.
  warm.initial_network.reset();
  RunDip(image, pattern, warm, cb);
  EXPECT_GT((net->forward(z_t).detach() - out).abs().max().item<double>(), 1e-3);
  // Another shape: refused, naming the parameter.
  auto other = std::make_shared<std::map<std::string, torch::Tensor>>(*first.network);
  other->begin()->second = torch::zeros({1});
  warm.initial_network = other;
  EXPECT_THROW(RunDip(image, pattern, warm), std::invalid_argument);
}

}  // namespace
}  // namespace dippas
