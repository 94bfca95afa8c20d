// NoTf32Guard / CudnnBenchmarkGuard set LibTorch's global math modes for a scope and restore what
// was there before. The flags exist in CPU builds too, so set/restore is checked everywhere; what
// TF32 would do to the residual is checked on a GPU only (skipped elsewhere).
#include <ATen/Context.h>
#include <torch/cuda.h>

#include "dippas/prnu/residual.h"
#include "dippas/util/math_mode.h"
#include "test_util.h"

namespace dippas {
namespace {

// Puts the global flags back as they were when a test started.
class MathModeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto& c = at::globalContext();
    cudnn_ = c.allowTF32CuDNN();
    matmul_ = c.float32MatmulPrecision();
    bench_ = c.benchmarkCuDNN();
  }
  void TearDown() override {
    auto& c = at::globalContext();
    c.setAllowTF32CuDNN(cudnn_);
    SetMatmulPrecision(matmul_);
    c.setBenchmarkCuDNN(bench_);
  }
  bool cudnn_ = false, bench_ = false;
  at::Float32MatmulPrecision matmul_ = at::Float32MatmulPrecision::HIGHEST;
};

TEST_F(MathModeTest, NoTf32GuardDisablesAndRestoresTf32) {
  auto& c = at::globalContext();
  c.setAllowTF32CuDNN(true);
  SetMatmulPrecision(at::Float32MatmulPrecision::MEDIUM);
  {
    NoTf32Guard g;
    EXPECT_FALSE(c.allowTF32CuDNN());
    EXPECT_FALSE(c.allowTF32CuBLAS());
    EXPECT_EQ(c.float32MatmulPrecision(), at::Float32MatmulPrecision::HIGHEST);
    {
      NoTf32Guard inner;  // nested: restores "off", not the outer "on"
      EXPECT_FALSE(c.allowTF32CuDNN());
    }
    EXPECT_FALSE(c.allowTF32CuDNN());
  }
  EXPECT_TRUE(c.allowTF32CuDNN());
  // "medium" comes back as "medium", not as the "high" that setAllowTF32CuBLAS(true) would give.
  EXPECT_EQ(c.float32MatmulPrecision(), at::Float32MatmulPrecision::MEDIUM);
}

TEST_F(MathModeTest, NoTf32GuardKeepsOffWhenItWasOff) {
  auto& c = at::globalContext();
  c.setAllowTF32CuDNN(false);
  SetMatmulPrecision(at::Float32MatmulPrecision::HIGHEST);
  { NoTf32Guard g; }
  EXPECT_FALSE(c.allowTF32CuDNN());
  EXPECT_EQ(c.float32MatmulPrecision(), at::Float32MatmulPrecision::HIGHEST);
}

TEST_F(MathModeTest, NoTf32GuardRestoresOnException) {
  auto& c = at::globalContext();
  c.setAllowTF32CuDNN(true);
  try {
    NoTf32Guard g;
    throw std::runtime_error("x");
  } catch (const std::runtime_error&) {
  }
  EXPECT_TRUE(c.allowTF32CuDNN());
}

TEST_F(MathModeTest, DisengagedGuardsTouchNothing) {
  auto& c = at::globalContext();
  c.setAllowTF32CuDNN(true);
  c.setBenchmarkCuDNN(false);
  {
    NoTf32Guard g(/*engage=*/false);
    CudnnBenchmarkGuard b(true, /*engage=*/false);
    EXPECT_TRUE(c.allowTF32CuDNN());
    EXPECT_FALSE(c.benchmarkCuDNN());
  }
  EXPECT_TRUE(c.allowTF32CuDNN());
  // CPU tensors take the disengaged path: the residual leaves the flags alone (and never writes
  // them from a CPU thread).
  Residual(torch::rand({3, 32, 32}) * 255);
  EXPECT_TRUE(c.allowTF32CuDNN());
}

TEST_F(MathModeTest, CudnnBenchmarkGuardSetsAndRestores) {
  auto& c = at::globalContext();
  c.setBenchmarkCuDNN(false);
  {
    CudnnBenchmarkGuard b(true);
    EXPECT_TRUE(c.benchmarkCuDNN());
  }
  EXPECT_FALSE(c.benchmarkCuDNN());
  c.setBenchmarkCuDNN(true);
  {
    CudnnBenchmarkGuard b(false);
    EXPECT_FALSE(c.benchmarkCuDNN());
  }
  EXPECT_TRUE(c.benchmarkCuDNN());
}

// On a GPU with TF32 allowed globally (LibTorch's default for cuDNN), the residual still agrees
// with the CPU path, and the caller's setting is back afterwards.
TEST_F(MathModeTest, ResidualOnCudaIgnoresGlobalTf32) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "CUDA not available: skipped";
  auto& c = at::globalContext();
  c.setAllowTF32CuDNN(true);
  SetMatmulPrecision(at::Float32MatmulPrecision::MEDIUM);
  auto gen = torch::make_generator<at::CPUGeneratorImpl>(5);
  auto img = (torch::rand({3, 256, 256}, gen) * 255).round();
  EXPECT_REL_CLOSE(Residual(img.to(torch::kCUDA)).cpu(), Residual(img), 1e-4);
  EXPECT_TRUE(c.allowTF32CuDNN());
  EXPECT_EQ(c.float32MatmulPrecision(), at::Float32MatmulPrecision::MEDIUM);
}

}  // namespace
}  // namespace dippas
