// The DIP loop's host synchronisations cut down without changing results: the progress NCC from
// the assembler's block sums equals the whole-image NCC computed independently; reading the
// iteration's scalars one iteration late gives the same run; the batched block copies of the
// assembly give what a plain per-block top-L gives; the perturbation buffer keeps the draws.
#include <ATen/CPUGeneratorImpl.h>
#include <torch/cuda.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "dippas/assembly/assembly.h"
#include "dippas/kernels/cpu/philox.h"
#include "dippas/dip/loop.h"
#include "dippas/prnu/detection.h"
#include "dippas/prnu/residual.h"
#include "test_util.h"

namespace dippas {
namespace {

DipRunOptions Tiny() {
  DipRunOptions r;
  r.dip.input_depth = 8;
  r.dip.filters = {4, 8, 8, 8, 8};
  r.dip.skips = {4, 4, 4, 4};
  r.dip.lr = 0.01;
  r.dip.max_iterations = 14;
  r.dip.psnr_min = 0.5;
  r.dip.psnr_stop = 99;
  r.dip.block_size = 16;
  r.dip.top = 3;
  return r;
}

torch::Tensor Image(int64_t h, int64_t w, uint64_t seed) {
  auto gen = torch::make_generator<at::CPUGeneratorImpl>(seed);
  auto base = torch::rand({1, 3, h / 8 + 1, w / 8 + 1}, gen) * 200 + 20;
  auto up = torch::upsample_bilinear2d(base, {h, w}, false)[0];
  return (up + torch::randn({3, h, w}, gen) * 3).clamp(0, 255).round();
}

torch::Tensor Pattern(int64_t h, int64_t w) {
  auto gen = torch::make_generator<at::CPUGeneratorImpl>(7);
  return torch::randn({h, w}, gen) * 0.002;
}

// NCC(W, G·P) = Σ W·G·P / (√Σ W² · √Σ (G·P)²) by plain loops in double, G from SPEC's weights.
double NccByHand(const torch::Tensor& candidate, const torch::Tensor& residual,
                 const torch::Tensor& p) {
  auto c = candidate.to(torch::kFloat64).contiguous();
  auto w = residual.to(torch::kFloat64).contiguous();
  auto k = p.to(torch::kFloat64).contiguous();
  auto ca = c.accessor<double, 3>();
  auto wa = w.accessor<double, 2>();
  auto ka = k.accessor<double, 2>();
  double num = 0, ww = 0, bb = 0;
  for (int64_t i = 0; i < w.size(0); ++i) {
    for (int64_t j = 0; j < w.size(1); ++j) {
      const double g = ca[0][i][j] * kGrayWeights[0] + ca[1][i][j] * kGrayWeights[1] +
                       ca[2][i][j] * kGrayWeights[2];
      const double b = g * ka[i][j];
      num += wa[i][j] * b;
      ww += wa[i][j] * wa[i][j];
      bb += b * b;
    }
  }
  return num / (std::sqrt(ww) * std::sqrt(bb));
}

TEST(ProgressNcc, AddWithResidualReturnsTheWholeImageNcc) {
  for (auto [h, w, bs] :
       {std::tuple<int64_t, int64_t, int64_t>{48, 48, 16}, {50, 37, 16}, {40, 70, 64}}) {
    auto p = Pattern(h, w);
    AssemblyOptions o;
    o.block_size = bs;
    o.top = 2;
    BlockAssembler a(p, o);
    for (uint64_t m = 0; m < 3; ++m) {
      auto c = Image(h, w, 100 + m);
      auto res = Residual(c);
      const double want = NccByHand(c, res, p);
      const double got = a.AddWithResidual(c, res, static_cast<int64_t>(m));
      EXPECT_NEAR(got, want, 1e-12 * std::fabs(want) + 1e-15) << h << "x" << w << " B=" << bs;
      EXPECT_NEAR(a.ImageNcc(c, res), want, 1e-12 * std::fabs(want) + 1e-15);
      // The detector's Ncc (gray in float32) agrees to float32 rounding.
      EXPECT_NEAR(got, Ncc(res, ToGray(c), p).item<double>(), 1e-6 * std::fabs(want));
    }
  }
}

TEST(ProgressNcc, LoopReportsTheWholeImageNccOfEachCandidate) {
  auto opt = Tiny();
  const auto img = Image(40, 37, 42);
  const auto p = Pattern(40, 37);
  int64_t candidates = 0;
  double best = INFINITY;
  LoopCallbacks cb;
  cb.on_candidate = [&](const torch::Tensor& cand, const IterationRecord& r) {
    ASSERT_TRUE(r.ncc.has_value());
    auto c = cand.to(torch::kFloat32);
    const double want = NccByHand(c, Residual(c), p);
    EXPECT_NEAR(*r.ncc, want, 1e-12 * std::fabs(want)) << "iteration " << r.iteration;
    best = std::min(best, std::fabs(want));
    ++candidates;
  };
  cb.on_iteration = [&](const IterationRecord&, int64_t, std::optional<double> best_ncc) {
    ASSERT_TRUE(best_ncc.has_value());
    EXPECT_NEAR(std::fabs(*best_ncc), best, 1e-12 * best);  // lowest |NCC| admitted so far
  };
  RunDip(img, p, opt, cb);
  EXPECT_EQ(candidates, opt.dip.max_iterations);
}

// Everything the caller sees of a run.
struct Trace {
  DipResult result;
  std::vector<IterationRecord> records;
  std::vector<int64_t> pool_sizes, candidate_iterations;
  int64_t polls = 0;
};

Trace Traced(DipRunOptions opt, int readback_delay, int64_t interrupt_after = -1) {
  opt.readback_delay = readback_delay;
  Trace t;
  LoopCallbacks cb;
  cb.on_iteration = [&](const IterationRecord& r, int64_t pool, std::optional<double>) {
    t.records.push_back(r);
    t.pool_sizes.push_back(pool);
  };
  cb.on_candidate = [&](const torch::Tensor&, const IterationRecord& r) {
    t.candidate_iterations.push_back(r.iteration);
  };
  cb.stop_requested = [&] { return ++t.polls > interrupt_after && interrupt_after >= 0; };
  t.result = RunDip(Image(40, 37, 42), Pattern(40, 37), opt, cb);
  return t;
}

void ExpectSameRun(const Trace& a, const Trace& b, const std::string& what) {
  SCOPED_TRACE(what);
  EXPECT_TRUE(torch::equal(a.result.image, b.result.image));
  EXPECT_EQ(a.result.iterations, b.result.iterations);
  EXPECT_EQ(a.result.stop_reason, b.result.stop_reason);
  EXPECT_EQ(a.result.gamma, b.result.gamma);
  EXPECT_EQ(a.result.pool_size, b.result.pool_size);
  EXPECT_EQ(a.result.best_psnr, b.result.best_psnr);
  EXPECT_EQ(a.result.fallback, b.result.fallback);
  // (stop_requested may be polled once more with the delay: before the discarded iteration.)
  EXPECT_EQ(a.pool_sizes, b.pool_sizes);
  EXPECT_EQ(a.candidate_iterations, b.candidate_iterations);
  ASSERT_EQ(a.records.size(), b.records.size());
  for (size_t i = 0; i < a.records.size(); ++i) {
    EXPECT_EQ(a.records[i].iteration, b.records[i].iteration);
    EXPECT_EQ(a.records[i].loss, b.records[i].loss);
    EXPECT_EQ(a.records[i].psnr, b.records[i].psnr);
    EXPECT_EQ(a.records[i].gamma, b.records[i].gamma);
    EXPECT_EQ(a.records[i].admitted, b.records[i].admitted);
    EXPECT_EQ(a.records[i].ncc.has_value(), b.records[i].ncc.has_value());
    if (a.records[i].ncc && b.records[i].ncc) {
      EXPECT_EQ(*a.records[i].ncc, *b.records[i].ncc);
    }
  }
}

TEST(DeferredReadback, SameRunAsReadingEveryIterationAtOnce) {
  auto opt = Tiny();
  const Trace full = Traced(opt, 0);
  ASSERT_EQ(full.result.stop_reason, "max_iterations");
  ASSERT_EQ(full.records.size(), static_cast<size_t>(opt.dip.max_iterations));
  ExpectSameRun(full, Traced(opt, 1), "max_iterations");

  // The stop PSNR first exceeded in the middle of the run: at the first record from the 6th on
  // that beats every earlier one.
  std::vector<double> psnr;
  for (const auto& r : full.records) psnr.push_back(r.psnr);
  int64_t k = 6;
  while (k < opt.dip.max_iterations &&
         *std::max_element(psnr.begin(), psnr.begin() + (k - 1)) >= psnr[k - 1])
    ++k;
  ASSERT_LT(k, opt.dip.max_iterations) << "the PSNR should rise during the run";
  const double before = *std::max_element(psnr.begin(), psnr.begin() + (k - 1));
  opt.dip.psnr_stop = (before + psnr[k - 1]) / 2;
  const Trace stop0 = Traced(opt, 0), stop1 = Traced(opt, 1);
  EXPECT_EQ(stop0.result.stop_reason, "psnr_stop");
  EXPECT_EQ(stop0.result.iterations, k);
  ExpectSameRun(stop0, stop1, "psnr_stop");
  // The last iteration's stop, with the delayed read after the loop.
  opt.dip.max_iterations = k;
  ExpectSameRun(Traced(opt, 0), Traced(opt, 1), "psnr_stop at the last iteration");

  // Interrupted after 3 iterations; pool admission by τ; the NCC of every candidate; the fallback.
  opt = Tiny();
  ExpectSameRun(Traced(opt, 0, 3), Traced(opt, 1, 3), "interrupted");
  EXPECT_EQ(Traced(opt, 1, 3).result.iterations, 3);
  opt.dip.psnr_min = psnr[4];
  opt.ncc_every_iteration = true;
  ExpectSameRun(Traced(opt, 0), Traced(opt, 1), "admission by tau, ncc every iteration");
  opt.dip.psnr_min = 90;
  opt.dip.psnr_stop = 99;
  const Trace fb = Traced(opt, 1);
  EXPECT_TRUE(fb.result.fallback);
  ExpectSameRun(Traced(opt, 0), fb, "fallback");
}

// Per block: every candidate's ρ, sorted by (key, iteration), the first L averaged and rounded.
torch::Tensor PerBlockTopL(const std::vector<torch::Tensor>& cands, const torch::Tensor& p,
                           const AssemblyOptions& o) {
  const int64_t h = p.size(0), w = p.size(1), bs = o.block_size;
  BlockAssembler scorer(p, o);
  std::vector<torch::Tensor> rho;
  for (const auto& c : cands) rho.push_back(scorer.BlockNcc(c, Residual(c, {o.sigma, 4})));
  auto out = torch::zeros({3, h, w});
  for (int64_t r = 0; r * bs < h; ++r) {
    for (int64_t c = 0; c * bs < w; ++c) {
      std::vector<size_t> order(cands.size());
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
        return AssemblyKey(rho[a][r][c].item<double>()) < AssemblyKey(rho[b][r][c].item<double>());
      });
      const int64_t n = std::min<int64_t>(o.top, static_cast<int64_t>(cands.size()));
      const int64_t bh = std::min(bs, h - r * bs), bw = std::min(bs, w - c * bs);
      auto acc = torch::zeros({3, bh, bw}, torch::kFloat64);
      for (int64_t i = 0; i < n; ++i) {
        acc += cands[order[static_cast<size_t>(i)]]
                   .narrow(1, r * bs, bh)
                   .narrow(2, c * bs, bw)
                   .to(torch::kFloat64);
      }
      out.narrow(1, r * bs, bh)
          .narrow(2, c * bs, bw)
          .copy_(torch::floor(acc / n + 0.5).clamp(0, 255));
    }
  }
  return out;
}

