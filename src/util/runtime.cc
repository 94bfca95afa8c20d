#include "dippas/util/runtime.h"

#include <ATen/Parallel.h>
#include <torch/cuda.h>
#include <torch/version.h>

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
