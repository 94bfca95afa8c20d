// The fingerprint's quality estimate (prnu/fingerprint.h) against fingerprints of known quality:
// flat-fields made here of a known pattern K_true, so that the estimate's correlation with K_true
// can be measured and compared with what the halves predict.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <cstdio>

#include "dippas/prnu/fingerprint.h"

namespace dippas {
namespace {

double Corr(const torch::Tensor& a, const torch::Tensor& b) {
  const auto x = a.to(torch::kFloat64).flatten(), y = b.to(torch::kFloat64).flatten();
  const auto xc = x - x.mean(), yc = y - y.mean();
  return ((xc * yc).sum() / ((xc * xc).sum() * (yc * yc).sum()).sqrt()).item<double>();
}

// N flat-fields of a sensor with pattern k: a flat scene × (1 + k) + shot noise, 8 bits.
FingerprintAccumulator Flats(const torch::Tensor& k, int64_t n, double noise, uint64_t seed) {
  auto gen = torch::make_generator<at::CPUGeneratorImpl>(seed);
  FingerprintAccumulator acc;
  for (int64_t i = 0; i < n; ++i) {
    const double level = 150 + 50 * torch::rand({1}, gen).item<double>();
    const auto shot = level * (1 + k).unsqueeze(0).expand({3, -1, -1});
    acc.Add((shot + torch::randn(shot.sizes(), gen) * noise * (shot / 180).sqrt())
                .round()
                .clamp(0, 255));
  }
  return acc;
}

// Without anything the shots share but the pattern, the halves predict the whole estimate's
// correlation with the true pattern: within 0.06 from 4 to 32 flat-fields and two noise levels
// (ρ from ~0.4 to ~0.95).
TEST(FingerprintQuality, HalvesPredictTheCorrelationWithTheTruePattern) {
  auto gen = torch::make_generator<at::CPUGeneratorImpl>(5);
  const auto k = torch::randn({96, 96}, gen) * 0.01;
  for (double noise : {3.0, 8.0}) {
    for (int64_t n : {4, 8, 16, 32}) {
      const auto acc = Flats(k, n, noise, static_cast<uint64_t>(n) * 7 + 1);
      const FingerprintQuality q = acc.Quality();
      const double actual = Corr(acc.Finish(), k);
      std::printf("noise %.0f, N %2lld: halves r %.3f, estimated ρ %.3f, actual %.3f\n", noise,
                  static_cast<long long>(n), q.halves_corr, q.true_corr, actual);
      EXPECT_EQ(q.images, n);
      EXPECT_NEAR(q.true_corr, actual, 0.06) << "noise " << noise << ", N " << n;
    }
  }
}

// How many flat-fields a target needs, predicted from a few: from 4 of them, the N that reaches
// ρ ≈ 0.8 is predicted within a factor 1.5 of the N that does (found by adding flat-fields; the
// processed pattern saturates near 0.95, so a target near it would be reached late).
TEST(FingerprintQuality, PredictsTheFlatFieldsForATarget) {
  auto gen = torch::make_generator<at::CPUGeneratorImpl>(9);
  const auto k = torch::randn({96, 96}, gen) * 0.01;
  const double noise = 8;
  const int64_t predicted = FlatFieldsFor(Flats(k, 4, noise, 3).Quality(), 0.8);
  int64_t reached = 0;
  for (int64_t n = 4; n <= 128 && reached == 0; n += 4) {
    const auto acc = Flats(k, n, noise, 11);
    if (Corr(acc.Finish(), k) >= 0.8) reached = n;
  }
  std::printf("ρ ≈ 0.8: predicted from 4 flat-fields %lld, reached at %lld\n",
              static_cast<long long>(predicted), static_cast<long long>(reached));
  ASSERT_GT(reached, 0);
  EXPECT_GE(predicted, reached / 1.5);
  EXPECT_LE(predicted, reached * 1.5);
}

TEST(FingerprintQuality, UnknownBelowTwoImagesAndFromTheFormula) {
  auto gen = torch::make_generator<at::CPUGeneratorImpl>(2);
  const auto k = torch::randn({32, 32}, gen) * 0.01;
  EXPECT_TRUE(std::isnan(Flats(k, 1, 3, 1).Quality().halves_corr));
  EXPECT_DOUBLE_EQ(FullFromHalvesCorrelation(1.0 / 3.0), std::sqrt(0.5));  // 2r/(1+r) = 1/2
  EXPECT_EQ(FullFromHalvesCorrelation(-0.1), 0.0);
  EXPECT_EQ(FlatFieldsFor(FingerprintQuality{}, 0.9), 0);
}

}  // namespace
}  // namespace dippas
