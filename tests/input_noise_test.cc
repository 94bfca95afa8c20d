// The CPU input perturbation's generator against independent facts: Random123's published
// Philox4x32-10 answers, Box–Muller in double precision from the same words, the normal
// distribution's moments and CDF, and the same bits whatever the split or the kernel.
#include "dippas/kernels/cpu/philox.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

namespace dippas {
namespace {

TEST(Philox, KnownAnswersOfRandom123) {
  // Random123 tests/kat_vectors, the three "philox4x32 10" lines: counter, key, result.
  EXPECT_EQ(Philox4x32({0, 0, 0, 0}, {0, 0}),
            (std::array<uint32_t, 4>{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}));
  EXPECT_EQ(Philox4x32({0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}, {0xffffffff, 0xffffffff}),
            (std::array<uint32_t, 4>{0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}));
  EXPECT_EQ(Philox4x32({0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}, {0xa4093822, 0x299f31d0}),
            (std::array<uint32_t, 4>{0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}));
}

// Element i from the header's layout, in double precision with the C library's log, cos, sin.
double ReferenceNormal(uint64_t key, int64_t i) {
  const int64_t chunk = i / 32, r = i % 32, word = r / 8, lane = r % 8;
  const uint64_t j = static_cast<uint64_t>(chunk) * 8 + static_cast<uint64_t>(lane);
  const auto w = Philox4x32({static_cast<uint32_t>(j), static_cast<uint32_t>(j >> 32), 0, 0},
                            {static_cast<uint32_t>(key), static_cast<uint32_t>(key >> 32)});
  const uint32_t a = word < 2 ? w[0] : w[2], b = word < 2 ? w[1] : w[3];
  const double u1 = ((a >> 8) + 1.0) / 16777216.0, u2 = (b >> 8) / 16777216.0;
  const double radius = std::sqrt(-2.0 * std::log(u1)), angle = 2.0 * M_PI * u2;
  return word % 2 == 0 ? radius * std::cos(angle) : radius * std::sin(angle);
}

TEST(Philox, NormalsAreBoxMullerOfTheWordsToFloatPrecision) {
  const uint64_t key = 0x0123456789abcdefull;
  double worst = 0;
  for (int64_t i = 0; i < 200000; ++i) {
    const double want = ReferenceNormal(key, i);
    worst = std::max(worst, std::abs(PhiloxNormal(key, i) - want) / std::max(1.0, std::abs(want)));
  }
  EXPECT_LT(worst, 2e-6);  // float: a few ulp of the radius and of cos/sin
  // Far counters: the high word of the counter is used.
  const int64_t far = (int64_t{1} << 37) + 5;
  EXPECT_NEAR(PhiloxNormal(key, far), ReferenceNormal(key, far), 2e-6 * 6);
}

TEST(Philox, DrawsFollowTheStandardNormal) {
  const int64_t n = int64_t{1} << 22;
  std::vector<float> zero(n, 0.0f), x(n);
  PhiloxPerturb(zero.data(), 1.0f, 42, x.data(), 0, n);
  double m1 = 0, m2 = 0, m3 = 0, m4 = 0, lag = 0, top = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double v = x[i];
    m1 += v;
    m2 += v * v;
    m3 += v * v * v;
    m4 += v * v * v * v;
    if (i > 0) lag += v * x[i - 1];
    top = std::max(top, std::abs(v));
  }
  m1 /= n, m2 /= n, m3 /= n, m4 /= n, lag /= n;
  const double se = 1.0 / std::sqrt(static_cast<double>(n));  // ≈ 4.9e-4
  EXPECT_LT(std::abs(m1), 5 * se);
  EXPECT_LT(std::abs(m2 - 1), 5 * std::sqrt(2.0) * se);
  EXPECT_LT(std::abs(m3), 5 * std::sqrt(15.0) * se);
  EXPECT_LT(std::abs(m4 - 3), 5 * std::sqrt(96.0) * se);
  EXPECT_LT(std::abs(lag), 5 * se);
  // 24-bit uniforms bound the radius by √(2·ln 2²⁴) ≈ 5.77, as torch's CPU normal_.
  EXPECT_LE(top, 5.7684);
  EXPECT_GT(top, 4.5);
  // Kolmogorov–Smirnov against Φ: the 0.1% critical value is 1.95/√n.
  std::sort(x.begin(), x.end());
  double d = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double cdf = 0.5 * std::erfc(-x[i] / std::sqrt(2.0));
    d = std::max({d, std::abs(cdf - static_cast<double>(i) / n),
                  std::abs(cdf - static_cast<double>(i + 1) / n)});
  }
  EXPECT_LT(d, 1.95 * se);
}

