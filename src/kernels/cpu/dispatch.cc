#include "dippas/kernels/cpu/dispatch.h"

#include <array>
#include <atomic>
#include <cstdlib>
#include <stdexcept>

namespace dippas {
namespace {

std::array<std::atomic<int64_t>, static_cast<size_t>(KernelId::kCount)> g_calls{};

}  // namespace

const char* CpuLevelName(CpuLevel level) {
  switch (level) {
    case CpuLevel::kAvx512:
      return "avx512";
    case CpuLevel::kAvx2:
      return "avx2";
    case CpuLevel::kGeneric:
      break;
  }
  return "generic";
}

std::optional<CpuLevel> ParseCpuLevel(const std::string& name) {
  for (CpuLevel l : {CpuLevel::kGeneric, CpuLevel::kAvx2, CpuLevel::kAvx512}) {
    if (name == CpuLevelName(l)) return l;
  }
  return std::nullopt;
}

bool CpuHas(CpuLevel level) {
#if defined(__x86_64__) && defined(__GNUC__)
  switch (level) {
    case CpuLevel::kAvx512:
      return __builtin_cpu_supports("avx512f") && CpuHas(CpuLevel::kAvx2);
    case CpuLevel::kAvx2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case CpuLevel::kGeneric:
      return true;
  }
  return false;
#else
  return level == CpuLevel::kGeneric;
#endif
}

CpuLevel CpuMaxLevel() {
  if (CpuHas(CpuLevel::kAvx512)) return CpuLevel::kAvx512;
  if (CpuHas(CpuLevel::kAvx2)) return CpuLevel::kAvx2;
  return CpuLevel::kGeneric;
}

CpuLevel ResolveCpuLevel(const char* env, CpuLevel max) {
  if (env == nullptr || *env == '\0') return max;
  const auto level = ParseCpuLevel(env);
  if (!level) {
    throw std::runtime_error(std::string("DIPPAS_CPU_LEVEL=") + env +
                             ": unknown level (generic, avx2 or avx512)");
  }
  if (static_cast<int>(*level) > static_cast<int>(max)) {
    throw std::runtime_error(std::string("DIPPAS_CPU_LEVEL=") + env + ": this CPU lacks " +
                             CpuLevelName(*level) + " (it runs up to " + CpuLevelName(max) + ")");
  }
  return *level;
}

CpuLevel CpuDispatchLevel() { return ResolveCpuLevel(std::getenv("DIPPAS_CPU_LEVEL"), CpuMaxLevel()); }

void CountKernel(KernelId id) {
  g_calls[static_cast<size_t>(id)].fetch_add(1, std::memory_order_relaxed);
}

int64_t KernelCalls(KernelId id) {
  return g_calls[static_cast<size_t>(id)].load(std::memory_order_relaxed);
}

}  // namespace dippas
