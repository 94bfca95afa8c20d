// Every PRNU stage against prnu-python's outputs on real Dresden images
// (../shared/reference/prnu-python), to max|error| ≤ 1e-4·max|ref| (SPEC §2–4).
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include <ATen/Parallel.h>

#include "dippas/eval/roc.h"
#include "dippas/io/image.h"
#include "dippas/prnu/detection.h"
#include "dippas/prnu/fingerprint.h"
#include "dippas/prnu/residual.h"
#include "test_util.h"

namespace dippas {
namespace {

constexpr double kTol = 1e-4;

torch::Tensor LoadImageChw(const std::string& path) {
  Image img = ReadImage(path);
  return torch::from_blob(img.data.data(), {img.height, img.width, img.channels}, torch::kFloat32)
      .permute({2, 0, 1})
      .clone();
}

std::string Natural(const std::string& name) { return test::SharedDir() + "/data/dresden512/natural/" + name + ".png"; }
std::string Ref(const std::string& name) { return test::ReferenceDir() + "/" + name + ".npy"; }

class ReferenceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    DIPPAS_REQUIRE_SHARED();
    at::set_num_threads(2);
  }
};

TEST_F(ReferenceTest, TraceEveryStage) {
  const auto img = LoadImageChw(Natural("Nikon_D200_0_14902"));
  const std::string t = test::ReferenceDir() + "/trace_Nikon_D200_0_14902_";
  ResidualOptions opt;
  auto w1 = WaveletNoise(img, opt);  // (3,H,W)
  // Stage 1 is stored H×W×3, which our 2-D reader refuses: load its raw bytes.
  {
    std::ifstream in(t + "1_wavelet_noise.npy", std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const size_t n = 512 * 512 * 3;
    ASSERT_GE(bytes.size(), n * 4);
    auto ref = torch::from_blob(bytes.data() + bytes.size() - n * 4, {512, 512, 3}, torch::kFloat32)
                   .permute({2, 0, 1})
                   .clone();
    EXPECT_REL_CLOSE(w1, ref, kTol);
  }
  auto w2 = ToGray(w1);
  EXPECT_REL_CLOSE(w2, test::LoadNpy(t + "2_gray.npy"), kTol);
  auto w3 = ZeroMeanTotal(w2);
  EXPECT_REL_CLOSE(w3, test::LoadNpy(t + "3_zero_mean.npy"), kTol);
  auto w4 = WienerDft(w3);
  EXPECT_REL_CLOSE(w4, test::LoadNpy(t + "4_wiener_dft.npy"), kTol);
  // Each stage is also checked from the reference's own input, so that one
  // stage's error cannot hide behind another's.
  EXPECT_REL_CLOSE(ZeroMeanTotal(test::LoadNpy(t + "2_gray.npy")), test::LoadNpy(t + "3_zero_mean.npy"), kTol);
  EXPECT_REL_CLOSE(WienerDft(test::LoadNpy(t + "3_zero_mean.npy")), test::LoadNpy(t + "4_wiener_dft.npy"), kTol);
  // The device-generic tensor paths (used on CUDA) meet the same tolerance.
  EXPECT_REL_CLOSE(WienerDftTensor(test::LoadNpy(t + "3_zero_mean.npy")), test::LoadNpy(t + "4_wiener_dft.npy"), kTol);
  EXPECT_REL_CLOSE(WienerDftTensor(ZeroMeanTotal(ToGray(WaveletNoiseTensor(img, opt)))),
                   test::LoadNpy(t + "4_wiener_dft.npy"), kTol);
}

TEST_F(ReferenceTest, ResidualsSigma3) {
  for (const char* name : {"Nikon_D200_0_14902", "Nikon_D200_1_17226", "Nikon_D70_0_19445"}) {
    auto w = Residual(LoadImageChw(Natural(name)));
    EXPECT_REL_CLOSE(w, test::LoadNpy(Ref(std::string("residual_") + name + "_sigma3")), kTol) << name;
  }
}

TEST_F(ReferenceTest, ResidualSigma5) {
  ResidualOptions opt;
  opt.sigma = 5;
  auto w = Residual(LoadImageChw(Natural("Nikon_D200_0_14902")), opt);
  EXPECT_REL_CLOSE(w, test::LoadNpy(Ref("residual_Nikon_D200_0_14902_sigma5")), kTol);
}

TEST_F(ReferenceTest, ResidualOddSize) {
  auto img = LoadImageChw(test::ReferenceDir() + "/odd_333x401.png");
  ASSERT_EQ(img.size(1), 333);
  ASSERT_EQ(img.size(2), 401);
  EXPECT_REL_CLOSE(Residual(img), test::LoadNpy(Ref("residual_odd_333x401_sigma3")), kTol);
}

torch::Tensor DeviceFingerprint(const std::string& device, double sigma) {
  ResidualOptions opt;
  opt.sigma = sigma;
  FingerprintAccumulator acc(opt);
  const std::string dir = test::SharedDir() + "/data/dresden512/flatfield";
  for (const auto& path : ListImages(dir)) {
    if (std::filesystem::path(path).filename().string().rfind(device + "_", 0) == 0) acc.Add(LoadImageChw(path));
  }
  EXPECT_EQ(acc.count(), 10) << device;
  return acc.Finish();
}

const char* kDevices[] = {"Nikon_D200_0", "Nikon_D200_1", "Nikon_D70_0",
                          "Nikon_D70_1",  "Nikon_D70s_0", "Nikon_D70s_1"};

TEST_F(ReferenceTest, FingerprintsSigma3) {
  for (const char* d : kDevices) {
    EXPECT_REL_CLOSE(DeviceFingerprint(d, 3), test::LoadNpy(Ref(std::string("fingerprint_") + d + "_sigma3")), kTol)
        << d;
  }
}

TEST_F(ReferenceTest, FingerprintSigma5) {
  EXPECT_REL_CLOSE(DeviceFingerprint("Nikon_D70_0", 5), test::LoadNpy(Ref("fingerprint_Nikon_D70_0_sigma5")), kTol);
}

// NCC of every natural against every reference fingerprint, and the pooled
// ROC AUC from our own ROC code.
TEST_F(ReferenceTest, DetectionNccMatrixAndAuc) {
  std::ifstream in(test::ReferenceDir() + "/detection.json");
  const auto det = nlohmann::json::parse(in);
  const auto devices = det["devices"].get<std::vector<std::string>>();
  const auto naturals = det["naturals"].get<std::vector<std::string>>();
  std::vector<torch::Tensor> ks;
  for (const auto& d : devices) ks.push_back(test::LoadNpy(Ref("fingerprint_" + d + "_sigma3")));
  auto k = torch::stack(ks);  // (D,H,W)
  std::vector<double> pos, neg;
  for (size_t j = 0; j < naturals.size(); ++j) {
    auto img = LoadImageChw(Natural(naturals[j]));
    auto w = Residual(img);
    auto ncc = Ncc(w.unsqueeze(0), ToGray(img).unsqueeze(0), k);  // (D)
    for (size_t i = 0; i < devices.size(); ++i) {
      const double ref = det["ncc_paper"][i][j].get<double>();
      EXPECT_NEAR(ncc[static_cast<int64_t>(i)].item<double>(), ref, 1e-4) << devices[i] << " vs " << naturals[j];
      const bool same = naturals[j].rfind(devices[i] + "_", 0) == 0;
      (same ? pos : neg).push_back(ncc[static_cast<int64_t>(i)].item<double>());
    }
  }
  ASSERT_EQ(pos.size(), 16u);
  auto auc = RocAuc(pos, neg);
  ASSERT_TRUE(auc.has_value());
  EXPECT_NEAR(*auc, det["auc_ncc_paper"].get<double>(), 1e-4);
}

}  // namespace
}  // namespace dippas
