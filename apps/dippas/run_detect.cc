// dippas detect: NCC and PCE of images against fingerprints (SPEC §4); the library's
// DetectFiles (dippas/pipeline/prnu_commands.h) does the work. No LibTorch here: the dippas
// executable runs this command itself, without loading the LibTorch module (see main.cc).
#include <cstdio>
#include <filesystem>

#include "commands.h"
#include "common.h"
#include "dippas/pipeline/prnu_commands.h"

namespace dippas {

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
    opt.threads = common.threads;  // detect runs without LibTorch: its own threads, one per image
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
