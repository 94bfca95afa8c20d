// Dataset evaluation: summaries against values worked out by hand, tree/manifest discovery
// on temporary folders, history parsing, JPEG round trip and edge mask.
#include "dippas/eval/dataset.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>

namespace dippas {
namespace {

namespace fs = std::filesystem;

constexpr double kInf = std::numeric_limits<double>::infinity();

PairScore Row(const std::string& image, const std::string& device, const std::string& fp,
              double ncc, double pce, std::optional<double> psnr = std::nullopt) {
  return {image, device, fp, ncc, pce, psnr};
}

// Two devices A (images a1, a2) and B (image b1), every image against both fingerprints.
std::vector<PairScore> TwoDevices() {
  return {Row("a1", "A", "A", 0.9, 50, 40), Row("a1", "A", "B", 0.1, 5, 40),
          Row("a2", "A", "A", 0.4, 10, 44), Row("a2", "A", "B", 0.6, 20, 44),
          Row("b1", "B", "A", 0.5, 30, 38), Row("b1", "B", "B", 0.7, 70, 38)};
}

TEST(Summarize, PooledByHand) {
  const auto s = Summarize(TwoDevices()).pooled;
  // NCC positives {0.9, 0.4, 0.7}, negatives {0.1, 0.6, 0.5}: 0.9 and 0.7 beat all three,
  // 0.4 beats only 0.1 → 7/9. PCE positives {50, 10, 70}, negatives {5, 20, 30}: also 7/9.
  EXPECT_DOUBLE_EQ(*s.auc_ncc, 7.0 / 9);
  EXPECT_DOUBLE_EQ(*s.auc_pce, 7.0 / 9);
  // Thresholds 0.9 and 0.7 have FPR 0 (TPR 2/3); 0.6 already has FPR 1/3.
  EXPECT_DOUBLE_EQ(*s.tpr_ncc, 2.0 / 3);
  EXPECT_DOUBLE_EQ(*s.tpr_pce, 2.0 / 3);
  // One PSNR per image: {40, 44, 38}.
  EXPECT_DOUBLE_EQ(*s.psnr_mean, 122.0 / 3);
  EXPECT_DOUBLE_EQ(*s.psnr_median, 40.0);
  EXPECT_DOUBLE_EQ(*s.c_metric, 122.0 / 3 * (1 - 2 * (7.0 / 9 - 0.5)));
  EXPECT_EQ(s.n_images, 3);
  EXPECT_EQ(s.n_positives, 3);
  EXPECT_EQ(s.n_negatives, 3);
}

TEST(Summarize, PerDeviceByHand) {
  const auto d = Summarize(TwoDevices()).per_device;
  ASSERT_EQ(d.size(), 2u);
  // Fingerprint A: positives {0.9, 0.4}, negative {0.5} → 1/2; TPR at FPR 0: 1/2 (threshold 0.9).
  const auto& a = d.at("A");
  EXPECT_DOUBLE_EQ(*a.auc_ncc, 0.5);
  EXPECT_DOUBLE_EQ(*a.auc_pce, 0.5);  // {50, 10} vs {30}
  EXPECT_DOUBLE_EQ(*a.tpr_ncc, 0.5);
  EXPECT_DOUBLE_EQ(*a.psnr_mean, 42);
  EXPECT_DOUBLE_EQ(*a.psnr_median, 42);
  EXPECT_DOUBLE_EQ(*a.c_metric, 42);  // AUC 0.5: perfect anonymization
  EXPECT_EQ(a.n_images, 2);
  // Fingerprint B: positive {0.7}, negatives {0.1, 0.6} → 1, C = 0.
  const auto& b = d.at("B");
  EXPECT_DOUBLE_EQ(*b.auc_ncc, 1.0);
  EXPECT_DOUBLE_EQ(*b.tpr_ncc, 1.0);
  EXPECT_DOUBLE_EQ(*b.c_metric, 0.0);
  EXPECT_EQ(b.n_images, 1);
  EXPECT_EQ(b.n_positives, 1);
  EXPECT_EQ(b.n_negatives, 2);
}

TEST(Summarize, TiesAndAllEqual) {
  // Every NCC 0.3: AUC ½, and no threshold separates anything at FPR 0.
  std::vector<PairScore> s = {Row("a1", "A", "A", 0.3, 1, 40), Row("a1", "A", "B", 0.3, 1, 40),
                              Row("b1", "B", "A", 0.3, 1, 42), Row("b1", "B", "B", 0.3, 1, 42)};
  auto p = Summarize(s).pooled;
  EXPECT_DOUBLE_EQ(*p.auc_ncc, 0.5);
  EXPECT_DOUBLE_EQ(*p.tpr_ncc, 0.0);
  EXPECT_DOUBLE_EQ(*p.c_metric, 41.0);
  // One tie: positives {0.3, 0.5}, negatives {0.3, 0.1} → (½ + 1 + 1 + 1)/4.
  s[3].ncc = 0.5;
  s[1].ncc = 0.1;
  p = Summarize(s).pooled;
  EXPECT_DOUBLE_EQ(*p.auc_ncc, 3.5 / 4);
}

TEST(Summarize, OneDeviceHasNoNegatives) {
  const std::vector<PairScore> s = {Row("a1", "A", "A", 0.9, 50, 40),
                                    Row("a2", "A", "A", 0.2, 3, 41)};
  const auto d = Summarize(s);
  EXPECT_FALSE(d.pooled.auc_ncc.has_value());
  EXPECT_FALSE(d.pooled.auc_pce.has_value());
  EXPECT_FALSE(d.pooled.tpr_ncc.has_value());
  EXPECT_FALSE(d.pooled.c_metric.has_value());  // C needs an AUC
  EXPECT_DOUBLE_EQ(*d.pooled.psnr_mean, 40.5);
  EXPECT_EQ(d.pooled.n_negatives, 0);
  ASSERT_EQ(d.per_device.size(), 1u);
  EXPECT_FALSE(d.per_device.at("A").auc_ncc.has_value());
}

TEST(Summarize, PsnrNullAndInfinite) {
  // Originals: no PSNR at all → mean, median and C undefined.
  auto s = TwoDevices();
  for (auto& r : s) r.psnr = std::nullopt;
  auto p = Summarize(s).pooled;
  EXPECT_FALSE(p.psnr_mean.has_value());
  EXPECT_FALSE(p.psnr_median.has_value());
  EXPECT_FALSE(p.c_metric.has_value());
  EXPECT_TRUE(p.auc_ncc.has_value());
  // An unchanged image (infinite PSNR) is counted and left out of the mean: {40, 38}.
  s = TwoDevices();
  s[2].psnr = s[3].psnr = kInf;
  p = Summarize(s).pooled;
  EXPECT_EQ(p.n_unchanged, 1);
  EXPECT_DOUBLE_EQ(*p.psnr_mean, 39);
  EXPECT_DOUBLE_EQ(*p.psnr_median, 39);
  // All unchanged: undefined, not infinite.
  for (auto& r : s) r.psnr = kInf;
  p = Summarize(s).pooled;
  EXPECT_EQ(p.n_unchanged, 3);
  EXPECT_FALSE(p.psnr_mean.has_value());
  EXPECT_FALSE(p.c_metric.has_value());
}

TEST(Summarize, UndefinedNccIgnored) {
  auto s = TwoDevices();
  s[2].ncc = NAN;  // a2 vs A: the positive 0.4 drops out → positives {0.9, 0.7}: AUC 1
  const auto p = Summarize(s).pooled;
  EXPECT_DOUBLE_EQ(*p.auc_ncc, 1.0);
  EXPECT_DOUBLE_EQ(*p.auc_pce, 7.0 / 9);  // PCE unaffected
}

TEST(SplitScores, PooledAndPerFingerprint) {
  const auto s = TwoDevices();
  auto r = SplitScores(s, std::nullopt);
  EXPECT_EQ(r.pos_ncc, (std::vector<double>{0.9, 0.4, 0.7}));
  EXPECT_EQ(r.neg_ncc, (std::vector<double>{0.1, 0.6, 0.5}));
  r = SplitScores(s, std::string("B"));
  EXPECT_EQ(r.pos_pce, (std::vector<double>{70}));
  EXPECT_EQ(r.neg_pce, (std::vector<double>{5, 20}));
}

// A temporary folder removed at the end of the test.
class TempDir : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            ("dippas_dataset_test_" + std::to_string(std::random_device{}()));
    fs::create_directories(root_);
  }
  void TearDown() override { fs::remove_all(root_); }
  std::string Touch(const std::string& rel, const std::string& text = "x") {
    const fs::path p = root_ / rel;
    fs::create_directories(p.parent_path());
    std::ofstream(p) << text;
    return p.string();
  }
  std::string P(const std::string& rel) const { return (root_ / rel).string(); }
  fs::path root_;
};

