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
  // The stop PSNR: best = a + b·ln(t) least-squares over t in [n/2, n].
  if (best_.back() > o_.psnr_stop) return 0;
  double sx = 0, sy = 0, sxx = 0, sxy = 0, m = 0;
  for (int64_t t = n / 2; t <= n; ++t) {
    const double x = std::log(static_cast<double>(t)), y = best_[static_cast<size_t>(t - 1)];
    sx += x;
    sy += y;
    sxx += x * x;
    sxy += x * y;
    m += 1;
  }
  const double slope = (m * sxy - sx * sy) / (m * sxx - sx * sx);
  if (!(slope > 1e-9)) return best_.back() > best_.front() ? std::optional<int64_t>(left) : std::nullopt;
  const double intercept = (sy - slope * sx) / m;
  const double t_target = std::exp((o_.psnr_stop - intercept) / slope);
  if (std::isfinite(t_target) && t_target - static_cast<double>(n) < static_cast<double>(left)) {
    left = std::max<int64_t>(0, static_cast<int64_t>(std::ceil(t_target)) - n);
  }
  return left;
}

}  // namespace dippas
