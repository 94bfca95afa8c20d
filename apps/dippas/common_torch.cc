// The part of common.h that needs LibTorch, kept out of the light executable (main.cc).
#include "common.h"
#include "dippas/util/runtime.h"

namespace dippas {

void CommonOptions::Apply() const { SetThreads(threads > 0 ? threads : DefaultThreads()); }

}  // namespace dippas
