// Runs a command in the LibTorch module libdippas-torch.so, loaded on demand (dlopen), so that
// LibTorch's start-up (~0.85 s of CPU) is paid only by the commands that use it.
#pragma once

#include <string>

namespace dippas {

// The module's path: beside this executable, else ../lib/dippas/ from it (the installed layout).
// The first candidate that exists; when none does, the one beside the executable.
std::string ModulePath();

// Loads the module and runs `command` there with `argv` (argv[0]: the command's name); returns
// its exit status, or 1 after an error naming the module file when it cannot be loaded.
int RunInModule(const std::string& command, int argc, char** argv);

}  // namespace dippas
