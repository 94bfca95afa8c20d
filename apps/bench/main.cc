// dippas-bench: the benchmarks of `dippas bench` without OpenCV or CLI11, so
// that it builds wherever LibTorch does (the GPU machine).
//   dippas-bench prnu|dip [--size N] [--iterations N] [--repeats N] [--device cpu|cuda|auto] [--threads N]
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>

#include "dippas/util/bench.h"
#include "dippas/util/runtime.h"

int main(int argc, char** argv) {
  const std::string usage =
      "usage: dippas-bench prnu|dip [--size N] [--iterations N] [--repeats N] [--device auto|cpu|cuda] "
      "[--threads N]\n";
  if (argc < 2 || (std::strcmp(argv[1], "prnu") != 0 && std::strcmp(argv[1], "dip") != 0)) {
    std::cerr << usage;
    return 2;
  }
  const std::string what = argv[1];
  long size = 512, iterations = 20, repeats = 9, threads = dippas::DefaultThreads();
  std::string device = "auto";
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) {
      std::cerr << "dippas-bench: " << a << " needs a value\n" << usage;
      return 2;
    }
    const char* v = argv[++i];
    char* end = nullptr;
    const long n = std::strtol(v, &end, 10);
    const bool number = end && *end == '\0' && n > 0;
    if (a == "--device") {
      device = v;
    } else if (!number) {
      std::cerr << "dippas-bench: " << a << " expects a positive integer, got '" << v << "'\n";
      return 2;
    } else if (a == "--size") {
      size = n;
    } else if (a == "--iterations") {
      iterations = n;
    } else if (a == "--repeats") {
      repeats = n;
    } else if (a == "--threads") {
      threads = n;
    } else {
      std::cerr << "dippas-bench: unknown option " << a << "\n" << usage;
      return 2;
    }
  }
  try {
    dippas::SetThreads(static_cast<int>(threads));
    device = dippas::ResolveDevice(device);
    if (what == "prnu") dippas::BenchPrnu(size, static_cast<int>(repeats), device);
    if (what == "dip") dippas::BenchDip(size, iterations, device, dippas::DipOptions{});
  } catch (const std::exception& e) {
    std::cerr << "dippas-bench: error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
