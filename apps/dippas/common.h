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
#include "dippas/pipeline/inputs.h"

namespace dippas {

// Options present on every subcommand.
struct CommonOptions {
  int threads = 0;     // LibTorch intra-op threads; 0 = all cores
  bool quiet = false;  // no progress display
  void Add(CLI::App& app);
  void Apply() const;  // sets the thread count
};

// --mat-var NAME on a command that reads fingerprints: the variable of .mat fingerprints.
void AddMatVarOption(CLI::App& app);

// Expands files and folders (their image files, sorted) into a list of files.
std::vector<std::string> ExpandImagePaths(const std::vector<std::string>& paths);

// Runs `body`; turns exceptions into a one-line error on stderr and exit code 1.
int Guard(const std::string& command, const std::function<int()>& body);

}  // namespace dippas