TEST(BatchedAssembly, EqualsPerBlockTopL) {
  for (auto [h, w, bs, top] : {std::tuple<int64_t, int64_t, int64_t, int64_t>{48, 48, 16, 3},
                               {50, 37, 16, 3},
                               {40, 70, 64, 2},
                               {33, 33, 8, 1}}) {
    SCOPED_TRACE(std::to_string(h) + "x" + std::to_string(w) + " B=" + std::to_string(bs));
    const auto p = Pattern(h, w) * 500;
    AssemblyOptions o;
    o.block_size = bs;
    o.top = top;
    BlockAssembler a(p, o);
    std::vector<torch::Tensor> cands;
    for (uint64_t m = 0; m < 9; ++m) {
      // A faint γ·P in some candidates, so that blocks rank them differently.
      auto c = (Image(h, w, 200 + m) * (1 + 0.02 * static_cast<double>(m % 3) * p))
                   .round()
                   .clamp(0, 255);
      if (m == 5) c = cands[1].clone();  // a duplicate: ties go to the earlier iteration
      cands.push_back(c);
      a.Add(c, static_cast<int64_t>(m));
    }
    EXPECT_TRUE(torch::equal(a.Finish().image, PerBlockTopL(cands, p, o)));
  }
}

TEST(Perturbation, BufferGivesTheDrawsOfRandnLike) {
  const auto z = torch::randn({1, 8, 33, 17}) * 0.1;
  torch::manual_seed(11);
  const auto want = z + 0.1 * torch::randn_like(z);
  auto buf = torch::empty_like(z);
  torch::manual_seed(11);
  PerturbInput(z, 0.1, buf);
  EXPECT_TRUE(torch::equal(buf, want));
  const auto* data = buf.data_ptr<float>();
  PerturbInput(z, 0.1, buf);  // in place: no new storage, new draws
  EXPECT_EQ(buf.data_ptr<float>(), data);
  EXPECT_FALSE(torch::equal(buf, want));
}

