// The db4 transform against PyWavelets' worked examples (pywt_db4_examples.json).
#include <fstream>
#include <nlohmann/json.hpp>

#include "dippas/prnu/wavelet.h"
#include "test_util.h"

namespace dippas {
namespace {

torch::Tensor FromJson(const nlohmann::json& j) {
  if (!j.is_array() || !j[0].is_array()) {
    std::vector<double> v = j.get<std::vector<double>>();
    return torch::tensor(v, torch::kFloat64);
  }
  std::vector<torch::Tensor> rows;
  for (const auto& r : j) rows.push_back(FromJson(r));
  return torch::stack(rows);
}

nlohmann::json LoadExamples() {
  std::ifstream in(test::ReferenceDir() + "/pywt_db4_examples.json");
  return nlohmann::json::parse(in);
}

TEST(Wavelet, Dwt1dMatchesPyWavelets) {
  DIPPAS_REQUIRE_SHARED();
  auto ex = LoadExamples()["dwt_1d"];
  auto x = FromJson(ex["x"]);
  auto [ca, cd] = Dwt1d(x);
  EXPECT_REL_CLOSE(ca, FromJson(ex["cA"]), 1e-12);
  EXPECT_REL_CLOSE(cd, FromJson(ex["cD"]), 1e-12);
  EXPECT_REL_CLOSE(Idwt1d(ca, cd), FromJson(ex["idwt"]), 1e-12);
}

TEST(Wavelet, Wavedec2MatchesPyWavelets) {
  DIPPAS_REQUIRE_SHARED();
  auto ex = LoadExamples()["wavedec2_level2"];
  auto x = FromJson(ex["input"]);
  auto dec = Wavedec2(x, 2);
  ASSERT_EQ(dec.details.size(), 2u);
  EXPECT_REL_CLOSE(dec.approx, FromJson(ex["cA2"]), 1e-12);
  const char* names[3] = {"cH", "cV", "cD"};
  for (int b = 0; b < 3; ++b) {
    EXPECT_REL_CLOSE(dec.details[0][b], FromJson(ex["level2"][names[b]]), 1e-12) << names[b];
    EXPECT_REL_CLOSE(dec.details[1][b], FromJson(ex["level1"][names[b]]), 1e-12) << names[b];
  }
  auto rec = Waverec2(dec).slice(0, 0, x.size(0)).slice(1, 0, x.size(1));
  EXPECT_REL_CLOSE(rec, FromJson(ex["waverec2_cropped"]), 1e-12);
}

// Independent of the reference: perfect reconstruction on a random batch of
// odd-sized arrays, and the documented band lengths.
TEST(Wavelet, PerfectReconstructionAnySize) {
  torch::manual_seed(1);
  auto x = torch::randn({2, 37, 50}, torch::kFloat64);
  auto dec = Wavedec2(x, 4);
  EXPECT_EQ(dec.details.back()[0].size(-2), (37 + 7) / 2);
  EXPECT_EQ(dec.details.back()[0].size(-1), (50 + 7) / 2);
  auto rec = Waverec2(dec).slice(-2, 0, 37).slice(-1, 0, 50);
  EXPECT_REL_CLOSE(rec, x, 1e-10);
}

TEST(Wavelet, FiltersMatchPyWavelets) {
  DIPPAS_REQUIRE_SHARED();
  auto ex = LoadExamples();
  // The analysis filters are visible through a unit impulse: dwt of δ at the
  // far end of a long signal gives the reversed filter taps.
  auto lo = FromJson(ex["dec_lo"]), hi = FromJson(ex["dec_hi"]);
  auto x = torch::zeros({64}, torch::kFloat64);
  x[31] = 1.0;
  auto [ca, cd] = Dwt1d(x);
  // out[o] = Σ_j f[j]·x[2o+1−j] → with x = δ_31: out[o] = f[2o−30] for 0 ≤ 2o−30 < 8.
  for (int64_t o = 15; o < 19; ++o) {
    EXPECT_NEAR(ca[o].item<double>(), lo[2 * o - 30].item<double>(), 1e-15);
    EXPECT_NEAR(cd[o].item<double>(), hi[2 * o - 30].item<double>(), 1e-15);
  }
}

}  // namespace
}  // namespace dippas
