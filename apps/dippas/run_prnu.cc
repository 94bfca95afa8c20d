// dippas residual | fingerprint: the PRNU forensics side (SPEC §2–3); the library's
// dippas/pipeline/prnu_commands.h does the work. detect: run_detect.cc.
#include <filesystem>
#include <iostream>

#include "commands.h"
#include "common.h"
#include "dippas/pipeline/prnu_commands.h"

namespace dippas {

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
    const FingerprintQuality q = WriteFingerprintFile(files, out, prnu);
    if (!common.quiet) std::cerr << "wrote " << out << " from " << files.size() << " images\n";
    std::cerr << FingerprintQualityText(q) << "\n";
    return 0;
  });
}

}  // namespace dippas
