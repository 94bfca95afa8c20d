// The LibTorch-free detection path of `dippas detect` (prnu/detection_cpu.h, DetectFiles) against
// prnu-python's outputs (../shared/reference/prnu-python) and against the tensor implementation
// (residual.h, detection.h), which is itself held to those references.
#include "dippas/prnu/detection_cpu.h"

#include <torch/torch.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "dippas/io/image.h"
#include "dippas/io/npy.h"
#include "dippas/pipeline/prnu_commands.h"
#include "dippas/prnu/detection.h"
#include "dippas/prnu/residual.h"
#include "test_util.h"

namespace dippas {
namespace {

constexpr double kTol = 1e-4;

std::string Natural(const std::string& name) {
  return test::SharedDir() + "/data/dresden512/natural/" + name + ".png";
}
std::string Ref(const std::string& name) { return test::ReferenceDir() + "/" + name + ".npy"; }

torch::Tensor Chw(const Image& img) {
  return torch::from_blob(const_cast<float*>(img.data.data()),
                          {img.height, img.width, img.channels}, torch::kFloat32)
      .permute({2, 0, 1})
      .clone();
}

// A synthetic image: smooth content plus a fixed pseudo-random pattern, values in 0..255.
Image Synthetic(int64_t h, int64_t w, int64_t c, uint32_t seed) {
  Image im;
  im.height = h, im.width = w, im.channels = c;
  im.data.resize(static_cast<size_t>(h * w * c));
  uint32_t s = seed;
  for (size_t i = 0; i < im.data.size(); ++i) {
    s = s * 1664525u + 1013904223u;
    const double smooth =
        120 + 60 * std::sin(0.05 * static_cast<double>(i % static_cast<size_t>(w)));
    im.data[i] = static_cast<float>(std::round(std::clamp(smooth + (s >> 24) / 16.0, 0.0, 255.0)));
  }
  return im;
}

class DetectionCpuReferenceTest : public ::testing::Test {
 protected:
  void SetUp() override { DIPPAS_REQUIRE_SHARED(); }
};

TEST_F(DetectionCpuReferenceTest, ResidualsMatchPrnuPython) {
  for (const char* name : {"Nikon_D200_0_14902", "Nikon_D200_1_17226", "Nikon_D70_0_19445"}) {
    const auto w = ResidualCpu(ReadImage(Natural(name)), 3.0);
    EXPECT_REL_CLOSE(test::ToTensor(w),
                     test::LoadNpy(Ref(std::string("residual_") + name + "_sigma3")), kTol)
        << name;
  }
  EXPECT_REL_CLOSE(test::ToTensor(ResidualCpu(ReadImage(Natural("Nikon_D200_0_14902")), 5.0)),
                   test::LoadNpy(Ref("residual_Nikon_D200_0_14902_sigma5")), kTol);
  // Closer still to the tensor code: both round to float at the same points, computing in double
  // between them (at most a rare last-bit difference).
  const Image img = ReadImage(Natural("Nikon_D70_0_19445"));
  const double err = test::RelMaxError(test::ToTensor(ResidualCpu(img, 3.0)), Residual(Chw(img)));
  std::printf("max|ResidualCpu - Residual| / max|Residual| = %.3g\n", err);
  EXPECT_LE(err, 1e-6);
  // Odd sizes: the 2×2 sub-lattices differ in size, the DFT is not a power of two.
  const Image odd = ReadImage(test::ReferenceDir() + "/odd_333x401.png");
  ASSERT_EQ(odd.height, 333);
  ASSERT_EQ(odd.width, 401);
  EXPECT_REL_CLOSE(test::ToTensor(ResidualCpu(odd, 3.0)),
                   test::LoadNpy(Ref("residual_odd_333x401_sigma3")), kTol);
}

// NCC of every natural against every fingerprint, against prnu-python's matrix.
TEST_F(DetectionCpuReferenceTest, NccMatrixMatchesPrnuPython) {
  std::ifstream in(test::ReferenceDir() + "/detection.json");
  const auto det = nlohmann::json::parse(in);
  const auto devices = det["devices"].get<std::vector<std::string>>();
  const auto naturals = det["naturals"].get<std::vector<std::string>>();
  std::vector<Array2D> ks;
  for (const auto& d : devices) ks.push_back(ReadNpy(Ref("fingerprint_" + d + "_sigma3")));
  for (size_t j = 0; j < naturals.size(); ++j) {
    const Image img = ReadImage(Natural(naturals[j]));
    const Array2D w = ResidualCpu(img, 3.0), gray = GrayCpu(img);
    for (size_t i = 0; i < devices.size(); ++i) {
      EXPECT_NEAR(NccCpu(w, gray, ks[i]), det["ncc_paper"][i][j].get<double>(), 1e-4)
          << devices[i] << " vs " << naturals[j];
    }
  }
}

// Real photos and fingerprints for the two tests below, from the bundled examples/: a camera's
// photos and a stand-in fingerprint of the same camera (a flat-field's residual, which carries its
// pattern), written as .npy for DetectFiles.
std::string Example(const std::string& path) { return std::string(DIPPAS_SOURCE_DIR) + "/examples/" + path; }

class DetectionCpuExampleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("dippas_detect_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
    for (int i = 0; i < 2; ++i) {
      const Image flat = ReadImage(Example(i == 0 ? "flatfield/Nikon_D70s_1_23220.png"
                                                  : "flatfield/Nikon_D70s_1_23222.png"));
      fingerprints_.push_back((dir_ / ("k" + std::to_string(i) + ".npy")).string());
      WriteNpy(fingerprints_.back(), ResidualCpu(flat, 3.0));
    }
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::filesystem::path dir_;
  std::vector<std::string> fingerprints_;
};

// NCC and PCE on real images equal the tensor implementation's, with and without a peak search.
TEST_F(DetectionCpuExampleTest, PceMatchesTensorCode) {
  const Array2D k = ReadNpy(fingerprints_[0]);
  const auto k_t = test::ToTensor(k);
  for (const char* name : {"natural/Nikon_D70s_1_22824.png", "natural/Nikon_D200_1_17226.png"}) {
    const Image img = ReadImage(Example(name));
    const Array2D w = ResidualCpu(img, 3.0), gray = GrayCpu(img);
    // The tensor side computes its own residual: `dippas anonymize` reports NCC/PCE from it, and
    // `dippas detect` of the written image must say the same (tests/*_test.sh, to 1e-9).
    const auto w_t = Residual(Chw(img)), gray_t = ToGray(Chw(img));
    EXPECT_NEAR(NccCpu(w, gray, k), Ncc(w_t, gray_t, k_t).item<double>(), 1e-12) << name;
    const PceSpectrumCpu spec(w);
    for (int64_t radius : {0, 3}) {
      PceOptions po;
      po.search_radius = radius;
      const auto a = spec.Score(ProductCpu(gray, k), po);
      const auto b = Pce(w_t, gray_t * k_t, po);
      EXPECT_NEAR(a.pce, b.pce, 1e-9 * std::abs(b.pce)) << name << " radius " << radius;
      EXPECT_NEAR(a.peak, b.peak, 1e-9 * std::abs(b.peak)) << name;
      EXPECT_EQ(a.peak_row, b.peak_row) << name;
      EXPECT_EQ(a.peak_col, b.peak_col) << name;
    }
  }
}

// DetectFiles: rows in image order whatever the thread count, equal to the functions above;
// an unreadable image stops the run with its name after the rows of the images before it.
TEST_F(DetectionCpuExampleTest, DetectFilesOrderAndErrors) {
  const std::vector<std::string> files = {
      Example("natural/Nikon_D70s_1_22824.png"), Example("natural/Nikon_D200_1_17226.png"),
      Example("natural/Nikon_D70s_1_22928.png"), Example("natural/Nikon_D70s_0_21853.png"),
      Example("flatfield/Nikon_D70s_1_23224.png")};
  DetectOptions opt;
  opt.fingerprints = fingerprints_;
  std::vector<std::vector<DetectRow>> runs;
  for (int threads : {1, 3}) {
    opt.threads = threads;
    std::vector<DetectRow> seen;
    const auto rows = DetectFiles(files, opt, [&](const DetectRow& r) { seen.push_back(r); });
    ASSERT_EQ(rows.size(), files.size() * 2);
    ASSERT_EQ(seen.size(), rows.size());
    for (size_t i = 0; i < rows.size(); ++i) {
      EXPECT_EQ(rows[i].image, files[i / 2]);
      EXPECT_EQ(rows[i].fingerprint, opt.fingerprints[i % 2]);
      EXPECT_EQ(seen[i].image, rows[i].image);
    }
    runs.push_back(rows);
  }
  const Image img = ReadImage(files[2]);
  const Array2D k = ReadNpy(opt.fingerprints[1]);
  EXPECT_EQ(runs[0][5].ncc, NccCpu(ResidualCpu(img, 3.0), GrayCpu(img), k));
  for (size_t i = 0; i < runs[0].size(); ++i) {
    EXPECT_EQ(runs[0][i].ncc, runs[1][i].ncc);
    EXPECT_EQ(runs[0][i].pce, runs[1][i].pce);
  }

  auto broken = files;
  broken[3] = (dir_ / "no_such_image.png").string();
  for (int threads : {1, 3}) {
    opt.threads = threads;
    std::vector<DetectRow> seen;
    try {
      DetectFiles(broken, opt, [&](const DetectRow& r) { seen.push_back(r); });
      ADD_FAILURE() << "no error for a missing image";
    } catch (const std::exception& e) {
      EXPECT_NE(std::string(e.what()).find("no_such_image.png"), std::string::npos) << e.what();
    }
    EXPECT_EQ(seen.size(), 6u) << threads;  // images 0..2, two fingerprints each
  }
}

// Without the reference data: the plain residual equals the tensor one on synthetic images of
// one and three channels, of even, odd and tiny sizes.
TEST(DetectionCpuTest, ResidualMatchesTensorCode) {
  for (auto [h, w, c] :
       {std::tuple<int64_t, int64_t, int64_t>{64, 48, 3}, {37, 53, 1}, {5, 7, 3}}) {
    const Image img = Synthetic(h, w, c, static_cast<uint32_t>(h * w + c));
    const auto ref = Residual(Chw(img));
    const double err = test::RelMaxError(test::ToTensor(ResidualCpu(img, 3.0)), ref);
    std::printf("%ldx%ldx%ld: max|ResidualCpu - Residual| / max|Residual| = %.3g\n",
                static_cast<long>(h), static_cast<long>(w), static_cast<long>(c), err);
    EXPECT_LE(err, 1e-6) << h << "x" << w << "x" << c;
    const auto gray = GrayCpu(img);
    EXPECT_REL_CLOSE(test::ToTensor(gray), ToGray(Chw(img)), 1e-7) << h << "x" << w << "x" << c;
  }
}

}  // namespace
}  // namespace dippas
