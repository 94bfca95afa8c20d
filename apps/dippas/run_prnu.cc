// dippas residual | fingerprint | detect: the PRNU forensics side (SPEC §2–4).
#include <cstdio>
#include <filesystem>
#include <iostream>

#include "commands.h"
#include "common.h"
#include "dippas/io/npy.h"
#include "dippas/prnu/detection.h"
#include "dippas/prnu/fingerprint.h"
#include "dippas/prnu/residual.h"
#include "dippas/util/progress.h"
#include "dippas/util/runtime.h"

namespace dippas {
namespace {

Array2D ToArray(const torch::Tensor& t) {
  auto c = t.to(torch::kFloat32).contiguous().cpu();
  Array2D a;
  a.rows = c.size(0);
  a.cols = c.size(1);
  a.data.assign(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
  return a;
}

void AddSigma(CLI::App& app, double& sigma) {
  app.add_option("--sigma", sigma, "Wavelet noise σ of the residual (SPEC §2)")
      ->default_val(3.0)
      ->check(CLI::PositiveNumber);
}

void AddCrop(CLI::App& app, int64_t& crop) {
  app.add_option("--crop", crop, "Use the centre N×N crop of every image (and fingerprint); 0 = whole image")
      ->default_val(0)
      ->check(CLI::NonNegativeNumber);
}

}  // namespace

// dippas residual: W = residual(I, σ) of one image, as float32 .npy.
int RunResidual(int argc, char** argv) {
  struct Options {
    std::string image;  // input image
    std::string out;    // output .npy
    double sigma = 3;   // residual σ
    int64_t crop = 0;   // centre crop side, 0 = none
  } opt;
  CommonOptions common;
  CLI::App app{"Noise residual W of an image (wavelet denoising, gray, zero-mean, Wiener-DFT), written as a float32 .npy",
               "dippas residual"};
  app.add_option("--image", opt.image, "Input image (PNG, JPEG, TIFF, BMP; 8 or 16 bit)")->required();
  app.add_option("--out", opt.out, "Output .npy (float32, H×W)")->required();
  AddSigma(app, opt.sigma);
  AddCrop(app, opt.crop);
  common.Add(app);
  CLI11_PARSE(app, argc, argv);
  return Guard("residual", [&] {
    common.Apply();
    auto img = LoadImage(opt.image, opt.crop);
    ResidualOptions ro;
    ro.sigma = opt.sigma;
    WriteNpy(opt.out, ToArray(Residual(img.chw, ro)));
    if (!common.quiet) std::cerr << "wrote " << opt.out << " (" << img.image.height << "x" << img.image.width << ")\n";
    return 0;
  });
}

// dippas fingerprint: K from flat-field images, streaming (SPEC §3).
int RunFingerprint(int argc, char** argv) {
  struct Options {
    std::vector<std::string> inputs;  // flat-field files or folders
    std::string out;                  // output .npy
    double sigma = 3;                 // residual σ
    int64_t crop = 0;                 // centre crop side, 0 = none
  } opt;
  CommonOptions common;
  CLI::App app{"Camera fingerprint K (maximum-likelihood estimate) from flat-field images, written as float32 .npy",
               "dippas fingerprint"};
  app.add_option("inputs", opt.inputs, "Flat-field images, or folders of them (all the same size)")->required();
  app.add_option("--out", opt.out, "Output .npy (float32, H×W)")->required();
  AddSigma(app, opt.sigma);
  AddCrop(app, opt.crop);
  common.Add(app);
  CLI11_PARSE(app, argc, argv);
  return Guard("fingerprint", [&] {
    common.Apply();
    const auto files = ExpandImagePaths(opt.inputs);
    ResidualOptions ro;
    ro.sigma = opt.sigma;
    FingerprintAccumulator acc(ro);
    Progress progress("fingerprint", static_cast<int64_t>(files.size()), !common.quiet);
    int64_t h = 0, w = 0, c = 0;
    std::string first;
    for (size_t i = 0; i < files.size(); ++i) {
      auto img = LoadImage(files[i], opt.crop);  // one image in memory at a time
      if (i == 0) {
        h = img.image.height, w = img.image.width, c = img.image.channels, first = files[i];
      } else if (img.image.height != h || img.image.width != w || img.image.channels != c) {
        throw UsageError(files[i] + ": image is " + std::to_string(img.image.height) + "x" +
                         std::to_string(img.image.width) + "x" + std::to_string(img.image.channels) + " but " + first +
                         " is " + std::to_string(h) + "x" + std::to_string(w) + "x" + std::to_string(c) +
                         " (all flat-fields must have the same size; --crop N can make them so)");
      }
      acc.Add(img.chw);
      progress.Update(static_cast<int64_t>(i + 1), std::filesystem::path(files[i]).filename().string());
    }
    progress.Finish();
    WriteNpy(opt.out, ToArray(acc.Finish()));
    if (!common.quiet) std::cerr << "wrote " << opt.out << " from " << files.size() << " images\n";
    return 0;
  });
}

// dippas detect: NCC and PCE of images against fingerprints (SPEC §4).
int RunDetect(int argc, char** argv) {
  struct Options {
    std::vector<std::string> images;        // images to test
    std::vector<std::string> fingerprints;  // K files (one or more)
    std::string json;                       // optional JSON report
    double sigma = 3;                       // residual σ
    int64_t crop = 0;                       // centre crop side, 0 = none
    double threshold = 60;                  // PCE decision threshold
    int64_t search = 0;                     // PCE peak search radius (0: zero shift)
  } opt;
  CommonOptions common;
  CLI::App app{"Test attribution: NCC (paper eq. 2) and PCE of each image's residual against each fingerprint",
               "dippas detect"};
  app.add_option("images", opt.images, "Images, or folders of them")->required();
  app.add_option("--prnu", opt.fingerprints, "Fingerprint K (.npy); repeat to test several cameras")
      ->required()
      ->allow_extra_args(false);  // one value per --prnu, so images may follow it
  app.add_option("--json", opt.json, "Also write the results as JSON to this file");
  app.add_option("--threshold", opt.threshold, "PCE at or above which an image is attributed to the camera")
      ->default_val(60.0);
  app.add_option("--search", opt.search, "Search the PCE peak within ±N pixels of zero shift (0: aligned images)")
      ->default_val(0)
      ->check(CLI::NonNegativeNumber);
  AddSigma(app, opt.sigma);
  AddCrop(app, opt.crop);
  common.Add(app);
  CLI11_PARSE(app, argc, argv);
  return Guard("detect", [&] {
    common.Apply();
    const auto files = ExpandImagePaths(opt.images);
    ResidualOptions ro;
    ro.sigma = opt.sigma;
    PceOptions po;
    po.search_radius = opt.search;
    nlohmann::json results = nlohmann::json::array();
    std::printf("%-40s %-28s %12s %12s  %s\n", "image", "fingerprint", "NCC", "PCE", "attributed");
    std::vector<torch::Tensor> ks(opt.fingerprints.size());
    for (const auto& file : files) {
      auto img = LoadImage(file, opt.crop);
      auto w = Residual(img.chw, ro);  // one residual serves every fingerprint
      auto gray = ToGray(img.chw);
      auto w_spec = PceSpectrum(w);
      for (size_t f = 0; f < opt.fingerprints.size(); ++f) {
        if (!ks[f].defined()) {
          ks[f] = LoadPattern(opt.fingerprints[f], opt.crop, img.image.height, img.image.width, file);
        } else if (ks[f].size(0) != img.image.height || ks[f].size(1) != img.image.width) {
          throw UsageError(file + ": image is " + std::to_string(img.image.height) + "x" +
                           std::to_string(img.image.width) + " but fingerprint " + opt.fingerprints[f] + " is " +
                           std::to_string(ks[f].size(0)) + "x" + std::to_string(ks[f].size(1)));
        }
        const auto& k = ks[f];
        const double ncc = Ncc(w, gray, k).item<double>();
        const auto pce = PceFromSpectrum(w_spec, gray * k, po);
        const bool attributed = std::isfinite(pce.pce) && pce.pce >= opt.threshold;
        std::printf("%-40s %-28s %12.6f %12.2f  %s\n", std::filesystem::path(file).filename().string().c_str(),
                    std::filesystem::path(opt.fingerprints[f]).filename().string().c_str(), ncc, pce.pce,
                    attributed ? "yes" : "no");
        results.push_back({{"image", file},
                           {"fingerprint", opt.fingerprints[f]},
                           {"ncc", NumberOrNull(ncc)},
                           {"pce", NumberOrNull(pce.pce)},
                           {"peak_shift", {pce.peak_row, pce.peak_col}},
                           {"attributed", attributed}});
      }
    }
    if (!opt.json.empty()) {
      WriteJson(opt.json, {{"threshold", opt.threshold},
                           {"sigma", opt.sigma},
                           {"crop", opt.crop},
                           {"dippas", Version()},
                           {"results", results}});
    }
    return 0;
  });
}

}  // namespace dippas
