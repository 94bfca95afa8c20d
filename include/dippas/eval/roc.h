// Dataset-level statistics of SPEC §4: ROC curve, AUC (Mann–Whitney, ties count
// one half), TPR at a given FPR, and the trade-off C. Plain C++, no tensors.
#pragma once

#include <optional>
#include <vector>

namespace dippas {

struct RocPoint {
  double fpr = 0;
  double tpr = 0;
  double threshold = 0;  // scores ≥ threshold are called positive
};

// AUC = P(pos > neg) + ½·P(pos = neg). nullopt when either set is empty.
// NaN scores are ignored.
std::optional<double> RocAuc(const std::vector<double>& positives, const std::vector<double>& negatives);

// The ROC curve from (0,0) to (1,1), one point per distinct threshold.
std::vector<RocPoint> RocCurve(const std::vector<double>& positives, const std::vector<double>& negatives);

// Highest TPR among thresholds whose FPR ≤ max_fpr.
std::optional<double> TprAtFpr(const std::vector<double>& positives, const std::vector<double>& negatives,
                               double max_fpr);

// Paper eq. 12: C = PSNR_mean·(1 − 2|AUC − 0.5|).
double TradeOffC(double psnr_mean, double auc);

}  // namespace dippas
