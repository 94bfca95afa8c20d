// NCC and PCE against values derived independently (loops, not FFTs).
#include "dippas/prnu/detection.h"
#include "test_util.h"

namespace dippas {
namespace {

TEST(Ncc, MatchesDirectSum) {
  torch::manual_seed(0);
  auto w = torch::randn({7, 9}, torch::kFloat64), g = torch::rand({7, 9}, torch::kFloat64),
       k = torch::randn({7, 9}, torch::kFloat64);
  double num = 0, nw = 0, nb = 0;
  for (int r = 0; r < 7; ++r) {
    for (int c = 0; c < 9; ++c) {
      const double a = w[r][c].item<double>(), b = g[r][c].item<double>() * k[r][c].item<double>();
      num += a * b;
      nw += a * a;
      nb += b * b;
    }
  }
  EXPECT_NEAR(Ncc(w, g, k).item<double>(), num / std::sqrt(nw * nb), 1e-12);
  // Scale-free in K, sign-sensitive.
  EXPECT_NEAR(Ncc(w, g, k * 1e-3).item<double>(), num / std::sqrt(nw * nb), 1e-12);
  EXPECT_NEAR(Ncc(w, g, -k).item<double>(), -num / std::sqrt(nw * nb), 1e-12);
}

TEST(Ncc, UndefinedWhenNormIsZero) {
  auto w = torch::zeros({4, 4}), g = torch::ones({4, 4}), k = torch::randn({4, 4});
  EXPECT_TRUE(std::isnan(Ncc(w, g, k).item<double>()));
}

TEST(Ncc, BroadcastsImagesAgainstFingerprints) {
  torch::manual_seed(3);
  auto w = torch::randn({3, 1, 8, 8}), g = torch::rand({3, 1, 8, 8}), k = torch::randn({1, 2, 8, 8});
  auto m = Ncc(w, g, k);
  ASSERT_EQ(m.sizes(), (torch::IntArrayRef{3, 2}));
  EXPECT_NEAR(m[2][1].item<double>(), Ncc(w[2][0], g[2][0], k[0][1]).item<double>(), 1e-9);
}

// Direct circular cross-correlation and PCE of SPEC §4.
double DirectPce(const torch::Tensor& a0, const torch::Tensor& b0, int64_t neigh) {
  auto a = (a0 - a0.mean()).to(torch::kFloat64), b = (b0 - b0.mean()).to(torch::kFloat64);
  const int64_t h = a.size(0), w = a.size(1);
  auto aa = a.accessor<double, 2>(), ba = b.accessor<double, 2>();
  std::vector<double> cc(static_cast<size_t>(h * w));
  for (int64_t dr = 0; dr < h; ++dr)
    for (int64_t dc = 0; dc < w; ++dc) {
      double s = 0;
      for (int64_t r = 0; r < h; ++r)
        for (int64_t c = 0; c < w; ++c) s += aa[(r + dr) % h][(c + dc) % w] * ba[r][c];
      cc[static_cast<size_t>(dr * w + dc)] = s;
    }
  const double peak = cc[0];
  double e = 0;
  int64_t n = 0;
  const int64_t half = neigh / 2;
  for (int64_t r = 0; r < h; ++r)
    for (int64_t c = 0; c < w; ++c) {
      const int64_t rr = std::min(r, h - r), cd = std::min(c, w - c);
      if (rr <= half && cd <= half) continue;
      e += cc[static_cast<size_t>(r * w + c)] * cc[static_cast<size_t>(r * w + c)];
      ++n;
    }
  return (peak >= 0 ? 1 : -1) * peak * peak / (e / static_cast<double>(n));
}

TEST(Pce, MatchesDirectCorrelation) {
  torch::manual_seed(5);
  auto b = torch::randn({20, 24}, torch::kFloat64);
  auto w = 0.6 * b + torch::randn({20, 24}, torch::kFloat64);
  const double direct = DirectPce(w, b, 11);
  EXPECT_NEAR(Pce(w, b).pce, direct, 1e-9 * std::fabs(direct));
  EXPECT_GT(Pce(w, b).pce, 60.0);  // correlated: attributed
  auto unrelated = torch::randn({20, 24}, torch::kFloat64);
  EXPECT_NEAR(Pce(unrelated, b).pce, DirectPce(unrelated, b, 11), 1e-9 * std::fabs(DirectPce(unrelated, b, 11)));
  EXPECT_LT(Pce(unrelated, b).pce, 60.0);
}

TEST(Pce, NegativeCorrelationGivesNegativePce) {
  torch::manual_seed(6);
  auto b = torch::randn({32, 32}, torch::kFloat64);
  auto w = -0.5 * b + torch::randn({32, 32}, torch::kFloat64);
  EXPECT_LT(Pce(w, b).pce, -60.0);
}

TEST(Pce, SearchFindsShiftedPeak) {
  torch::manual_seed(7);
  auto b = torch::randn({32, 32}, torch::kFloat64);
  auto w = torch::roll(b, {2, -3}, {0, 1}) + 0.1 * torch::randn({32, 32}, torch::kFloat64);
  PceOptions opt;
  opt.search_radius = 4;
  auto r = Pce(w, b, opt);
  EXPECT_EQ(r.peak_row, 2);
  EXPECT_EQ(r.peak_col, -3);
  EXPECT_GT(r.pce, 500);
  EXPECT_LT(Pce(w, b).pce, r.pce);  // at zero shift the peak is missed
}

}  // namespace
}  // namespace dippas
