// The post-processing sweep (`dippas assemble`): re-assemble Î from a saved candidate pool
// (anonymize --save-pool) for every combination of block size B, top L, PSNR threshold τ and
// pool limit M, without re-running the DIP. The pool is streamed once; one image per combination,
// plus sweep.csv and sweep.json with PSNR, NCC and PCE of each.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace dippas {

// What `dippas assemble` was asked to do. M keeps the first M candidates at τ: what the same run
// with pool_max = M keeps, since it runs the same iterations up to its M-th candidate and stops.
// Without M values the file names carry no M.
struct SweepOptions {
  std::string pool;                  // folder written by anonymize --save-pool
  std::string prnu;                  // P (aware mode)
  bool blind = false;                // P = residual(original)
  std::string image;                 // original I (default: the path in pool.json)
  std::string eval_prnu;             // K for the NCC/PCE columns (default: --prnu)
  std::optional<int64_t> crop;       // centre crop side (default: the pool's, else 0)
  std::vector<int64_t> block_sizes;  // B values
  std::vector<int64_t> tops;         // L values
  std::vector<double> taus;          // τ values (dB)
  std::vector<int64_t> pool_maxes;   // M values: the first M at τ, as pool_max = M (0, none: all)
  std::optional<double> sigma;       // residual σ (default: the pool's, else 3)
  bool order_by_abs = false;         // rank candidates by |ρ| (false: the paper's order)
  // w: rank by P/σ + w·W/σ, W the original's residual (aware mode; default: the pool's, else 0)
  std::optional<double> select_residual;
  std::string out_dir;               // images, sweep.csv, sweep.json
  bool quiet = false;                // no progress display, no summary line

  // std::invalid_argument naming the option for a non-finite τ, a negative M, or a
  // select_residual outside [0, 100] or with --blind. (Whether P is
  // given, and B and L against the pool's image size, are checked by RunSweep, which reads the
  // pool.)
  void Check() const;
};

// The outcome.
struct SweepResult {
  int64_t images = 0;   // assembled images written
  int64_t skipped = 0;  // combinations without a candidate at their τ
  std::string csv_path, json_path;
};

// Called with an informational line (the pool's size) when not quiet, and with warnings.
struct SweepMessages {
  std::function<void(const std::string&)> info;
  std::function<void(const std::string&)> warning;  // without the "warning: " prefix
};

// Runs the sweep. Every (B, L) is checked, and no output may be an input (pool, image,
// patterns), before any work; std::invalid_argument / std::runtime_error name the file.
SweepResult RunSweep(const SweepOptions& options, const SweepMessages& messages);

}  // namespace dippas
