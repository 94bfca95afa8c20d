// dippas: PRNU anonymization (DIPPAS, Picetti et al. 2022) and PRNU forensics.
//
// One executable without LibTorch: detect, help and --version run here; every other command runs
// in the LibTorch module libdippas-torch.so, loaded on demand (module_loader.h). Loading LibTorch
// takes ~0.85 s of a 2-core machine, more than detecting a dozen images.
#include <malloc.h>
#include <torch/version.h>  // TORCH_VERSION, a macro: nothing of LibTorch is linked

#include <iostream>
#include <map>
#include <string>

#include "commands.h"
#include "module_loader.h"

#ifdef DIPPAS_JEMALLOC
// jemalloc (linked into this executable, so that it serves the whole process, the module and
// LibTorch included; see CMakeLists.txt), told to keep freed pages mapped for reuse: the DIP
// loop frees and re-allocates the same image-sized tensors every iteration, and pages returned
// to the kernel come back zero-filled at a cost near that of the convolutions. MALLOC_CONF in the
// environment still overrides this.
extern "C" {
// NOLINTNEXTLINE: the name and linkage jemalloc reads its built-in options from.
extern const char* malloc_conf;
const char* malloc_conf = "retain:true,dirty_decay_ms:-1,muzzy_decay_ms:-1";
}
#endif

namespace {

struct Command {
  int (*run)(int, char**);  // nullptr: runs in the LibTorch module
  const char* help;
};

const std::map<std::string, Command>& Commands() {
  static const std::map<std::string, Command> commands = {
      {"anonymize", {nullptr, "remove the camera fingerprint from a photograph (DIPPAS)"}},
      {"residual", {nullptr, "noise residual W of an image (.npy)"}},
      {"fingerprint", {nullptr, "camera fingerprint K from flat-field images (.npy)"}},
      {"detect", {dippas::RunDetect, "NCC and PCE of images against fingerprints"}},
      {"batch", {nullptr, "anonymize a whole folder tree, resumable"}},
      {"assemble", {nullptr, "re-assemble a saved candidate pool with other B, L, τ"}},
      {"evaluate", {nullptr, "ROC AUC, PSNR and trade-off C over a dataset"}},
      {"bench", {nullptr, "time the PRNU stages (and the DIP loop)"}},
  };
  return commands;
}

void PrintUsage(std::ostream& os) {
  os << "dippas " << DIPPAS_VERSION << ": remove a camera's PRNU fingerprint from photographs\n\n"
     << "Usage: dippas <command> [options]   (dippas <command> --help for its options)\n\n"
     << "Commands:\n";
  for (const auto& [name, cmd] : Commands())
    os << "  " << name << std::string(14 - name.size(), ' ') << cmd.help << "\n";
  os << "\n  --version     print versions and exit\n";
}

}  // namespace

int main(int argc, char** argv) {
#ifndef DIPPAS_JEMALLOC
  // The DIP loop frees and re-allocates the same large tensors every
  // iteration; keeping them in the heap instead of returning them to the OS
  // saves a page fault storm (measured with `dippas bench --what dip`).
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 512 << 20);
#endif
  if (argc < 2) {
    PrintUsage(std::cerr);
    return 2;
  }
  const std::string name = argv[1];
  if (name == "-h" || name == "--help" || name == "help") {
    PrintUsage(std::cout);
    return 0;
  }
  if (name == "--version" || name == "version") {
    std::cout << "dippas " << DIPPAS_VERSION << " (LibTorch " << TORCH_VERSION << ", OpenCV "
              << DIPPAS_OPENCV_VERSION << ")\n";
    return 0;
  }
  const auto it = Commands().find(name);
  if (it == Commands().end()) {
    std::cerr << "dippas: unknown command '" << name << "'\n\n";
    PrintUsage(std::cerr);
    return 2;
  }
  // The subcommand sees itself as argv[0].
  if (it->second.run == nullptr) return dippas::RunInModule(name, argc - 1, argv + 1);
  return it->second.run(argc - 1, argv + 1);
}
