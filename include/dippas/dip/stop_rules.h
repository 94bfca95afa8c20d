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

// How many more iterations a run is expected to take, for its progress display: from the PSNR
// trend, where psnr_stop will be crossed; capped by max_iterations, and by pool_max at the rate
// candidates are coming. The best PSNR so far, which is what the stop rule waits on, rises
// about linearly in log(iteration) once the fit has started: the line fitted over the last half
// of the iterations is carried to the target. Tested on recorded histories (tests/data/).
class StopProjection {
 public:
  explicit StopProjection(const DipOptions& o) : o_(o) {}
  // Feeds one iteration (1-based, in order) and the pool size after it.
  void Observe(int64_t iteration, double psnr, int64_t pool_size);
  // Iterations left until the run is expected to stop; nullopt in its first 20 iterations or
  // before the best PSNR has risen (the trend is not there yet).
  std::optional<int64_t> IterationsLeft() const;

 private:
  const DipOptions& o_;
  std::vector<float> best_;              // best PSNR after each iteration
  std::vector<int64_t> pool_;            // pool size after each iteration
};

}  // namespace dippas
