// dippas-bench: the benchmarks of `dippas bench` without OpenCV or CLI11, so
// that it builds wherever LibTorch does (the GPU machine).
//   dippas-bench prnu|dip [--size N] [--iterations N] [--repeats N] [--device cpu|cuda|auto]
//                         [--threads N]
//   dippas-bench whole --image I.npy [--prnu K.npy] [--judge K.npy]... [--prnu-weight λ]
//                      [--prnu-block B] [--lr R] [--seed N] [--max-iterations N] [--tile-size N]
//                      [--device ...] [--threads N]
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>

#include "dippas/pipeline/bench_whole.h"
#include "dippas/util/bench.h"
#include "dippas/util/runtime.h"

namespace {

const char* const kUsage =
    "usage: dippas-bench prnu|dip [--size N] [--iterations N] [--repeats N] [--device "
    "auto|cpu|cuda] [--threads N]\n"
    "       dippas-bench whole --image I.npy [--prnu K.npy] [--judge K.npy]... [--prnu-weight L] "
    "[--prnu-block B]\n"
    "                          [--lr R] [--seed N] [--max-iterations N] [--tile-size N] [--device "
    "auto|cpu|cuda] [--threads N]\n"
    "  whole: one anonymization from .npy files (image: the R, G, B planes stacked, (3H, W), "
    "0..255);\n"
    "  without --prnu it runs blind. Prints one JSON line.\n";

int UsageError(const std::string& message) {
  std::cerr << "dippas-bench: " << message << "\n" << kUsage;
  return 2;
}

bool ParseCount(const char* v, long* out) {
  char* end = nullptr;
  const long n = std::strtol(v, &end, 10);
  if (!end || *end != '\0' || end == v || n < 0) return false;
  *out = n;
  return true;
}

bool ParseReal(const char* v, double* out) {
  char* end = nullptr;
  const double x = std::strtod(v, &end);
  if (!end || *end != '\0' || end == v) return false;
  *out = x;
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return UsageError("which benchmark? prnu, dip or whole");
  const std::string what = argv[1];
  if (what != "prnu" && what != "dip" && what != "whole")
    return UsageError("unknown benchmark '" + what + "'");
  long size = 512, iterations = 20, repeats = 9, threads = dippas::DefaultThreads();
  std::string device = "auto";
  dippas::WholeBenchOptions whole;
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) return UsageError(a + " needs a value");
    const char* v = argv[++i];
    long n = 0;
    double x = 0;
    const bool count = ParseCount(v, &n);
    const bool positive = count && n > 0;
    if (a == "--device") {
      device = v;
    } else if (a == "--image") {
      whole.image = v;
    } else if (a == "--prnu") {
      whole.prnu = v;
    } else if (a == "--judge") {
      whole.judges.push_back(v);
    } else if (a == "--prnu-weight" || a == "--lr") {
      if (!ParseReal(v, &x)) return UsageError(a + " expects a number, got '" + v + "'");
      (a == "--lr" ? whole.dip.lr : whole.dip.prnu_weight) = x;
    } else if (a == "--prnu-block" || a == "--seed" || a == "--tile-size") {
      if (!count) return UsageError(a + " expects an integer ≥ 0, got '" + v + "'");
      (a == "--prnu-block" ? whole.dip.prnu_block
       : a == "--seed"     ? whole.dip.seed
                           : whole.dip.tile_size) = n;
    } else if (!positive) {
      return UsageError(a + " expects a positive integer, got '" + v + "'");
    } else if (a == "--size") {
      size = n;
    } else if (a == "--iterations") {
      iterations = n;
    } else if (a == "--max-iterations") {
      whole.dip.max_iterations = n;
    } else if (a == "--repeats") {
      repeats = n;
    } else if (a == "--threads") {
      threads = n;
    } else {
      return UsageError("unknown option " + a);
    }
  }
  try {
    dippas::SetThreads(static_cast<int>(threads));
    device = dippas::ResolveDevice(device);
    if (what == "prnu") dippas::BenchPrnu(size, static_cast<int>(repeats), device);
    if (what == "dip") dippas::BenchDip(size, iterations, device, dippas::DipOptions{});
    if (what == "whole") {
      whole.device = device;
      dippas::BenchWhole(whole);
    }
  } catch (const std::exception& e) {
    std::cerr << "dippas-bench: error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
