// DIPPAS assembly (SPEC §6) on hand-built pools whose per-block selection is known in advance:
// each candidate is a solid colour (the output block's value says which ones were averaged) and
// its residual is built block by block so that ρ_mb = NCC(W_m[b], G_m[b]·P[b]) is a chosen value.
#include "dippas/assembly/assembly.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <vector>

#include "dippas/prnu/detection.h"
#include "dippas/prnu/residual.h"
#include "test_util.h"

namespace dippas {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
using Grid = std::vector<std::vector<double>>;  // one value per block, [row][col]

torch::Tensor Pattern(int64_t h, int64_t w, int64_t seed = 1) {
  torch::manual_seed(seed);
  return torch::randn({h, w}, torch::kFloat64);
}

// Solid candidate: every channel = v, so G_m is the constant v·Σ weights (> 0 for v > 0).
torch::Tensor Solid(int64_t h, int64_t w, double v) { return torch::full({3, h, w}, v); }

// Residual (H,W) whose block NCC with a solid candidate against P is rho[r][c] exactly:
// W[b] = t·P[b] + sqrt(1 − t²)·Q[b] with Q[b] ⟂ P[b] and ‖Q[b]‖ = ‖P[b]‖. NaN → zero block.
torch::Tensor ResidualWithRho(const torch::Tensor& p, int64_t bs, const Grid& rho,
                              int64_t seed = 7) {
  torch::manual_seed(seed);
  auto w = torch::zeros_like(p);
  for (int64_t r = 0; r < static_cast<int64_t>(rho.size()); ++r) {
    for (int64_t c = 0; c < static_cast<int64_t>(rho[r].size()); ++c) {
      const int64_t r0 = r * bs, c0 = c * bs;
      const int64_t bh = std::min(bs, p.size(0) - r0), bw = std::min(bs, p.size(1) - c0);
      auto pb = p.narrow(0, r0, bh).narrow(1, c0, bw);
      const double t = rho[r][c];
      if (std::isnan(t)) continue;
      auto q = torch::randn_like(pb);
      q = q - (q * pb).sum() / (pb * pb).sum() * pb;
      q = q * (pb.norm() / q.norm());
      w.narrow(0, r0, bh).narrow(1, c0, bw).copy_(t * pb + std::sqrt(1 - t * t) * q);
    }
  }
  return w;
}

// ρ of block (r0,c0,bh,bw) by a direct double loop, independent of the tensor code.
double DirectRho(const torch::Tensor& residual, const torch::Tensor& candidate,
                 const torch::Tensor& p, int64_t r0, int64_t c0, int64_t bh, int64_t bw) {
  auto w = residual.to(torch::kFloat64).contiguous(),
       x = candidate.to(torch::kFloat64).contiguous(), k = p.to(torch::kFloat64).contiguous();
  auto wa = w.accessor<double, 2>(), ka = k.accessor<double, 2>();
  auto xa = x.accessor<double, 3>();
  double num = 0, nw = 0, nb = 0;
  for (int64_t i = r0; i < r0 + bh; ++i) {
    for (int64_t j = c0; j < c0 + bw; ++j) {
      double g = 0;
      for (int ch = 0; ch < 3; ++ch) g += kGrayWeights[ch] * xa[ch][i][j];
      const double b = g * ka[i][j];
      num += wa[i][j] * b;
      nw += wa[i][j] * wa[i][j];
      nb += b * b;
    }
  }
  return nw > 0 && nb > 0 ? num / std::sqrt(nw * nb) : kNaN;
}

// The value of block (r,c) of a solid-block output; fails if the block is not uniform.
double BlockValue(const torch::Tensor& image, int64_t bs, int64_t r, int64_t c) {
  const int64_t r0 = r * bs, c0 = c * bs;
  auto blk = image.narrow(1, r0, std::min(bs, image.size(1) - r0))
                 .narrow(2, c0, std::min(bs, image.size(2) - c0));
  const double lo = blk.min().item<double>(), hi = blk.max().item<double>();
  EXPECT_EQ(lo, hi) << "block (" << r << "," << c << ") is not uniform";
  return lo;
}

AssemblyOptions Opts(int64_t block_size, int64_t top) {
  AssemblyOptions o;
  o.block_size = block_size;
  o.top = top;
  return o;
}

TEST(AssemblyKey, OrdersSmallNegativeFirstThenNonNegativeThenUndefined) {
  EXPECT_LT(AssemblyKey(-0.01), AssemblyKey(-0.2));
  EXPECT_LT(AssemblyKey(-0.2), AssemblyKey(0.0));
  EXPECT_LT(AssemblyKey(0.0), AssemblyKey(0.05));
  EXPECT_LT(AssemblyKey(0.05), AssemblyKey(kNaN));
  // Even the most negative ρ beats the smallest non-negative one.
  EXPECT_LT(AssemblyKey(-1.0), AssemblyKey(0.0));
  EXPECT_EQ(AssemblyKey(kNaN), std::numeric_limits<double>::infinity());
}

// A 2×2-block pool of four solid candidates with different winners per block.
struct Pool {
  static constexpr int64_t kSize = 32, kBlock = 16;
  torch::Tensor p = Pattern(kSize, kSize);
  std::vector<double> colour = {10, 51, 90, 131};  // A, B, C, D
  std::vector<Grid> rho = {
      {{-0.30, 0.10}, {0.50, -0.60}},   // A: wins block (1,1)
      {{-0.05, -0.40}, {0.30, 0.25}},   // B: wins block (0,0)
      {{0.02, -0.50}, {-0.90, 0.40}},   // C: wins (1,0): a large negative beats any positive
      {{0.60, -0.20}, {0.01, -0.70}}};  // D: wins (0,1)
  std::vector<int64_t> iteration = {100, 200, 300, 400};

