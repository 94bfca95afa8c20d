// dippas residual | fingerprint | detect: the PRNU forensics side (SPEC §2–4); the library's
// dippas/pipeline/prnu_commands.h does the work.
#include <cstdio>
#include <filesystem>
#include <iostream>

#include "commands.h"
#include "common.h"
#include "dippas/pipeline/prnu_commands.h"

namespace dippas {
namespace {

// --sigma, --crop and the common options, shared by the three commands.
void AddPrnuOptions(CLI::App& app, PrnuCommandOptions& prnu, CommonOptions& common) {
  app.add_option("--sigma", prnu.sigma, "Wavelet noise σ of the residual (default 3)")
      ->default_val(3.0)
      ->check(CLI::PositiveNumber);
  app.add_option("--crop", prnu.crop,
                 "Use the centre N×N crop of every image (and fingerprint); 0 = whole image")
      ->default_val(0)
      ->check(CLI::NonNegativeNumber);
  common.Add(app);
}

}  // namespace

// dippas residual: W = residual(I, σ) of one image, as float32 .npy.
int RunResidual(int argc, char** argv) {
  std::string image, out;  // input image, output .npy
  PrnuCommandOptions prnu;
  CommonOptions common;
  CLI::App app{
      "Noise residual W of an image (wavelet denoising, gray, zero-mean, Wiener-DFT), written as a "
      "float32 .npy",
      "dippas residual"};
  app.add_option("--image", image, "Input image (PNG, JPEG, TIFF, BMP; 8 or 16 bit)")->required();
  app.add_option("--out", out, "Output .npy (float32, H×W)")->required();
  AddPrnuOptions(app, prnu, common);
  CLI11_PARSE(app, argc, argv);
  return Guard("residual", [&] {
    common.Apply();
    const auto [h, w] = WriteResidualFile(image, out, prnu);
    if (!common.quiet) std::cerr << "wrote " << out << " (" << h << "x" << w << ")\n";
    return 0;
  });
}

// dippas fingerprint: K from flat-field images, streaming (SPEC §3).
int RunFingerprint(int argc, char** argv) {
  std::vector<std::string> inputs;  // flat-field files or folders
  std::string out;                  // output .npy
  PrnuCommandOptions prnu;
  CommonOptions common;
  CLI::App app{
      "Camera fingerprint K (maximum-likelihood estimate) from flat-field images, written as "
      "float32 .npy",
      "dippas fingerprint"};
  app.add_option("inputs", inputs, "Flat-field images, or folders of them (all the same size)")
      ->required();
  app.add_option("--out", out, "Output .npy (float32, H×W)")->required();
  AddPrnuOptions(app, prnu, common);
  CLI11_PARSE(app, argc, argv);
  return Guard("fingerprint", [&] {
    common.Apply();
    prnu.quiet = common.quiet;
    const auto files = ExpandImagePaths(inputs);
    WriteFingerprintFile(files, out, prnu);
    if (!common.quiet) std::cerr << "wrote " << out << " from " << files.size() << " images\n";
    return 0;
  });
}

// dippas detect: NCC and PCE of images against fingerprints (SPEC §4).
int RunDetect(int argc, char** argv) {
  std::vector<std::string> images;  // images to test
  DetectOptions opt;
  CommonOptions common;
  CLI::App app{
      "Test attribution: NCC (paper eq. 2) and PCE of each image's residual against each "
      "fingerprint",
      "dippas detect"};
  app.add_option("images", images, "Images, or folders of them")->required();
  app.add_option("--prnu", opt.fingerprints,
                 "Fingerprint K (.npy or MATLAB .mat); repeat to test several cameras")
      ->required()
      ->allow_extra_args(false);  // one value per --prnu, so images may follow it
  app.add_option("--json", opt.json, "Also write the results as JSON to this file");
  app.add_option("--threshold", opt.threshold,
                 "PCE at or above which an image is attributed to the camera")
      ->default_val(60.0);
  app.add_option("--search", opt.search,
                 "Search the PCE peak within ±N pixels of zero shift (0: aligned images)")
      ->default_val(0)
      ->check(CLI::NonNegativeNumber);
  AddPrnuOptions(app, opt.prnu, common);
  AddMatVarOption(app);
  CLI11_PARSE(app, argc, argv);
  return Guard("detect", [&] {
    common.Apply();
    const auto files = ExpandImagePaths(images);
    std::printf("%-40s %-28s %12s %12s  %s\n", "image", "fingerprint", "NCC", "PCE", "attributed");
    DetectFiles(files, opt, [](const DetectRow& r) {
      std::printf("%-40s %-28s %12.6f %12.2f  %s\n",
                  std::filesystem::path(r.image).filename().string().c_str(),
                  std::filesystem::path(r.fingerprint).filename().string().c_str(), r.ncc, r.pce,
                  r.attributed ? "yes" : "no");
    });
    return 0;
  });
}

}  // namespace dippas
