// The part of common.h that needs LibTorch: in the module libdippas-torch.so only, never in the
// dippas executable (main.cc).
#include "common.h"
#include "dippas/util/runtime.h"

namespace dippas {

void CommonOptions::Apply() const { SetThreads(threads > 0 ? threads : DefaultThreads()); }

}  // namespace dippas
