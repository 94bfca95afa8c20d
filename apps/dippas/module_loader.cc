#include "module_loader.h"

#include <dlfcn.h>

#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <system_error>

#include "module_abi.h"

namespace dippas {

namespace fs = std::filesystem;

std::string ModulePath() {
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);
  const fs::path dir = ec ? fs::path(".") : self.parent_path();
  const fs::path beside = dir / DIPPAS_MODULE_FILE;
  const fs::path installed =
      (dir / ".." / "lib" / "dippas" / DIPPAS_MODULE_FILE).lexically_normal();
  if (!fs::exists(beside, ec) && fs::exists(installed, ec)) return installed.string();
  return beside.string();
}

int RunInModule(const std::string& command, int argc, char** argv) {
  const std::string path = ModulePath();
  // LibTorch's OpenMP workers busy-wait after each parallel region by default. On few cores they
  // take the CPU from dippas's own threads and from other dippas processes: three processes at
  // 128² on two cores ran 5.5× faster passive, one process 17 % faster. libgomp reads this when
  // the module loads it; a value the user set wins.
  setenv("OMP_WAIT_POLICY", "PASSIVE", /*overwrite=*/0);
  // RTLD_NOW: a module that does not match its LibTorch fails here, not in the middle of a run.
  void* module = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (module == nullptr) {
    std::cerr << "dippas " << command << ": error: cannot load the LibTorch module " << path << ": "
              << dlerror() << "\n(every command but detect runs in " << DIPPAS_MODULE_FILE
              << ", which must lie beside the dippas executable or in ../lib/dippas/ from it)\n";
    return 1;
  }
  // Never closed: the module's signal handlers, threads and static objects live until exit.
  const auto run = reinterpret_cast<DippasRunFunction>(dlsym(module, kModuleEntry));
  if (run == nullptr) {
    std::cerr << "dippas " << command << ": error: " << path
              << " is no dippas module: " << dlerror() << "\n";
    return 1;
  }
  return run(command.c_str(), argc, argv);
}

}  // namespace dippas