TEST(Philox, NeighbouringKeysAndPairHalvesAreUncorrelated) {
  const int64_t n = int64_t{1} << 20;
  std::vector<float> zero(n, 0.0f), a(n), b(n);
  PhiloxPerturb(zero.data(), 1.0f, 7, a.data(), 0, n);
  PhiloxPerturb(zero.data(), 1.0f, 8, b.data(), 0, n);
  double keys = 0, halves = 0;
  for (int64_t i = 0; i < n; ++i) keys += static_cast<double>(a[i]) * b[i];
  // r·cos θ and r·sin θ of one pair sit 8 apart.
  for (int64_t c = 0; c < n / 32; ++c) {
    for (int l = 0; l < 8; ++l) halves += static_cast<double>(a[32 * c + l]) * a[32 * c + 8 + l];
  }
  const double se = 1.0 / std::sqrt(static_cast<double>(n));
  EXPECT_LT(std::abs(keys / n), 5 * se);
  EXPECT_LT(std::abs(halves / (n / 4)), 5 * 2 * se);
}

TEST(Philox, PerturbIsZPlusStdTimesTheDrawWhateverTheSplit) {
  const int64_t n = 32 * 37 + 11;  // a partial last chunk
  std::mt19937 rng(3);
  std::normal_distribution<float> dist(0.0f, 0.1f);
  std::vector<float> z(n), whole(n), parts(n);
  for (auto& v : z) v = dist(rng);
  const float std_dev = 0.1f;
  const uint64_t key = 0xfeedfacecafebeefull;
  PhiloxPerturb(z.data(), std_dev, key, whole.data(), 0, n);
  for (int64_t i = 0; i < n; ++i) {
    const float noise = PhiloxNormal(key, i) * std_dev;  // the same two roundings as torch
    ASSERT_EQ(whole[i], z[i] + noise) << i;
  }
  // Any chunk-aligned split, and in place.
  parts = z;
  PhiloxPerturb(parts.data(), std_dev, key, parts.data(), 0, 32 * 5);
  PhiloxPerturb(parts.data(), std_dev, key, parts.data(), 32 * 5, 32 * 30);
  PhiloxPerturb(parts.data(), std_dev, key, parts.data(), 32 * 30, n);
  EXPECT_EQ(parts, whole);
  // Another key, other numbers.
  PhiloxPerturb(z.data(), std_dev, key + 1, parts.data(), 0, n);
  EXPECT_NE(parts, whole);
}

TEST(Philox, VectorKernelsGiveTheGenericKernelsBits) {
  const std::string best = PhiloxKernel();
  const int64_t n = 32 * 4096 + 19;  // a partial last chunk
  std::vector<float> z(n), vec(n), gen(n);
  for (int64_t i = 0; i < n; ++i) z[i] = static_cast<float>(std::sin(0.001 * i));
  int tried = 0;
  for (const char* kernel : {"avx2", "avx512"}) {
    if (!SelectPhiloxKernel(kernel)) continue;
    ++tried;
    for (uint64_t key : {uint64_t{0}, uint64_t{1} << 63, uint64_t{0x5555aaaa3333cccc}}) {
      // Whole, then from an odd chunk (the AVX-512 kernel takes chunks in pairs).
      for (int64_t begin : {int64_t{0}, int64_t{32 * 3}}) {
        PhiloxPerturbGeneric(z.data(), 0.1f, key, gen.data(), begin, n);
        std::fill(vec.begin(), vec.end(), 0.0f);
        std::copy(gen.begin(), gen.begin() + begin, vec.begin());
        PhiloxPerturb(z.data(), 0.1f, key, vec.data(), begin, n);
        EXPECT_EQ(vec, gen) << kernel << " key " << key << " from " << begin;
      }
    }
  }
  ASSERT_TRUE(SelectPhiloxKernel(best));
  EXPECT_FALSE(SelectPhiloxKernel("avx1024"));
  if (tried == 0) GTEST_SKIP() << "this CPU runs the generic kernel only";
}

// Counters near 2^32: started from an odd chunk, the AVX-512 kernel's pair of chunks
// 2^29 − 1 and 2^29 runs the counters 2^32 − 8 .. 2^32 + 7, whose low word wraps inside the
// vector; the high word must carry there as in the plain kernel.
TEST(Philox, VectorKernelsCarryIntoTheCountersHighWord) {
  const int64_t first = (int64_t{1} << 29) - 3;
  const int64_t begin = first * 32, n = 32 * 8;
  // PhiloxPerturb indexes z and out by element index and touches only [begin, end): the
  // pointers are offset so that element `begin` is [0].
  std::vector<float> z(n, 0.5f), vec(n), gen(n);
  PhiloxPerturbGeneric(z.data() - begin, 1.0f, 9, gen.data() - begin, begin, begin + n);
  const std::string best = PhiloxKernel();
  for (const char* kernel : {"avx2", "avx512"}) {
    if (!SelectPhiloxKernel(kernel)) continue;
    PhiloxPerturb(z.data() - begin, 1.0f, 9, vec.data() - begin, begin, begin + n);
    EXPECT_EQ(vec, gen) << kernel;
  }
  ASSERT_TRUE(SelectPhiloxKernel(best));
}

}  // namespace
}  // namespace dippas
