// The one entry point of the LibTorch module libdippas-torch.so (module.cc), which the dippas
// executable loads with dlopen for every command but detect, help and --version.
#pragma once

extern "C" {
// Runs `command` (anonymize, residual, …) with its own argv (argv[0]: the command's name) and
// returns the process's exit status.
using DippasRunFunction = int (*)(const char* command, int argc, char** argv);
}

namespace dippas {
inline constexpr const char* kModuleEntry = "dippas_run";  // the symbol dlsym looks up
}  // namespace dippas
