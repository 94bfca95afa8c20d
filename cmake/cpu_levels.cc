// Prints the CPU dispatch levels this machine runs (kernels/cpu/dispatch.h's CpuHas), for
// tests/CMakeLists.txt: "generic", then "avx2" and "avx512" where present, ';'-separated.
#include <cstdio>

int main() {
  std::printf("generic");
#if defined(__x86_64__) && defined(__GNUC__)
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (avx2) std::printf(";avx2");
  if (avx2 && __builtin_cpu_supports("avx512f")) std::printf(";avx512");
#endif
  return 0;
}
