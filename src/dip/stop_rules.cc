#include "dippas/dip/stop_rules.h"

#include <algorithm>
#include <cmath>

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

void StopProjection::Observe(int64_t iteration, double psnr, int64_t pool_size) {
  if (iteration != static_cast<int64_t>(best_.size()) + 1) {  // a restart, or out of order
    best_.clear();
    pool_.clear();
    if (iteration != 1) return;
  }
  const float b = best_.empty() ? static_cast<float>(psnr)
                                : std::max(best_.back(), static_cast<float>(psnr));
  best_.push_back(std::isfinite(b) ? b : best_.empty() ? 0.0f : best_.back());
  pool_.push_back(pool_size);
}

std::optional<int64_t> StopProjection::IterationsLeft() const {
  const int64_t n = static_cast<int64_t>(best_.size());
  if (n < 20) return std::nullopt;
  const int64_t cap = std::max<int64_t>(0, o_.max_iterations - n);
  int64_t left = cap;
  // The pool limit: candidates over the last half, at their rate.
  if (o_.pool_max > 0 && pool_.back() > 0) {
    const int64_t half = n / 2;
    const double rate = static_cast<double>(pool_.back() - pool_[static_cast<size_t>(half - 1)]) /
                        static_cast<double>(n - half);
    if (rate > 0) {
      left = std::min<int64_t>(
          left, static_cast<int64_t>(std::ceil((o_.pool_max - pool_.back()) / rate)));
    }
  }
  // The stop PSNR, from the best PSNR's rise in the last two windows of w = max(25, n/5)
  // iterations: rates r1 (older) and r2 (recent) at mean levels P1 < P2. A rate that fell is
  // carried on falling as exp(−(P − P2)/s), s = (P2 − P1)/ln(r1/r2): the time to the target is
  // (s/r2)·(exp((T − P2)/s) − 1); a rate that did not fall, at r2 (no slowing seen yet). ×1.25:
  // the fits' rises slow down later than they show (measured on recorded 128² runs). A run whose
  // PSNR still climbs fast towards a knee (a sudden slowing a few dB below the target) is
  // projected too short until it reaches the knee: docs/configuration.md.
  const float target = static_cast<float>(o_.psnr_stop);
  if (best_.back() > target) return 0;
  const int64_t w = std::max<int64_t>(25, n / 5);
  if (n < 2 * w + 1) return std::nullopt;
  const double p2 = best_[static_cast<size_t>(n - 1)], p1 = best_[static_cast<size_t>(n - 1 - w)],
               p0 = best_[static_cast<size_t>(n - 1 - 2 * w)];
  const double r2 = (p2 - p1) / static_cast<double>(w), r1 = (p1 - p0) / static_cast<double>(w);
  if (!(r2 > 1e-9)) return left;  // flat: only the limits bound it
  double needed = (target - p2) / r2;
  if (r1 > r2) {
    const double s = ((p2 + p1) / 2 - (p1 + p0) / 2) / std::log(r1 / r2);
    const double x = (target - p2) / s;
    needed = x > 50 ? INFINITY : s / r2 * std::expm1(x);
  }
  needed *= 1.25;
  if (needed < static_cast<double>(left)) left = static_cast<int64_t>(std::ceil(needed));
  return left;
}

}  // namespace dippas