using Trees = TempDir;

TEST_F(Trees, ScanMatchesByRelativePathAndStem) {
  Touch("orig/CamA/a1.png");
  Touch("orig/CamA/sub/a2.jpg");
  Touch("orig/CamB/b1.png");
  Touch("orig/CamB/notes.txt");  // not an image
  Touch("orig/loose.png");       // not in a device folder
  fs::create_directories(P("orig/Empty"));
  Touch("fps/CamA.npy");
  Touch("fps/CamB.npy");
  Touch("anon/CamA/a1.anon.png");
  Touch("anon/CamA/a1.png");      // .anon is preferred
  Touch("anon/CamA/sub/a2.png");  // any image extension
  Touch("anon/CamB/b1.tif");
  const auto ds = ScanTrees(P("orig"), P("fps"), P("anon"), false);
  ASSERT_EQ(ds.items.size(), 3u);
  EXPECT_EQ(ds.items[0].original, P("orig/CamA/a1.png"));
  EXPECT_EQ(ds.items[0].anonymized, P("anon/CamA/a1.anon.png"));
  EXPECT_EQ(ds.items[1].anonymized, P("anon/CamA/sub/a2.png"));
  EXPECT_EQ(ds.items[2].device, "CamB");
  EXPECT_EQ(ds.items[2].anonymized, P("anon/CamB/b1.tif"));
  EXPECT_EQ(ds.fingerprints.size(), 2u);  // the empty folder needs none
  EXPECT_EQ(ds.fingerprints.at("CamB"), P("fps/CamB.npy"));
  // Without --anonymized: originals only.
  EXPECT_TRUE(ScanTrees(P("orig"), P("fps"), "", false).items[0].anonymized.empty());
}

