// The non-DIP baselines: fingerprint subtraction and simple denoising, on a
// synthetic camera image I = I0·(1 + 0.02·K) with a smooth scene I0.
#include "dippas/baselines/baselines.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <tuple>

#include "dippas/prnu/detection.h"
#include "dippas/prnu/residual.h"

namespace dippas {
namespace {

constexpr int64_t kSize = 128;

// A smooth RGB scene on 0..255 (no fine texture, so the residual is mostly K).
torch::Tensor Scene() {
  const auto y = torch::arange(kSize, torch::kFloat32).view({kSize, 1});
  const auto x = torch::arange(kSize, torch::kFloat32).view({1, kSize});
  const auto base = 120 + 50 * torch::sin(x / 23.0) * torch::cos(y / 31.0) + 0.2 * (x - y);
  return torch::stack({base, base * 0.9 + 10, base * 0.8 + 25});
}

torch::Tensor Fingerprint(int64_t seed) {
  torch::manual_seed(seed);
  return torch::randn({kSize, kSize});
}

double NccOf(const torch::Tensor& image, const torch::Tensor& k) {
  return Ncc(Residual(image), ToGray(image), k).item<double>();
}

bool Is8Bit(const torch::Tensor& t) {
  return t.min().item<double>() >= 0 && t.max().item<double>() <= 255 && torch::equal(t, t.round());
}

TEST(SubtractFingerprint, RemovesTheFingerprint) {
  const auto k = Fingerprint(1);
  const auto image = Quantize8(Scene() * (1 + 0.02 * k));
  const double before = NccOf(image, k);
  ASSERT_GT(before, 0.1);  // the synthetic camera is clearly attributed

  const auto r = SubtractFingerprint(image, k);
  EXPECT_GT(r.alpha, 0);
  EXPECT_NEAR(r.ncc_before, before, 1e-9);
  EXPECT_LT(std::abs(r.ncc), 0.2 * before) << "alpha " << r.alpha;
  EXPECT_GT(r.evaluations, 2);
  ASSERT_EQ(r.image.sizes(), image.sizes());
  EXPECT_TRUE(Is8Bit(r.image));
  // The reported NCC is that of the returned 8-bit image.
  EXPECT_NEAR(NccOf(r.image, k), r.ncc, 1e-9);
  // α·max|K| stays within the bound, so 1 − α·K > 0 everywhere.
  EXPECT_LE(r.alpha * k.abs().max().item<double>(), 0.5 + 1e-12);
  // The injected strength was 0.02: α should land near it.
  EXPECT_NEAR(r.alpha, 0.02, 0.01);
}

TEST(SubtractFingerprint, ScaleFreeInK) {
  const auto k = Fingerprint(2);
  const auto image = Quantize8(Scene() * (1 + 0.02 * k));
  const auto a = SubtractFingerprint(image, k);
  const auto b = SubtractFingerprint(image, k * 1e-3);  // prnu-python's scale
  EXPECT_LT(std::abs(b.ncc), 0.2 * b.ncc_before);
  EXPECT_NEAR(b.alpha * 1e-3, a.alpha, 0.1 * a.alpha);
}

TEST(SubtractFingerprint, NothingToRemoveGivesAlphaZero) {
  const auto k = Fingerprint(3);
  // An anti-correlated image: NCC(0) < 0 already.
  const auto image = Quantize8(Scene() * (1 - 0.02 * k));
  const auto r = SubtractFingerprint(image, k);
  EXPECT_LE(r.ncc_before, 0);
  EXPECT_EQ(r.alpha, 0);
  EXPECT_EQ(r.evaluations, 1);
  EXPECT_TRUE(torch::equal(r.image, image));
}

TEST(SubtractFingerprint, GrayImageAndErrors) {
  const auto k = Fingerprint(4);
  const auto gray = Quantize8(Scene().slice(0, 0, 1) * (1 + 0.02 * k));
  const auto r = SubtractFingerprint(gray, k);
  EXPECT_EQ(r.image.size(0), 1);
  EXPECT_LT(std::abs(r.ncc), 0.2 * r.ncc_before);
  EXPECT_THROW(SubtractFingerprint(gray, k.slice(0, 0, 64)), std::invalid_argument);
  EXPECT_THROW(SubtractFingerprint(gray, torch::zeros_like(k)), std::invalid_argument);
}

TEST(DenoiseBaseline, SubtractsTheRoundedWaveletNoise) {
  const auto k = Fingerprint(5);
  torch::manual_seed(6);
  const auto image = Quantize8(Scene() * (1 + 0.02 * k) + 2 * torch::randn({3, kSize, kSize}));
  const auto out = DenoiseBaseline(image, 3.0);
  ASSERT_EQ(out.sizes(), image.sizes());
  EXPECT_TRUE(Is8Bit(out));
  ResidualOptions ro;
  ro.sigma = 3.0;
  const auto noise = WaveletNoise(image, ro);
  for (const auto& [c, y, x] : {std::tuple{0, 0, 0}, {1, 17, 90}, {2, 127, 127}, {0, 64, 3}}) {
    const double expected = std::floor(
        std::clamp(image[c][y][x].item<double>() - noise[c][y][x].item<double>(), 0.0, 255.0) +
        0.5);
    EXPECT_EQ(out[c][y][x].item<double>(), expected) << c << "," << y << "," << x;
  }
  // The noise residual, where the fingerprint lives, loses energy.
  EXPECT_LT(Residual(out).square().sum().item<double>(),
            0.5 * Residual(image).square().sum().item<double>());
  EXPECT_FALSE(torch::equal(out, image));
}

}  // namespace
}  // namespace dippas