  void AddTo(BlockAssembler& a, const std::vector<int>& order) const {
    for (int m : order) {
      a.AddWithResidual(Solid(kSize, kSize, colour[m]), ResidualWithRho(p, kBlock, rho[m], m),
                        iteration[m]);
    }
  }
};

TEST(BlockAssembler, BlockNccMatchesTheConstructedRho) {
  Pool pool;
  BlockAssembler a(pool.p, Opts(Pool::kBlock, 1));
  for (int m = 0; m < 4; ++m) {
    auto cand = Solid(Pool::kSize, Pool::kSize, pool.colour[m]);
    auto res = ResidualWithRho(pool.p, Pool::kBlock, pool.rho[m], m);
    auto rho = a.BlockNcc(cand, res);
    ASSERT_EQ(rho.sizes(), (torch::IntArrayRef{2, 2}));
    for (int r = 0; r < 2; ++r) {
      for (int c = 0; c < 2; ++c) {
        EXPECT_NEAR(rho[r][c].item<double>(), pool.rho[m][r][c], 1e-12);
        EXPECT_NEAR(rho[r][c].item<double>(), DirectRho(res, cand, pool.p, r * 16, c * 16, 16, 16),
                    1e-12);
      }
    }
  }
}

TEST(BlockAssembler, TopOnePicksTheExpectedCandidatePerBlock) {
  Pool pool;
  // The result must not depend on the order the candidates arrive in.
  for (const auto& order :
       std::vector<std::vector<int>>{{0, 1, 2, 3}, {3, 2, 1, 0}, {2, 0, 3, 1}}) {
    BlockAssembler a(pool.p, Opts(Pool::kBlock, 1));
    pool.AddTo(a, order);
    EXPECT_EQ(a.count(), 4);
    auto res = a.Finish();
    ASSERT_EQ(res.image.sizes(), (torch::IntArrayRef{3, 32, 32}));
    EXPECT_EQ(BlockValue(res.image, 16, 0, 0), 51);   // B
    EXPECT_EQ(BlockValue(res.image, 16, 0, 1), 131);  // D
    EXPECT_EQ(BlockValue(res.image, 16, 1, 0), 90);   // C
    EXPECT_EQ(BlockValue(res.image, 16, 1, 1), 10);   // A
    EXPECT_TRUE(torch::equal(res.kept, torch::ones({2, 2}, torch::kInt64)));
    EXPECT_NEAR(res.mean_rho[0][0].item<double>(), -0.05, 1e-12);
    EXPECT_NEAR(res.mean_rho[0][1].item<double>(), -0.20, 1e-12);
    EXPECT_NEAR(res.mean_rho[1][0].item<double>(), -0.90, 1e-12);
    EXPECT_NEAR(res.mean_rho[1][1].item<double>(), -0.60, 1e-12);
  }
}

TEST(AssemblyKey, ByAbsOrdersByMagnitudeWhateverTheSign) {
  EXPECT_LT(AssemblyKey(0.05, true), AssemblyKey(-0.2, true));
  EXPECT_LT(AssemblyKey(-0.01, true), AssemblyKey(0.05, true));
  EXPECT_EQ(AssemblyKey(-0.3, true), AssemblyKey(0.3, true));  // ties go to the iteration
  EXPECT_LT(AssemblyKey(-1.0, true), AssemblyKey(kNaN, true));
  EXPECT_EQ(AssemblyKey(kNaN, true), std::numeric_limits<double>::infinity());
}

TEST(BlockAssembler, OrderByAbsPicksTheSmallestMagnitudePerBlock) {
  Pool pool;
  AssemblyOptions o = Opts(Pool::kBlock, 1);
  o.order_by_abs = true;
  for (const auto& order : std::vector<std::vector<int>>{{0, 1, 2, 3}, {3, 1, 0, 2}}) {
    BlockAssembler a(pool.p, o);
    pool.AddTo(a, order);
    auto res = a.Finish();
    // Every winner differs from the paper's order (TopOnePicksTheExpectedCandidatePerBlock).
    EXPECT_EQ(BlockValue(res.image, 16, 0, 0), 90);   // C, +0.02 (paper: B, −0.05)
    EXPECT_EQ(BlockValue(res.image, 16, 0, 1), 10);   // A, +0.10 (paper: D, −0.20)
    EXPECT_EQ(BlockValue(res.image, 16, 1, 0), 131);  // D, +0.01 (paper: C, −0.90)
    EXPECT_EQ(BlockValue(res.image, 16, 1, 1), 51);   // B, +0.25 (paper: A, −0.60)
    EXPECT_NEAR(res.mean_rho[1][0].item<double>(), 0.01, 1e-12);
  }
}

TEST(BlockAssembler, TopTwoAveragesTheTwoBestAndRoundsHalfUp) {
  Pool pool;
  BlockAssembler a(pool.p, Opts(Pool::kBlock, 2));
  pool.AddTo(a, {1, 3, 0, 2});
  auto res = a.Finish();
  EXPECT_EQ(BlockValue(res.image, 16, 0, 0), 31);   // (B 51 + A 10)/2 = 30.5
  EXPECT_EQ(BlockValue(res.image, 16, 0, 1), 91);   // (D 131 + B 51)/2
  EXPECT_EQ(BlockValue(res.image, 16, 1, 0), 111);  // (C 90 + D 131)/2 = 110.5
  EXPECT_EQ(BlockValue(res.image, 16, 1, 1), 71);   // (A 10 + D 131)/2 = 70.5
  EXPECT_TRUE(torch::equal(res.kept, torch::full({2, 2}, 2, torch::kInt64)));
  EXPECT_NEAR(res.mean_rho[0][0].item<double>(), (-0.05 - 0.30) / 2, 1e-12);
  EXPECT_NEAR(res.mean_rho[1][0].item<double>(), (-0.90 + 0.01) / 2, 1e-12);
}

TEST(BlockAssembler, AveragesFewerThanLWhenThePoolIsSmaller) {
  Pool pool;
  BlockAssembler a(pool.p, Opts(Pool::kBlock, 10));
  pool.AddTo(a, {0, 1, 2});
  auto res = a.Finish();
  EXPECT_TRUE(torch::equal(res.kept, torch::full({2, 2}, 3, torch::kInt64)));
  EXPECT_EQ(BlockValue(res.image, 16, 0, 0), 50);  // (10 + 51 + 90)/3 = 50.33
}

TEST(BlockAssembler, TiesGoToTheEarlierIteration) {
  const int64_t n = 32, bs = 16;
  auto p = Pattern(n, n);
  const Grid same = {{-0.1, 0.3}, {kNaN, 0.0}};  // equal ρ (and equal NaN) in every block
  auto res = ResidualWithRho(p, bs, same);
  // Added out of iteration order: 30 (colour 128), 10 (colour 16), 20 (colour 64). Powers of
  // two scale G exactly, so the three ρ are bit-identical.
  for (int64_t top : {1, 2}) {
    BlockAssembler a(p, Opts(bs, top));
    a.AddWithResidual(Solid(n, n, 128), res, 30);
    a.AddWithResidual(Solid(n, n, 16), res, 10);
    a.AddWithResidual(Solid(n, n, 64), res, 20);
    auto out = a.Finish();
    for (int r = 0; r < 2; ++r) {
      for (int c = 0; c < 2; ++c) EXPECT_EQ(BlockValue(out.image, bs, r, c), top == 1 ? 16 : 40);
    }
  }
}

TEST(BlockAssembler, UndefinedRhoGoesLastButIsUsedWhenAlone) {
  const int64_t n = 32, bs = 16;
  auto p = Pattern(n, n);
  // X: zero residual in block (0,0) → undefined there; Y: the worst defined ρ there.
  auto rx = ResidualWithRho(p, bs, {{kNaN, 0.9}, {0.9, 0.9}});
  auto ry = ResidualWithRho(p, bs, {{0.99, -0.1}, {-0.1, -0.1}});
  {
    BlockAssembler a(p, Opts(bs, 1));
    a.AddWithResidual(Solid(n, n, 7), rx, 1);  // earlier iteration: would win a tie
    a.AddWithResidual(Solid(n, n, 99), ry, 2);
    auto out = a.Finish();
    EXPECT_EQ(BlockValue(out.image, bs, 0, 0), 99);
    EXPECT_NEAR(out.mean_rho[0][0].item<double>(), 0.99, 1e-12);
  }
  {
    // Alone, the undefined block is still assembled; its mean ρ is undefined.
    BlockAssembler a(p, Opts(bs, 3));
    a.AddWithResidual(Solid(n, n, 7), rx, 1);
    auto out = a.Finish();
    EXPECT_TRUE(torch::equal(out.image, Solid(n, n, 7)));
    EXPECT_EQ(out.kept[0][0].item<int64_t>(), 1);
    EXPECT_TRUE(std::isnan(out.mean_rho[0][0].item<double>()));
    EXPECT_NEAR(out.mean_rho[0][1].item<double>(), 0.9, 1e-12);
    // With a defined one beside it, both are averaged and the mean ρ skips the undefined one.
    a.AddWithResidual(Solid(n, n, 99), ry, 2);
    out = a.Finish();
    EXPECT_EQ(BlockValue(out.image, bs, 0, 0), 53);
    EXPECT_EQ(out.kept[0][0].item<int64_t>(), 2);
    EXPECT_NEAR(out.mean_rho[0][0].item<double>(), 0.99, 1e-12);
  }
  // A black candidate has G·P = 0: undefined in every block, and ranked after everything.
  BlockAssembler a(p, Opts(bs, 1));
  a.AddWithResidual(Solid(n, n, 0), ry, 0);
  a.AddWithResidual(Solid(n, n, 99), rx, 5);
  EXPECT_TRUE(torch::isnan(a.BlockNcc(Solid(n, n, 0), ry)).all().item<bool>());
  auto out = a.Finish();
  EXPECT_EQ(BlockValue(out.image, bs, 0, 0), 0);  // both undefined there: earlier iteration
  EXPECT_EQ(BlockValue(out.image, bs, 1, 1), 99);
}

TEST(BlockAssembler, PartialEdgeBlocksAreHandledLikeTheOthers) {
  const int64_t n = 40, bs = 16;  // 3×3 blocks, the last row and column 8 wide
  auto p = Pattern(n, n, 3);
  // Block NCC of a noisy candidate equals the direct loop on every block, edges included.
  torch::manual_seed(11);
  auto noisy = torch::randint(0, 256, {3, n, n}).to(torch::kFloat32);
  auto wnoise = torch::randn({n, n});
  BlockAssembler a(p, Opts(bs, 1));
  auto rho = a.BlockNcc(noisy, wnoise);
  ASSERT_EQ(rho.sizes(), (torch::IntArrayRef{3, 3}));
  EXPECT_EQ(a.block_rows(), 3);
  EXPECT_EQ(a.block_cols(), 3);
  for (int64_t r = 0; r < 3; ++r) {
    for (int64_t c = 0; c < 3; ++c) {
      const int64_t bh = r == 2 ? 8 : 16, bw = c == 2 ? 8 : 16;
      EXPECT_NEAR(rho[r][c].item<double>(), DirectRho(wnoise, noisy, p, r * 16, c * 16, bh, bw),
                  1e-9)
          << r << "," << c;
    }
  }
  // Selection on the edge blocks: U wins the last column, V the rest.
  const Grid gu = {{0.5, 0.5, -0.1}, {0.5, 0.5, -0.1}, {0.5, 0.5, -0.1}};
  const Grid gv = {{-0.2, -0.2, 0.4}, {-0.2, -0.2, 0.4}, {-0.2, -0.2, kNaN}};
  a.AddWithResidual(Solid(n, n, 33), ResidualWithRho(p, bs, gu, 1), 1);
  a.AddWithResidual(Solid(n, n, 177), ResidualWithRho(p, bs, gv, 2), 2);
  auto out = a.Finish().image;
  for (int64_t r = 0; r < 3; ++r) {
    for (int64_t c = 0; c < 3; ++c) EXPECT_EQ(BlockValue(out, bs, r, c), c == 2 ? 33 : 177);
  }
  // Non-square, B between H and W: one row of blocks, 16 + 8 wide.
  auto p2 = Pattern(12, 24, 4);
  BlockAssembler b(p2, Opts(16, 1));
  EXPECT_EQ(b.block_rows(), 1);
  EXPECT_EQ(b.block_cols(), 2);
  b.AddWithResidual(Solid(12, 24, 5), ResidualWithRho(p2, 16, {{-0.1, 0.2}}), 1);
  b.AddWithResidual(Solid(12, 24, 250), ResidualWithRho(p2, 16, {{0.1, -0.3}}), 2);
  auto out2 = b.Finish().image;
  EXPECT_EQ(BlockValue(out2, 16, 0, 0), 5);
  EXPECT_EQ(BlockValue(out2, 16, 0, 1), 250);
}

TEST(BlockAssembler, FullImageTopOneIsTheBestWholeImageNcc) {
  const int64_t n = 64;
  auto p = Pattern(n, n, 5);
  torch::manual_seed(21);
  BlockAssembler a(p, Opts(n, 1));
  double best_key = std::numeric_limits<double>::infinity();
  torch::Tensor best;
  for (int64_t m = 0; m < 6; ++m) {
    // Candidates carrying ±P so that ρ spans both signs; the smallest |ρ| is positive here
    // (≈ +0.03 vs ≈ −0.07), so the sign rule, not |ρ|, decides.
    auto cand = (torch::rand({3, n, n}) * 200 + 20 + (m - 2.8) * 4 * p.to(torch::kFloat32))
                    .round()
                    .clamp(0, 255);
    a.Add(cand, m);
    auto w = Residual(cand);
    const double key = AssemblyKey(Ncc(w, ToGray(cand), p).item<double>());
    if (key < best_key) {
      best_key = key;
      best = cand;
    }
  }
  auto out = a.Finish();
  EXPECT_LT(out.mean_rho.item<double>(), 0);
  EXPECT_EQ(out.kept.sizes(), (torch::IntArrayRef{1, 1}));
  EXPECT_TRUE(torch::equal(out.image, best));
}

TEST(BlockAssembler, HoldsAtMostLEntriesPerBlock) {
  const int64_t n = 32, bs = 16;
  auto p = Pattern(n, n);
  BlockAssembler a(p, Opts(bs, 3));
  EXPECT_EQ(a.stored_entries(), 0);
  torch::manual_seed(31);
  for (int64_t m = 0; m < 50; ++m) {
    a.AddWithResidual(Solid(n, n, m * 5), torch::randn({n, n}), m);
    EXPECT_LE(a.stored_entries(), 3 * 4);
  }
  EXPECT_EQ(a.count(), 50);
  EXPECT_EQ(a.stored_entries(), 3 * 4);
  EXPECT_TRUE(torch::equal(a.Finish().kept, torch::full({2, 2}, 3, torch::kInt64)));
}

// A checkpoint's round trip: an assembler restored half-way from another's state, then fed the
// same remaining candidates, ends with the same image, counts and ρ as one never interrupted.
TEST(BlockAssembler, StateRoundTripContinuesIdentically) {
  const int64_t h = 40, w = 56, bs = 16;  // partial edge blocks on both sides
  auto p = Pattern(h, w);
  torch::manual_seed(41);
  std::vector<torch::Tensor> cands, residuals;
  for (int64_t m = 0; m < 12; ++m) {
    cands.push_back(torch::randint(0, 256, {3, h, w}).to(torch::kFloat32));
    residuals.push_back(torch::randn({h, w}));
  }
  BlockAssembler whole(p, Opts(bs, 3)), first(p, Opts(bs, 3)), resumed(p, Opts(bs, 3));
  for (int64_t m = 0; m < 12; ++m) whole.AddWithResidual(cands[m], residuals[m], m + 1);
  for (int64_t m = 0; m < 5; ++m) first.AddWithResidual(cands[m], residuals[m], m + 1);
  resumed.SetState(first.GetState());
  EXPECT_EQ(resumed.count(), 5);
  EXPECT_EQ(resumed.stored_entries(), first.stored_entries());
  for (int64_t m = 5; m < 12; ++m) resumed.AddWithResidual(cands[m], residuals[m], m + 1);
  const auto a = whole.Finish(), b = resumed.Finish();
  EXPECT_TRUE(torch::equal(a.image, b.image));
  EXPECT_TRUE(torch::equal(a.kept, b.kept));
  EXPECT_TRUE(torch::allclose(a.mean_rho, b.mean_rho, 0, 0, /*equal_nan=*/true));
  // Another size or L is refused, not half-restored.
  BlockAssembler other(p, Opts(bs, 2));
  EXPECT_THROW(other.SetState(first.GetState()), std::invalid_argument);
  // Before any candidate: no pixel slots yet, and the state still round-trips.
  BlockAssembler empty(p, Opts(bs, 3)), empty2(p, Opts(bs, 3));
  empty2.SetState(empty.GetState());
  EXPECT_EQ(empty2.count(), 0);
}

TEST(AssemblyOptions, CheckRejectsBadValues) {
  auto expect_throw = [](AssemblyOptions o, const char* name) {
    try {
      o.Check(32, 24);
      ADD_FAILURE() << "no exception for " << name;
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
    }
  };
  expect_throw(Opts(0, 10), "block_size");
  expect_throw(Opts(33, 10), "block_size");
  expect_throw(Opts(16, 0), "top");
  EXPECT_NO_THROW(Opts(32, 1).Check(32, 24));
  EXPECT_THROW((void)BlockAssembler(Pattern(8, 8), Opts(9, 1)), std::invalid_argument);
  EXPECT_THROW((void)BlockAssembler(torch::zeros({3, 8, 8}), Opts(4, 1)), std::invalid_argument);
}

TEST(BlockAssembler, RejectsMisuse) {
  BlockAssembler a(Pattern(8, 8), Opts(4, 2));
  EXPECT_THROW(a.Finish(), std::logic_error);
  EXPECT_THROW(a.AddWithResidual(Solid(8, 9, 1), torch::zeros({8, 9}), 0), std::invalid_argument);
  EXPECT_THROW(a.AddWithResidual(Solid(8, 8, 1), torch::zeros({8, 9}), 0), std::invalid_argument);
}

// DipOptions::select_residual's pattern: each term scaled to unit (population) standard
// deviation, then summed with weight w, computed here element by element.
TEST(SelectionPattern, SumsUnitScaledPatternAndResidual) {
  const auto p = torch::tensor({1.0, -1.0, 3.0, -3.0}).reshape({2, 2});  // σ = √5
  const auto r = torch::tensor({2.0, 2.0, -2.0, -2.0}).reshape({2, 2});  // σ = 2
  const auto s = SelectionPattern(p, r, 0.5);
  ASSERT_EQ(s.sizes(), p.sizes());
  EXPECT_EQ(s.scalar_type(), torch::kFloat32);
  const double pv[] = {1, -1, 3, -3}, rv[] = {2, 2, -2, -2};
  for (int64_t k = 0; k < 4; ++k) {
    const double want = pv[k] / std::sqrt(5.0) + 0.5 * rv[k] / 2.0;
    EXPECT_NEAR(s.flatten()[k].item<double>(), want, 1e-6) << k;
  }
  // Scale-free in each input: a fingerprint ×10 or a residual ×0.1 ranks alike.
  EXPECT_TRUE(torch::allclose(SelectionPattern(p * 10, r * 0.1, 0.5), s, 1e-5, 1e-6));
  EXPECT_THROW(SelectionPattern(torch::ones({2, 2}), r, 1), std::invalid_argument);
  EXPECT_THROW(SelectionPattern(p, torch::zeros({2, 2}), 1), std::invalid_argument);
  EXPECT_THROW(SelectionPattern(p, torch::zeros({2, 3}), 1), std::invalid_argument);
}

}  // namespace
}  // namespace dippas
