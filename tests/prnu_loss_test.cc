// The PRNU term of the loss (DipOptions::prnu_weight): the differentiable residual agrees with
// the reference one, ρ² agrees with detection's NCC and the assembly's block ρ, and both
// gradients agree with finite differences.
#include "dippas/dip/prnu_loss.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <functional>

#include "dippas/assembly/assembly.h"
#include "dippas/prnu/detection.h"
#include "dippas/prnu/residual.h"
#include "test_util.h"

namespace dippas {
namespace {

// A textured image carrying a camera pattern K (std 2 %), on 0..255.
torch::Tensor CameraImage(int64_t h, int64_t w, const torch::Tensor& k, torch::Dtype dtype) {
  auto gen = torch::make_generator<at::CPUGeneratorImpl>(3);
  auto base = torch::rand({1, 3, 5, 5}, gen, torch::kFloat64) * 150 + 50;
  auto scene = torch::upsample_bilinear2d(base, {h, w}, false)[0];
  return (scene * (1 + k.to(torch::kFloat64)) + torch::randn({3, h, w}, gen, torch::kFloat64) * 2)
      .to(dtype);
}

torch::Tensor Pattern(int64_t h, int64_t w) {
  auto gen = torch::make_generator<at::CPUGeneratorImpl>(8);
  return torch::randn({h, w}, gen, torch::kFloat64) * 0.02;
}

// Central difference of f along v (eps small: the Wiener filters' max(·, 0) and min over windows
// make W piecewise smooth, and a step of 1e-4 can cross a kink) against autograd's ∇f·v, relative
// to the larger of the two.
void ExpectGradientMatches(const std::function<torch::Tensor(const torch::Tensor&)>& f,
                           const torch::Tensor& x0, double eps, double tol) {
  auto x = x0.clone().set_requires_grad(true);
  auto y = f(x);
  y.backward();
  const auto grad = x.grad();
  auto gen = torch::make_generator<at::CPUGeneratorImpl>(21);
  for (int d = 0; d < 3; ++d) {
    const auto v = torch::randn(x0.sizes(), gen, torch::kFloat64);
    double fd;
    {
      torch::NoGradGuard no_grad;
      fd = ((f(x0 + eps * v) - f(x0 - eps * v)) / (2 * eps)).item<double>();
    }
    const double ad = (grad * v).sum().item<double>();
    EXPECT_NEAR(ad, fd, tol * std::max(std::fabs(ad), std::fabs(fd))) << "direction " << d;
  }
}

TEST(ResidualTensor, AgreesWithTheResidual) {
  const auto k = Pattern(96, 80);
  const auto img = CameraImage(96, 80, k, torch::kFloat32);
  EXPECT_REL_CLOSE(ResidualTensor(img), Residual(img), 1e-4);
  EXPECT_EQ(ResidualTensor(img.to(torch::kFloat64)).scalar_type(), torch::kFloat64);
}

TEST(ResidualTensor, GradientMatchesFiniteDifferences) {
  const auto k = Pattern(40, 36);
  const auto img = CameraImage(40, 36, k, torch::kFloat64);
  auto gen = torch::make_generator<at::CPUGeneratorImpl>(4);
  const auto probe = torch::randn({40, 36}, gen, torch::kFloat64);
  ExpectGradientMatches([&](const torch::Tensor& x) { return (ResidualTensor(x) * probe).sum(); },
                        img, 1e-4, 1e-6);
}

TEST(PrnuLoss, WholeImageIsTheSquaredNccOfDetection) {
  const auto k = Pattern(96, 96);
  const auto img = CameraImage(96, 96, k, torch::kFloat32);
  const double ncc = Ncc(Residual(img), ToGray(img), k).item<double>();
  ASSERT_GT(std::fabs(ncc), 0.05);  // the pattern is there
  const double rho2 = PrnuCorrelationLoss(img, k, 0, {}).item<double>();
  EXPECT_NEAR(rho2, ncc * ncc, 1e-3 * ncc * ncc);
}

TEST(PrnuLoss, BlocksAreTheMeanSquaredBlockNccOfTheAssembly) {
  const auto k = Pattern(80, 72);  // partial edge blocks at B = 32
  const auto img = CameraImage(80, 72, k, torch::kFloat32);
  AssemblyOptions ao;
  ao.block_size = 32;
  BlockAssembler assembler(k, ao);
  const auto rho = assembler.BlockNcc(img, Residual(img));
  ASSERT_EQ(rho.numel(), 9);
  const double expected = rho.square().mean().item<double>();
  EXPECT_NEAR(PrnuCorrelationLoss(img, k, 32, {}).item<double>(), expected, 1e-3 * expected);
  // One block as large as the image is the whole-image term.
  EXPECT_NEAR(PrnuCorrelationLoss(img, k, 80, {}).item<double>(),
              PrnuCorrelationLoss(img, k, 0, {}).item<double>(), 1e-12);
}

TEST(PrnuLoss, GradientMatchesFiniteDifferences) {
  const auto k = Pattern(48, 40);
  const auto img = CameraImage(48, 40, k, torch::kFloat64);
  for (int64_t block : {0, 16}) {
    SCOPED_TRACE("block " + std::to_string(block));
    ExpectGradientMatches(
        [&](const torch::Tensor& x) { return PrnuCorrelationLoss(x, k, block, {}); }, img, 1e-6,
        1e-5);
  }
}

TEST(PrnuLoss, BlackImageAndBadShapes) {
  const auto k = Pattern(32, 32);
  // A black image: ΣW² = Σ(G·P)² = 0, ρ undefined, counted as 0.
  EXPECT_EQ(PrnuCorrelationLoss(torch::zeros({3, 32, 32}), k, 16, {}).item<double>(), 0.0);
  EXPECT_THROW(PrnuCorrelationLoss(torch::zeros({3, 32, 30}), k, 0, {}), std::invalid_argument);
  EXPECT_THROW(PrnuCorrelationLoss(torch::zeros({3, 32, 32}), k, -1, {}), std::invalid_argument);
}

// A flat candidate (the network's output early on, or saturated): the gradient must be finite,
// not NaN, or one such iteration would poison every weight of the network. Black: the residual
// is exactly 0 and ρ undefined, counted as 0. Mid-gray: the residual is rounding noise only.
// Both the whole-image and the block-wise term.
TEST(PrnuLoss, FlatImageHasAFiniteGradient) {
  const auto k = Pattern(32, 32);
  for (double level : {0.0, 117.0}) {
    for (int64_t block : {0, 16}) {
      SCOPED_TRACE("level " + std::to_string(level) + ", block " + std::to_string(block));
      auto x = torch::full({3, 32, 32}, level, torch::kFloat64).set_requires_grad(true);
      auto loss = PrnuCorrelationLoss(x, k, block, {});
      if (level == 0) {
        EXPECT_EQ(loss.item<double>(), 0.0);
      }
      loss.backward();
      EXPECT_TRUE(torch::isfinite(x.grad()).all().item<bool>()) << "NaN or infinite gradient";
    }
  }
}

// The Wiener filter of a flat plane (σ² = 0): 0, with a finite gradient.
TEST(ResidualTensor, WienerOfAFlatPlaneIsZeroWithFiniteGradient) {
  auto x = torch::zeros({2, 16, 16}, torch::kFloat64).set_requires_grad(true);
  auto y = WienerDftTensor(x);
  EXPECT_EQ(y.abs().max().item<double>(), 0.0);
  y.sum().backward();
  EXPECT_TRUE(torch::isfinite(x.grad()).all().item<bool>());
}

}  // namespace
}  // namespace dippas
