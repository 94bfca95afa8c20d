// Which instruction set the hand-written CPU kernels run (conv3x3.h, philox.h), and counters of
// the kernels run.
//
// Each kernel is compiled three times — plain vectors, AVX2 + FMA, AVX-512 — and the best one
// this CPU has runs. The environment variable DIPPAS_CPU_LEVEL (generic | avx2 | avx512) caps it,
// so that one machine can test every path: a level the CPU lacks, or an unknown name, is refused
// with an error naming the variable, never silently lowered. (Tests run the kernel and network
// tests once per level; a user has no reason to set it, but may, to compare.)
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace dippas {

enum class CpuLevel { kGeneric = 0, kAvx2 = 1, kAvx512 = 2 };

// "generic", "avx2", "avx512".
const char* CpuLevelName(CpuLevel level);
std::optional<CpuLevel> ParseCpuLevel(const std::string& name);

// The highest level this CPU runs: AVX-512 needs avx512f, AVX2 needs avx2 and fma.
CpuLevel CpuMaxLevel();
// True when this CPU runs `level`'s instructions.
bool CpuHas(CpuLevel level);

// The level the kernels start with: CpuMaxLevel(), or DIPPAS_CPU_LEVEL when it is set.
// std::runtime_error naming the variable when it holds an unknown level or one this CPU lacks.
CpuLevel CpuDispatchLevel();
// The same for a given variable's value (null or "" = unset) and CPU maximum.
CpuLevel ResolveCpuLevel(const char* env, CpuLevel max);

// How many times each hand-written kernel ran in this process (every thread): tests observe
// which path a layer took through these, not through the bits of its result. Counted once per
// call of the entry point, not per thread or band.
enum class KernelId {
  kConv3x3Generic,
  kConv3x3Avx2,
  kConv3x3Avx512,
  kChunkedSgemm,
  kNormAct,
  kTapsOutputs,
  kAddUpsampled,
  kPhiloxGeneric,
  kPhiloxAvx2,
  kPhiloxAvx512,
  kCount
};
void CountKernel(KernelId id);
int64_t KernelCalls(KernelId id);

}  // namespace dippas
