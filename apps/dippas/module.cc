// libdippas-torch.so: the commands that need LibTorch, loaded by the dippas executable on demand
// (module_loader.cc). Only dippas_run is exported (CMakeLists.txt hides the rest).
#include <iostream>
#include <map>
#include <string>
#include <type_traits>

#include "commands.h"
#include "module_abi.h"

extern "C" __attribute__((visibility("default"))) int dippas_run(const char* command, int argc,
                                                                 char** argv) {
  static const std::map<std::string, int (*)(int, char**)> commands = {
      {"anonymize", dippas::RunAnonymize},
      {"residual", dippas::RunResidual},
      {"fingerprint", dippas::RunFingerprint},
      {"batch", dippas::RunBatch},
      {"assemble", dippas::RunAssemble},
      {"evaluate", dippas::RunEvaluate},
      {"bench", dippas::RunBench},
  };
  const auto it = commands.find(command);
  if (it == commands.end()) {
    std::cerr << "dippas: the LibTorch module has no command '" << command << "'\n";
    return 2;
  }
  return it->second(argc, argv);
}

// Checked at compile time: the definition has the type the executable calls it through.
static_assert(std::is_same_v<decltype(&dippas_run), DippasRunFunction>);
