// Which hand-written kernels a piece of code ran: the counters of kernels/cpu/dispatch.h read
// before and after it. Tests observe the path a layer took this way, never through the bits of
// its result (two paths can round alike on one CPU and not on another).
#pragma once

#include <array>
#include <cstdint>
#include <functional>

#include "dippas/kernels/cpu/dispatch.h"

namespace dippas::test {

struct KernelCounts {
  std::array<int64_t, static_cast<size_t>(KernelId::kCount)> calls{};

  int64_t operator[](KernelId id) const { return calls[static_cast<size_t>(id)]; }
  // The direct 3×3 kernels of any level.
  int64_t conv3x3() const {
    return (*this)[KernelId::kConv3x3Generic] + (*this)[KernelId::kConv3x3Avx2] +
           (*this)[KernelId::kConv3x3Avx512];
  }
  bool operator==(const KernelCounts& o) const { return calls == o.calls; }
  bool operator!=(const KernelCounts& o) const { return calls != o.calls; }
};

// The kernel calls made while fn ran.
inline KernelCounts KernelCallsDuring(const std::function<void()>& fn) {
  KernelCounts before, after;
  for (size_t i = 0; i < before.calls.size(); ++i) before.calls[i] = KernelCalls(KernelId(i));
  fn();
  for (size_t i = 0; i < after.calls.size(); ++i) {
    after.calls[i] = KernelCalls(KernelId(i)) - before.calls[i];
  }
  return after;
}

// The conv3x3 kernel id of the level the kernels dispatch to now.
inline KernelId Conv3x3KernelOf(const char* level_name) {
  const auto level = ParseCpuLevel(level_name);
  if (level == CpuLevel::kAvx512) return KernelId::kConv3x3Avx512;
  if (level == CpuLevel::kAvx2) return KernelId::kConv3x3Avx2;
  return KernelId::kConv3x3Generic;
}

}  // namespace dippas::test
