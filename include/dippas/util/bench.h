// Benchmarks that the speed targets are judged by: they print figures, they
// assert nothing. Shared by `dippas bench` and the OpenCV-free `dippas-bench`
// built on the GPU machine.
#pragma once

#include <cstdint>
#include <string>

#include "dippas/dip/options.h"

namespace dippas {

// Peak memory since ResetPeakMemory(device): on "cuda" (in a CUDA build) the caching allocator's
// peak of tensor bytes, else the whole process's peak resident set (which cannot be reset).
void ResetPeakMemory(const std::string& device);
bool PeakIsGpu(const std::string& device);  // which of the two PeakMemoryMiB reports
double PeakMemoryMiB(const std::string& device);

// Residual of one size×size RGB image, fingerprint of ten, NCC+PCE of one pair
// (median of `repeats` runs), on `device` ("cpu" or "cuda").
void BenchPrnu(int64_t size, int repeats, const std::string& device = "cpu");

// `iterations` of the real DIP loop (every candidate admitted, so the pool
// work counts): it/s, time shares, peak memory. On the CPU, `compare` adds each CPU rewrite
// against what it replaces, side by side (about a minute at 512², and their memory counts in the
// process's peak).
void BenchDip(int64_t size, int64_t iterations, const std::string& device,
              const DipOptions& options, bool compare = true);

}  // namespace dippas
