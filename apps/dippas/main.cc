// dippas: PRNU anonymization (DIPPAS, Picetti et al. 2022) and PRNU forensics.
//
// Built twice: dippas-full holds every command; dippas (DIPPAS_LIGHT) links no LibTorch, runs
// `detect` itself and hands every other command to dippas-full beside it (exec, same process).
// Loading LibTorch takes ~0.7 s of a 2-core machine, more than detecting a dozen images.
#include <malloc.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <map>
#include <string>

#include "commands.h"
#ifndef DIPPAS_LIGHT
#include "dippas/util/runtime.h"
#endif

#ifdef DIPPAS_JEMALLOC
// jemalloc (linked in, see CMakeLists.txt), told to keep freed pages mapped for reuse: the DIP
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
  int (*run)(int, char**);  // nullptr: dippas-full runs it
  const char* help;
};

#ifdef DIPPAS_LIGHT
// The commands that need LibTorch, in the light executable.
constexpr int (*RunResidual)(int, char**) = nullptr;
constexpr int (*RunFingerprint)(int, char**) = nullptr;
constexpr int (*RunBatch)(int, char**) = nullptr;
constexpr int (*RunAssemble)(int, char**) = nullptr;
constexpr int (*RunAnonymize)(int, char**) = nullptr;
constexpr int (*RunEvaluate)(int, char**) = nullptr;
constexpr int (*RunBench)(int, char**) = nullptr;
using dippas::RunDetect;

// Replaces this process by dippas-full (found beside this executable) with the same arguments;
// returns only on failure.
int RunFull(char** argv) {
  std::error_code ec;
  const auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  const std::string full =
      (ec ? std::filesystem::path(argv[0]) : self).parent_path() / "dippas-full";
  execv(full.c_str(), argv);
  std::cerr << "dippas: cannot run " << full << ": " << std::strerror(errno)
            << " (every command but detect runs there: keep dippas-full beside dippas)\n";
  return 1;
}
#else
using dippas::RunAnonymize, dippas::RunAssemble, dippas::RunBatch, dippas::RunBench,
    dippas::RunDetect, dippas::RunEvaluate, dippas::RunFingerprint, dippas::RunResidual;
#endif

const std::map<std::string, Command>& Commands() {
  static const std::map<std::string, Command> commands = {
      {"anonymize", {RunAnonymize, "remove the camera fingerprint from a photograph (DIPPAS)"}},
      {"residual", {RunResidual, "noise residual W of an image (.npy)"}},
      {"fingerprint", {RunFingerprint, "camera fingerprint K from flat-field images (.npy)"}},
      {"detect", {RunDetect, "NCC and PCE of images against fingerprints"}},
      {"batch", {RunBatch, "anonymize a whole folder tree, resumable"}},
      {"assemble", {RunAssemble, "re-assemble a saved candidate pool with other B, L, τ"}},
      {"evaluate", {RunEvaluate, "ROC AUC, PSNR and trade-off C over a dataset"}},
      {"bench", {RunBench, "time the PRNU stages (and the DIP loop)"}},
  };
  return commands;
}

void PrintUsage(std::ostream& os) {
  os << "dippas " << DIPPAS_VERSION << ": remove a camera's PRNU fingerprint from photographs\n\n"
     << "Usage: dippas <command> [options]   (dippas <command> --help for its options)\n\n"
     << "Commands:\n";
  for (const auto& [name, cmd] : Commands()) os << "  " << name << std::string(14 - name.size(), ' ') << cmd.help << "\n";
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
#ifdef DIPPAS_LIGHT
    return RunFull(argv);  // LibTorch's version is asked for
#else
    std::cout << "dippas " << dippas::Version() << " (LibTorch " << dippas::TorchVersion() << ", OpenCV "
              << DIPPAS_OPENCV_VERSION << ")\n";
    return 0;
#endif
  }
  const auto it = Commands().find(name);
  if (it == Commands().end()) {
    std::cerr << "dippas: unknown command '" << name << "'\n\n";
    PrintUsage(std::cerr);
    return 2;
  }
#ifdef DIPPAS_LIGHT
  if (it->second.run == nullptr) return RunFull(argv);
#endif
  // The subcommand sees itself as argv[0].
  return it->second.run(argc - 1, argv + 1);
}
