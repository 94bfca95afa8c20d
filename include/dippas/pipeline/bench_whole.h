// One whole anonymization from .npy files, for machines without OpenCV (the GPU machine): the
// flow of `dippas anonymize` (tiles when the image is larger than tile_size), timed end to end and
// scored against judge fingerprints before and after. A benchmark: it prints, it asserts nothing.
#pragma once

#include <string>
#include <vector>

#include "dippas/dip/options.h"

namespace dippas {

struct WholeBenchOptions {
  std::string image;                // (3H, W) .npy: the R, G, B planes stacked, values 0..255
  std::string prnu;                 // P = K, an (H, W) .npy; "" = blind (P = the image's residual)
  std::vector<std::string> judges;  // (H, W) .npy fingerprints scored by NCC before and after
  std::string device = "cpu";       // "cpu" or "cuda" (resolved)
  DipOptions dip;                   // the DIP settings (the paper's by default)
  void Check() const;               // throws std::invalid_argument naming the problem
};

// Prints one JSON line: image, settings that differ by run (λ, lr, seed), iterations, stop reason,
// tiles, γ, pool size, seconds (load, DIP, scoring, total), PSNR, NCC before/after per judge,
// peak memory (GPU allocator on CUDA, resident set on the CPU).
void BenchWhole(const WholeBenchOptions& options);

}  // namespace dippas
