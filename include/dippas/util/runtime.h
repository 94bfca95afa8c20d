// Process-wide runtime settings: threads, devices, versions.
#pragma once

#include <string>

namespace dippas {

// Library version (CMake project version).
std::string Version();

// Version of the LibTorch the core was built against.
std::string TorchVersion();

// Number of hardware threads (≥ 1): the default of every --threads option.
int DefaultThreads();

// Sets LibTorch's intra-op thread count (Debian's build defaults to one).
void SetThreads(int threads);

// The calling thread's intra-op thread count only, for a worker running one of several runs at
// once: LibTorch's and oneDNN's OpenMP teams and dippas's kernels started from this thread.
void SetThisThreadThreads(int threads);

// "cpu" or "cuda" for "auto" | "cpu" | "cuda"; throws std::invalid_argument
// when CUDA is asked for but absent, or the name is unknown.
std::string ResolveDevice(const std::string& requested);

}  // namespace dippas
