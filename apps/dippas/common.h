// Helpers shared by the subcommands: loading inputs with the checks every
// command needs, and the options every command has.
#pragma once

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "dippas/io/image.h"
#include "dippas/pipeline/prnu_commands.h"
#include "dippas/pipeline/usage_error.h"

namespace dippas {

// Options present on every subcommand.
struct CommonOptions {
  int threads = 0;     // LibTorch intra-op threads (detect: images at once); 0 = all cores
  bool quiet = false;  // no progress display
  void Add(CLI::App& app);
  void Apply() const;  // sets LibTorch's thread count (common_torch.cc: in the module only)
};

// --sigma (the residual's wavelet noise σ) and --crop (centre N×N crop), for every command that
// takes residuals.
void AddSigmaCropOptions(CLI::App& app, double& sigma, int64_t& crop);

// --sigma, --crop and the common options of residual, fingerprint and detect.
void AddPrnuOptions(CLI::App& app, PrnuCommandOptions& prnu, CommonOptions& common);

// --mat-var NAME on a command that reads fingerprints: the variable of .mat fingerprints.
void AddMatVarOption(CLI::App& app);

// Expands files and folders (their image files, sorted) into a list of files.
std::vector<std::string> ExpandImagePaths(const std::vector<std::string>& paths);

// Runs `body`; turns exceptions into a one-line error on stderr and exit code 1.
int Guard(const std::string& command, const std::function<int()>& body);

}  // namespace dippas
