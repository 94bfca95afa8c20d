// Helpers shared by the subcommands: loading inputs with the checks every
// command needs, and the options every command has.
#pragma once

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <torch/types.h>
#include <vector>

#include "dippas/io/image.h"

namespace dippas {

// Options present on every subcommand.
struct CommonOptions {
  int threads = 0;     // LibTorch intra-op threads; 0 = all cores
  bool quiet = false;  // no progress display
  void Add(CLI::App& app);
  void Apply() const;  // sets the thread count
};

// Error in what the user asked for (bad option, size mismatch…): exit code 1.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A decoded image as a (C,H,W) float tensor on 0..255, plus what was read.
struct LoadedImage {
  std::string path;
  Image image;          // after the optional crop
  torch::Tensor chw;    // (C,H,W) float32, 0..255, shares nothing with `image`
};

// Reads an image and applies --crop (0 = none).
LoadedImage LoadImage(const std::string& path, int64_t crop);

// Reads a fingerprint / reference pattern (H,W). With crop > 0 it is centre
// cropped like the image. Refuses NaN/Inf values and an all-zero pattern;
// when expected_h > 0, a size other than expected_h×expected_w (naming both
// files) is an error.
torch::Tensor LoadPattern(const std::string& path, int64_t crop, int64_t expected_h = 0, int64_t expected_w = 0,
                          const std::string& image_path = "");

// Expands files and folders (their image files, sorted) into a list of files.
std::vector<std::string> ExpandImagePaths(const std::vector<std::string>& paths);

// JSON number, or null for NaN/Inf/absent (JSON has no NaN).
nlohmann::json NumberOrNull(double v);
nlohmann::json NumberOrNull(const std::optional<double>& v);

// Writes pretty JSON atomically.
void WriteJson(const std::string& path, const nlohmann::json& j);

// Runs `body`; turns exceptions into a one-line error on stderr and exit code 1.
int Guard(const std::string& command, const std::function<int()>& body);

}  // namespace dippas