TEST_F(Trees, MissingFilesAreNamed) {
  Touch("orig/CamA/a1.png");
  Touch("orig/CamA/a2.png");
  Touch("fps/CamA.npy");
  Touch("anon/CamA/a1.anon.png");
  try {
    ScanTrees(P("orig"), P("fps"), P("anon"), false);
    FAIL() << "no error for a missing anonymized file";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(P("orig/CamA/a2.png")), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(P("anon/CamA/a2.anon.<ext>")), std::string::npos)
        << e.what();
  }
  const auto ds = ScanTrees(P("orig"), P("fps"), P("anon"), true);
  EXPECT_EQ(ds.items.size(), 1u);
  EXPECT_EQ(ds.missing, std::vector<std::string>{P("orig/CamA/a2.png")});
  Touch("orig/CamB/b1.png");
  try {
    ScanTrees(P("orig"), P("fps"), "", false);
    FAIL() << "no error for a missing fingerprint";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(P("fps/CamB.npy")), std::string::npos) << e.what();
  }
  EXPECT_THROW(ScanTrees(P("nope"), P("fps"), "", false), std::runtime_error);
}

TEST_F(Trees, AmbiguousAnonymized) {
  Touch("anon/x.png");
  Touch("anon/x.jpg");
  EXPECT_THROW(FindAnonymized(P("anon"), "x"), std::runtime_error);
  EXPECT_EQ(FindAnonymized(P("anon"), "y"), "");
  EXPECT_EQ(FindAnonymized(P("absent"), "x"), "");
}

using Manifest = TempDir;

TEST_F(Manifest, ColumnsPathsAndQuotes) {
  Touch("img/a 1.png");
  Touch("img/b,1.png");
  Touch("anon/a1.png");
  Touch("anon/b1.png");
  Touch("K/A.npy");
  Touch("fps/B.npy");
  const std::string csv = Touch("m.csv",
                                "device,image,fingerprint,anonymized\r\n"
                                "A,img/a 1.png,K/A.npy,anon/a1.png\r\n"
                                "\r\n"
                                "B,\"img/b,1.png\",,anon/b1.png\r\n");
  const auto ds = ReadManifest(csv, P("fps"), false);
  ASSERT_EQ(ds.items.size(), 2u);
  EXPECT_EQ(ds.items[0].original, P("img/a 1.png"));
  EXPECT_EQ(ds.items[1].original, P("img/b,1.png"));
  EXPECT_EQ(ds.items[1].anonymized, P("anon/b1.png"));
  EXPECT_EQ(ds.fingerprints.at("A"), P("K/A.npy"));
  EXPECT_EQ(ds.fingerprints.at("B"), P("fps/B.npy"));  // empty cell: the --fingerprints folder
  EXPECT_THROW(ReadManifest(csv, "", false), std::runtime_error);  // and without it, an error
}

