#include "common.h"

#include <cmath>
#include <filesystem>
#include <iostream>

#include "dippas/io/atomic_file.h"
#include "dippas/io/mat.h"
#include "dippas/io/npy.h"

namespace dippas {

namespace fs = std::filesystem;

void CommonOptions::Add(CLI::App& app) {
  app.add_option("--threads", threads, "CPU threads (default: all cores)")
      ->check(CLI::NonNegativeNumber);
  app.add_flag("-q,--quiet", quiet, "No progress display");
}

void AddMatVarOption(CLI::App& app) {
  app.add_option_function<std::string>(
      "--mat-var", [](const std::string& name) { SetMatVariable(name); },
      "Variable holding the fingerprint in .mat files (MATLAB) that hold several; a .mat with one "
      "variable needs none");
}

void AddSigmaCropOptions(CLI::App& app, double& sigma, int64_t& crop) {
  app.add_option("--sigma", sigma, "Wavelet noise σ of the residual (default 3)")
      ->default_val(3.0)
      ->check(CLI::PositiveNumber);
  app.add_option("--crop", crop,
                 "Use the centre N×N crop of every image (and fingerprint); 0 = whole image")
      ->default_val(0)
      ->check(CLI::NonNegativeNumber);
}

void AddPrnuOptions(CLI::App& app, PrnuCommandOptions& prnu, CommonOptions& common) {
  AddSigmaCropOptions(app, prnu.sigma, prnu.crop);
  common.Add(app);
}

std::vector<std::string> ExpandImagePaths(const std::vector<std::string>& paths) {
  std::vector<std::string> out;
  for (const auto& p : paths) {
    std::error_code ec;
    if (fs::is_directory(p, ec)) {
      auto files = ListImages(p);
      if (files.empty()) throw UsageError(p + ": folder holds no image files (png, jpg, tif, bmp)");
      out.insert(out.end(), files.begin(), files.end());
    } else {
      out.push_back(p);  // a missing file is reported by the reader, naming it
    }
  }
  return out;
}

int Guard(const std::string& command, const std::function<int()>& body) {
  try {
    return body();
  } catch (const std::exception& e) {
    std::cerr << "dippas " << command << ": error: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace dippas
