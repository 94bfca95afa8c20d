// ROC statistics against values worked out by hand.
#include <gtest/gtest.h>

#include <cmath>

#include "dippas/eval/roc.h"

namespace dippas {
namespace {

TEST(Roc, PerfectSeparation) {
  EXPECT_DOUBLE_EQ(*RocAuc({3, 4, 5}, {0, 1, 2}), 1.0);
  EXPECT_DOUBLE_EQ(*RocAuc({0, 1}, {3, 4}), 0.0);
}

TEST(Roc, TiesCountHalf) {
  // pos {1,2}, neg {1,0}: pairs (1>1? tie=½)(1>0=1)(2>1=1)(2>0=1) → 3.5/4.
  EXPECT_DOUBLE_EQ(*RocAuc({1, 2}, {1, 0}), 3.5 / 4);
  // All scores equal: 0.5.
  EXPECT_DOUBLE_EQ(*RocAuc({7, 7, 7}, {7, 7}), 0.5);
}

TEST(Roc, HandWorkedMixed) {
  // pos {0.9, 0.4, 0.6}, neg {0.5, 0.1, 0.7, 0.6}
  // 0.9 beats 4; 0.4 beats 1 (0.1); 0.6 beats 0.5,0.1 and ties 0.6 → 2.5. Total 7.5/12.
  EXPECT_DOUBLE_EQ(*RocAuc({0.9, 0.4, 0.6}, {0.5, 0.1, 0.7, 0.6}), 7.5 / 12);
}

TEST(Roc, EmptyOrNanHandled) {
  EXPECT_FALSE(RocAuc({}, {1}).has_value());
  EXPECT_FALSE(RocAuc({1}, {}).has_value());
  EXPECT_DOUBLE_EQ(*RocAuc({2, NAN}, {1}), 1.0);
}

TEST(Roc, CurveEndpointsAndTpr) {
  auto c = RocCurve({0.9, 0.4, 0.6}, {0.5, 0.1, 0.7, 0.6});
  ASSERT_FALSE(c.empty());
  EXPECT_DOUBLE_EQ(c.front().fpr, 0);
  EXPECT_DOUBLE_EQ(c.front().tpr, 0);
  EXPECT_DOUBLE_EQ(c.back().fpr, 1);
  EXPECT_DOUBLE_EQ(c.back().tpr, 1);
  // At FPR 0 only the threshold 0.9 qualifies: TPR 1/3.
  EXPECT_DOUBLE_EQ(*TprAtFpr({0.9, 0.4, 0.6}, {0.5, 0.1, 0.7, 0.6}, 0.01), 1.0 / 3);
  // At FPR ≤ 0.25 (threshold 0.7): TPR still 1/3; at 0.5 (threshold 0.6): 2/3.
  EXPECT_DOUBLE_EQ(*TprAtFpr({0.9, 0.4, 0.6}, {0.5, 0.1, 0.7, 0.6}, 0.5), 2.0 / 3);
  // All-equal scores: only the all-or-nothing thresholds, TPR 0 at FPR 0.
  EXPECT_DOUBLE_EQ(*TprAtFpr({1, 1}, {1, 1}, 0.01), 0.0);
}

TEST(Roc, OneDeviceNoNegatives) {
  // A dataset of one device has no negatives: no curve and no TPR at any FPR, not 0 or 1.
  EXPECT_TRUE(RocCurve({0.5, 0.7}, {}).empty());
  EXPECT_FALSE(TprAtFpr({0.5, 0.7}, {}, 0.01).has_value());
  EXPECT_FALSE(TprAtFpr({}, {0.1}, 0.01).has_value());
  // Only NaN negatives (undefined NCCs) are no negatives either.
  EXPECT_FALSE(RocAuc({0.5}, {NAN, NAN}).has_value());
}

TEST(Roc, TradeOff) {
  EXPECT_DOUBLE_EQ(TradeOffC(40, 0.5), 40);
  EXPECT_DOUBLE_EQ(TradeOffC(40, 1.0), 0);
  EXPECT_DOUBLE_EQ(TradeOffC(40, 0.75), 20);
}

}  // namespace
}  // namespace dippas