// Philox normals: the key is the default generator's next 64 bits (seeded runs repeat), the
// draw is the kernel's for that key, and the thread count does not change a bit.
TEST(Perturbation, PhiloxFollowsTheSeedWhateverTheThreadCount) {
  // 266,192 elements: 8,319 chunks, so two threads take two ranges (ParallelFor's grain is 4,096
  // chunks), and a partial last chunk.
  const auto z = torch::randn({1, 16, 127, 131}) * 0.1;
  const int threads = at::get_num_threads();
  auto one = torch::empty_like(z), two = torch::empty_like(z);
  at::set_num_threads(1);
  torch::manual_seed(5);
  PerturbInput(z, 0.1, one, /*philox=*/true);
  at::set_num_threads(2);
  torch::manual_seed(5);
  PerturbInput(z, 0.1, two, /*philox=*/true);
  at::set_num_threads(threads);
  EXPECT_TRUE(torch::equal(one, two));

  torch::manual_seed(5);
  const auto key = static_cast<uint64_t>(
      at::check_generator<at::CPUGeneratorImpl>(at::detail::getDefaultCPUGenerator())->random64());
  const float* zp = z.data_ptr<float>();
  const float* got = one.data_ptr<float>();
  for (int64_t i = 0; i < z.numel(); ++i) {
    ASSERT_EQ(got[i], zp[i] + PhiloxNormal(key, i) * 0.1f) << i;
  }
  PerturbInput(z, 0.1, two, /*philox=*/true);  // the next key: other draws
  EXPECT_FALSE(torch::equal(one, two));
}

}  // namespace
}  // namespace dippas
