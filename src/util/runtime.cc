#include "dippas/util/runtime.h"

#include <ATen/Parallel.h>
#include <torch/cuda.h>
#include <torch/version.h>

#include "dippas/kernels/cpu/chunked_sgemm.h"
#include "dippas/util/parallel.h"

#include <stdexcept>
#include <thread>

namespace dippas {

std::string Version() { return DIPPAS_VERSION; }

std::string TorchVersion() { return TORCH_VERSION; }

int DefaultThreads() {
  const unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(n);
}

void SetThreads(int threads) {
  if (threads < 1) throw std::invalid_argument("--threads must be at least 1");
  at::set_num_threads(threads);
  // OpenBLAS (LibTorch's matrix products) has its own count, all cores unless told: --threads
  // bounds it too, and the results then depend on --threads only.
  SetBlasThreads(threads);
}

void SetThisThreadThreads(int threads) {
  if (threads < 1) throw std::invalid_argument("threads must be at least 1");
  // LibTorch sets each thread's count from the process's the first time the thread asks for it:
  // that first, or it would undo ours.
  (void)at::get_num_threads();
  // The thread's own OpenMP setting (LibTorch's libgomp): at::set_num_threads would change the
  // process's too.
  SetOpenMpThreadsOfThisThread(threads);
}

std::string ResolveDevice(const std::string& requested) {
  if (requested == "cpu") return "cpu";
  if (requested == "cuda") {
    if (!torch::cuda::is_available()) {
      throw std::invalid_argument("--device cuda: CUDA is not available (no GPU, or LibTorch built without CUDA)");
    }
    return "cuda";
  }
  if (requested == "auto") return torch::cuda::is_available() ? "cuda" : "cpu";
  throw std::invalid_argument("--device: unknown device '" + requested + "' (expected auto, cpu or cuda)");
}

}  // namespace dippas