TEST_F(Manifest, Errors) {
  Touch("a.png");
  Touch("A.npy");
  Touch("A2.npy");
  EXPECT_THROW(ReadManifest(Touch("m1.csv", "image,device\na.png,A\n"), "", false),
               std::runtime_error);
  EXPECT_THROW(
      ReadManifest(Touch("m2.csv", "image,device,fingerprint\nnope.png,A,A.npy\n"), "", false),
      std::runtime_error);
  EXPECT_THROW(
      ReadManifest(Touch("m3.csv", "image,device,fingerprint\na.png,A,A.npy\na.png,A,A2.npy\n"), "",
                   false),
      std::runtime_error);
  EXPECT_THROW(
      ReadManifest(Touch("m4.csv", "image,device,fingerprint\n\"a.png,A,A.npy\n"), "", false),
      std::runtime_error);
  const std::string m5 = Touch("m5.csv", "image,device,fingerprint,anonymized\na.png,A,A.npy,\n");
  try {
    ReadManifest(m5, "", false);
    FAIL() << "no error for a missing anonymized cell";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("m5.csv line 2"), std::string::npos) << e.what();
  }
  EXPECT_THROW(ReadManifest(m5, "", true), std::runtime_error);  // skipped, then nothing is left
}

using History = TempDir;

TEST_F(History, ReadsAnonymizeHistory) {
  const auto h = ReadHistory(Touch("h.csv",
                                   "iteration,loss,psnr,gamma,admitted,ncc\n"
                                   "1,0.5,12.5,0.01,0,\n"
                                   "2,0.25,38.5,0.01,1,-0.002\n"));
  ASSERT_EQ(h.size(), 2u);
  EXPECT_EQ(h[0].iteration, 1);
  EXPECT_DOUBLE_EQ(h[0].psnr, 12.5);
  EXPECT_FALSE(h[0].ncc.has_value());
  EXPECT_DOUBLE_EQ(*h[1].ncc, -0.002);
  EXPECT_THROW(ReadHistory(Touch("bad1.csv", "a,b\n1,2\n")), std::runtime_error);
  EXPECT_THROW(ReadHistory(Touch("bad2.csv", "iteration,psnr\n1,x\n")), std::runtime_error);
  EXPECT_THROW(ReadHistory(Touch("bad3.csv", "iteration,psnr\n")), std::runtime_error);
}

Image Ramp(int64_t h, int64_t w, int64_t c) {
  Image im;
  im.height = h, im.width = w, im.channels = c;
  for (int64_t y = 0; y < h; ++y) {
    for (int64_t x = 0; x < w; ++x) {
      for (int64_t k = 0; k < c; ++k)
        im.data.push_back(static_cast<float>((4 * x + 2 * y + 40 * k) % 256));
    }
  }
  return im;
}

TEST(JpegRoundTrip, ChangesPixelsKeepsShape) {
  for (int64_t c : {1, 3}) {
    const Image in = Ramp(32, 48, c);
    const Image lo = JpegRoundTrip(in, 10), hi = JpegRoundTrip(in, 100);
    ASSERT_EQ(lo.height, 32);
    ASSERT_EQ(lo.width, 48);
    ASSERT_EQ(lo.channels, c);
    ASSERT_EQ(lo.data.size(), in.data.size());
    double err_lo = 0, err_hi = 0;
    for (size_t i = 0; i < in.data.size(); ++i) {
      err_lo += std::fabs(lo.data[i] - in.data[i]);
      err_hi += std::fabs(hi.data[i] - in.data[i]);
    }
    EXPECT_GT(err_lo, 0);
    EXPECT_LT(err_hi, err_lo);  // quality 100 is closer than quality 10
  }
  EXPECT_THROW(JpegRoundTrip(Ramp(8, 8, 3), 0), std::invalid_argument);
}

TEST(EdgeMask, StepEdgeAndFlat) {
  Image im;
  im.height = 16, im.width = 16, im.channels = 1;
  for (int64_t y = 0; y < 16; ++y) {
    for (int64_t x = 0; x < 16; ++x) im.data.push_back(x < 8 ? 20.0f : 220.0f);
  }
  const auto m0 = EdgeMask(im, 50, 150, 0), m1 = EdgeMask(im, 50, 150, 1);
  int64_t n0 = 0, n1 = 0;
  for (int64_t y = 0; y < 16; ++y) {
    for (int64_t x = 0; x < 16; ++x) {
      n0 += m0[y * 16 + x];
      n1 += m1[y * 16 + x];
      if (m0[y * 16 + x]) {
        EXPECT_TRUE(x == 7 || x == 8) << x;  // on the step
      }
      if (m1[y * 16 + x]) {
        EXPECT_TRUE(x >= 6 && x <= 9) << x;  // one pixel wider
      }
    }
  }
  EXPECT_GE(n0, 16);  // the whole step is an edge
  EXPECT_GT(n1, n0);
  im.data.assign(256, 100.0f);
  for (uint8_t v : EdgeMask(im, 50, 150, 1)) EXPECT_EQ(v, 0);
}

}  // namespace
}  // namespace dippas
