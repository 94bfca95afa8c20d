// The rules that end a DIP run before max_iterations, besides psnr_stop (the paper's): the
// plateau rule (DipOptions::plateau_window) and the stall test behind DipOptions::restarts. Both
// are dippas's additions; neither is in the paper.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "dippas/dip/options.h"

namespace dippas {

// The plateau stop rule (DipOptions::plateau_window W): every W iterations from the second
// window on, stop when the best PSNR of the last window plus the rise of the window means,
// carried over the iterations left, stays below the target.
class PlateauRule {
 public:
  explicit PlateauRule(const DipOptions& o) : o_(o) {}
  // Feeds one iteration's PSNR; true when the run should stop there.
  bool Observe(int64_t iteration, double psnr, double target);
  // For checkpoints: {window sum, window max, previous mean}.
  std::array<double, 3> State() const { return {sum_, max_, previous_mean_}; }
  void SetState(const std::array<double, 3>& s);

 private:
  const DipOptions& o_;
  double sum_ = 0, max_ = -INFINITY, previous_mean_ = NAN;
};

// One attempt of a run (DipOptions::restarts).
struct DipAttempt {
  int64_t seed = 0;
  int64_t iterations = 0;
  std::string stop_reason;
  int64_t pool_size = 0;
  double best_psnr = 0;
};

// A stall, which DipOptions::restarts starts again: the plateau rule stopped the attempt with the
// pool empty, at its first check (2·plateau_window iterations) or more than kStallMarginDb below τ.
inline constexpr double kStallMarginDb = 10.0;
bool IsStall(const DipAttempt& attempt, const DipOptions& options);

// How many more iterations a run is expected to take, for its progress display: where the best
// PSNR so far (what psnr_stop waits on) will cross the target, from the slowing of its rise over
// the last two windows (stop_rules.cc); capped by max_iterations, and by pool_max at the rate
// candidates come. Tested on recorded 128² histories (tests/data/).
class StopProjection {
 public:
  explicit StopProjection(const DipOptions& o) : o_(o) {}
  // Feeds one iteration (1-based, in order) and the pool size after it.
  void Observe(int64_t iteration, double psnr, int64_t pool_size);
  // Iterations left until the run is expected to stop; nullopt while its windows are not filled
  // (the first 51 iterations at least).
  std::optional<int64_t> IterationsLeft() const;

 private:
  const DipOptions& o_;
  std::vector<float> best_;              // best PSNR after each iteration
  std::vector<int64_t> pool_;            // pool size after each iteration
};

}  // namespace dippas
