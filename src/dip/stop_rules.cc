#include "dippas/dip/stop_rules.h"

#include <algorithm>

namespace dippas {

bool PlateauRule::Observe(int64_t iteration, double psnr, double target) {
  if (o_.plateau_window <= 0) return false;
  sum_ += psnr;
  max_ = std::max(max_, psnr);
  if (iteration % o_.plateau_window != 0) return false;
  const double w = static_cast<double>(o_.plateau_window);
  const double mean = sum_ / w;
  const double rate = (mean - previous_mean_) / w;  // NaN after the first window: no stop
  const double left = static_cast<double>(o_.max_iterations - iteration);
  const bool hopeless = rate <= 0 || max_ + rate * left < target;
  previous_mean_ = mean;
  sum_ = 0;
  max_ = -INFINITY;
  return hopeless && left > 0;
}

void PlateauRule::SetState(const std::array<double, 3>& s) {
  sum_ = s[0];
  max_ = s[1];
  previous_mean_ = s[2];
}

bool IsStall(const DipAttempt& a, const DipOptions& o) {
  // A network that has started to fit the image is past τ − 10 dB within a few hundred
  // iterations; one stopped later but above it had taken off and is slow, not stuck (the 128²
  // empty-pool stops at 3,500-4,500 iterations ended at 36-38 dB): another seed would cost as much
  // again.
  return a.stop_reason == "plateau" && a.pool_size == 0 &&
         (a.iterations == 2 * o.plateau_window || a.best_psnr < o.psnr_min - kStallMarginDb);
}

}  // namespace dippas
