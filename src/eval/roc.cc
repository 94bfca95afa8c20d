#include "dippas/eval/roc.h"

#include <algorithm>
#include <cmath>
#include <utility>

namespace dippas {
namespace {

std::vector<double> Finite(const std::vector<double>& v) {
  std::vector<double> out;
  for (double x : v) {
    if (!std::isnan(x)) out.push_back(x);
  }
  return out;
}

}  // namespace

std::optional<double> RocAuc(const std::vector<double>& positives, const std::vector<double>& negatives) {
  auto pos = Finite(positives), neg = Finite(negatives);
  if (pos.empty() || neg.empty()) return std::nullopt;
  // Rank-sum with midranks for ties: O((P+N) log(P+N)).
  std::vector<std::pair<double, int>> all;
  for (double x : pos) all.push_back({x, 1});
  for (double x : neg) all.push_back({x, 0});
  std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  double rank_sum = 0;
  for (size_t i = 0; i < all.size();) {
    size_t j = i;
    while (j < all.size() && all[j].first == all[i].first) ++j;
    const double midrank = 0.5 * static_cast<double>(i + 1 + j);  // ranks i+1..j
    for (size_t k = i; k < j; ++k) {
      if (all[k].second) rank_sum += midrank;
    }
    i = j;
  }
  const double p = static_cast<double>(pos.size()), n = static_cast<double>(neg.size());
  return (rank_sum - p * (p + 1) / 2) / (p * n);
}

std::vector<RocPoint> RocCurve(const std::vector<double>& positives, const std::vector<double>& negatives) {
  auto pos = Finite(positives), neg = Finite(negatives);
  std::vector<RocPoint> curve;
  if (pos.empty() || neg.empty()) return curve;
  std::vector<double> thresholds(pos);
  thresholds.insert(thresholds.end(), neg.begin(), neg.end());
  std::sort(thresholds.begin(), thresholds.end(), std::greater<double>());
  thresholds.erase(std::unique(thresholds.begin(), thresholds.end()), thresholds.end());
  std::sort(pos.begin(), pos.end());
  std::sort(neg.begin(), neg.end());
  auto count_ge = [](const std::vector<double>& s, double t) {
    return static_cast<double>(s.end() - std::lower_bound(s.begin(), s.end(), t));
  };
  curve.push_back({0.0, 0.0, INFINITY});
  for (double t : thresholds) {
    curve.push_back({count_ge(neg, t) / static_cast<double>(neg.size()),
                     count_ge(pos, t) / static_cast<double>(pos.size()), t});
  }
  return curve;
}

std::optional<double> TprAtFpr(const std::vector<double>& positives, const std::vector<double>& negatives,
                               double max_fpr) {
  auto curve = RocCurve(positives, negatives);
  if (curve.empty()) return std::nullopt;
  double best = 0;
  for (const auto& p : curve) {
    if (p.fpr <= max_fpr + 1e-12) best = std::max(best, p.tpr);
  }
  return best;
}

double TradeOffC(double psnr_mean, double auc) { return psnr_mean * (1.0 - 2.0 * std::fabs(auc - 0.5)); }

}  // namespace dippas
