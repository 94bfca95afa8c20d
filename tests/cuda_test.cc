// The device-generic paths on CUDA against the CPU paths (which the reference
// tests pin to prnu-python). Skipped, with a message, where CUDA is absent.
#include <torch/cuda.h>

#include "dippas/assembly/assembly.h"
#include "dippas/dip/loop.h"
#include "dippas/prnu/detection.h"
#include "dippas/prnu/fingerprint.h"
#include "dippas/prnu/residual.h"
#include "test_util.h"

namespace dippas {
namespace {

#define DIPPAS_REQUIRE_CUDA()                                                         \
  do {                                                                                \
    if (!torch::cuda::is_available()) GTEST_SKIP() << "CUDA not available: skipped"; \
  } while (0)

torch::Tensor Photo(int64_t h, int64_t w, int64_t seed) {
  auto gen = torch::make_generator<at::CPUGeneratorImpl>(seed);
  auto base = torch::rand({1, 3, h / 8 + 1, w / 8 + 1}, gen) * 200 + 20;
  auto up = torch::upsample_bilinear2d(base, {h, w}, false)[0];
  return (up + torch::randn({3, h, w}, gen) * 4).clamp(0, 255).round();
}

const torch::Device kCuda(torch::kCUDA);

TEST(Cuda, ResidualMatchesCpu) {
  DIPPAS_REQUIRE_CUDA();
  for (auto size : {std::pair<int64_t, int64_t>{256, 256}, {333, 401}}) {
    auto img = Photo(size.first, size.second, 1);
    EXPECT_REL_CLOSE(Residual(img.to(kCuda)).cpu(), Residual(img), 1e-4);
  }
}

TEST(Cuda, BatchedResidualMatchesSingle) {
  DIPPAS_REQUIRE_CUDA();
  auto batch = torch::stack({Photo(128, 128, 1), Photo(128, 128, 2), Photo(128, 128, 3)}).to(kCuda);
  auto w = Residual(batch);
  for (int64_t i = 0; i < 3; ++i) EXPECT_REL_CLOSE(w[i].cpu(), Residual(batch[i].cpu()), 1e-4);
}

TEST(Cuda, FingerprintMatchesCpu) {
  DIPPAS_REQUIRE_CUDA();
  FingerprintAccumulator cpu, gpu;
  for (int64_t i = 0; i < 4; ++i) {
    auto img = Photo(128, 128, 10 + i);
    cpu.Add(img);
    gpu.Add(img.to(kCuda));
  }
  EXPECT_REL_CLOSE(gpu.Finish().cpu(), cpu.Finish(), 1e-4);
}

TEST(Cuda, DetectionMatchesCpu) {
  DIPPAS_REQUIRE_CUDA();
  auto img = Photo(128, 128, 4);
  auto k = torch::randn({128, 128});
  auto w = Residual(img), g = ToGray(img);
  EXPECT_NEAR(Ncc(w.to(kCuda), g.to(kCuda), k.to(kCuda)).item<double>(), Ncc(w, g, k).item<double>(), 1e-9);
  EXPECT_NEAR(Pce(w.to(kCuda), (g * k).to(kCuda)).pce, Pce(w, g * k).pce, 1e-6 * std::fabs(Pce(w, g * k).pce) + 1e-9);
}

TEST(Cuda, AssemblySelectsLikeCpu) {
  DIPPAS_REQUIRE_CUDA();
  auto p = torch::randn({64, 64});
  AssemblyOptions o;
  o.block_size = 16;
  o.top = 2;
  BlockAssembler cpu(p, o), gpu(p.to(kCuda), o);
  for (int64_t i = 0; i < 5; ++i) {
    auto c = Photo(64, 64, 20 + i);
    cpu.Add(c, i);
    gpu.Add(c.to(kCuda), i);
  }
  EXPECT_TRUE(torch::equal(gpu.Finish().image.cpu(), cpu.Finish().image));
}

TEST(Cuda, ImageNccFromBlockSumsMatchesCpu) {
  DIPPAS_REQUIRE_CUDA();
  auto p = torch::randn({80, 72});
  AssemblyOptions o;
  o.block_size = 32;
  BlockAssembler cpu(p, o), gpu(p.to(kCuda), o);
  auto c = Photo(80, 72, 30);
  auto w = Residual(c);
  const double want = cpu.AddWithResidual(c, w, 1);
  EXPECT_NEAR(gpu.AddWithResidual(c.to(kCuda), w.to(kCuda), 1), want, 1e-9 * std::fabs(want));
  EXPECT_NEAR(want, Ncc(w, ToGray(c), p).item<double>(), 1e-6 * std::fabs(want));
}

// With the scalars read one iteration late (the CUDA default) the stop rule still stops at the
// first iteration over the stop PSNR, and every reported iteration is one that ran.
TEST(Cuda, DelayedReadbackStopsAtTheRightIteration) {
  DIPPAS_REQUIRE_CUDA();
  DipRunOptions r;
  r.device = "cuda";
  r.dip.input_depth = 32;
  r.dip.max_iterations = 300;
  r.dip.psnr_min = 15;
  r.dip.psnr_stop = 22;
  std::vector<IterationRecord> seen;
  LoopCallbacks cb;
  cb.on_iteration = [&](const IterationRecord& rec, int64_t, std::optional<double>) { seen.push_back(rec); };
  auto res = RunDip(Photo(128, 128, 6), torch::randn({128, 128}), r, cb);
  ASSERT_EQ(res.stop_reason, "psnr_stop");
  ASSERT_EQ(static_cast<int64_t>(seen.size()), res.iterations);
  EXPECT_GT(seen.back().psnr, r.dip.psnr_stop);
  for (size_t i = 0; i + 1 < seen.size(); ++i) {
    EXPECT_EQ(seen[i].iteration, static_cast<int64_t>(i) + 1);
    EXPECT_LE(seen[i].psnr, r.dip.psnr_stop);
  }
  EXPECT_EQ(res.gamma, seen.back().gamma);
}

TEST(Cuda, DipLoopRunsAndLearns) {
  DIPPAS_REQUIRE_CUDA();
  DipRunOptions r;
  r.device = "cuda";
  r.dip.max_iterations = 100;
  r.dip.psnr_min = 20;
  r.dip.psnr_stop = 99;
  std::vector<double> psnr;
  LoopCallbacks cb;
  cb.on_iteration = [&](const IterationRecord& rec, int64_t, std::optional<double>) { psnr.push_back(rec.psnr); };
  auto res = RunDip(Photo(128, 128, 5), torch::randn({128, 128}), r, cb);
  ASSERT_EQ(res.iterations, 100);
  EXPECT_GT(psnr.back(), psnr.front() + 5);
  EXPECT_EQ(res.image.device().type(), torch::kCPU);
  EXPECT_EQ(res.image.size(1), 128);
}

}  // namespace
}  // namespace dippas
