// Psnr8 (SPEC §4) against hand-computed values.
#include "dippas/eval/psnr.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <limits>
#include <stdexcept>

namespace dippas {
namespace {

TEST(Psnr8, OnePixelOffByOne) {
  auto a = torch::full({3, 10, 10}, 100.0f);
  auto b = a.clone();
  b[1][4][7] = 101.0f;
  // mse = 1/300 → 10·log10(255²·300)
  EXPECT_NEAR(Psnr8(a, b), 10.0 * std::log10(65025.0 * 300.0), 1e-12);
  EXPECT_DOUBLE_EQ(Psnr8(a, b), Psnr8(b, a));
}

TEST(Psnr8, UniformDifference) {
  auto a = torch::zeros({2, 4, 3}, torch::kUInt8);
  auto b = torch::full({2, 4, 3}, 255, torch::kUInt8);
  EXPECT_NEAR(Psnr8(a, b), 0.0, 1e-12);  // mse = 255²
  auto c = torch::full({2, 4, 3}, 10, torch::kUInt8);
  EXPECT_NEAR(Psnr8(a, c), 10.0 * std::log10(65025.0 / 100.0), 1e-12);
}

TEST(Psnr8, IdenticalIsInfinite) {
  auto a = torch::rand({3, 8, 8}) * 255;
  EXPECT_EQ(Psnr8(a, a), std::numeric_limits<double>::infinity());
}

TEST(Psnr8, RoundsAndClampsFirst) {
  // 100.4 and 99.6 both round to 100; −7 clamps to 0 and 300 to 255.
  auto a = torch::tensor({100.4, -7.0, 300.0, 12.5});
  auto b = torch::tensor({99.6, 0.0, 255.0, 13.0});
  EXPECT_EQ(Psnr8(a, b), std::numeric_limits<double>::infinity());  // 12.5 → 13 (half away)
  auto c = torch::tensor({100.4, 0.0, 255.0, 12.4});  // 12.4 → 12: one value off by 1 of 4
  EXPECT_NEAR(Psnr8(a, c), 10.0 * std::log10(65025.0 * 4.0), 1e-12);
}

TEST(Psnr8, RefusesMismatchedShapes) {
  EXPECT_THROW(Psnr8(torch::zeros({3, 4, 4}), torch::zeros({3, 4, 5})), std::invalid_argument);
  EXPECT_THROW(Psnr8(torch::zeros({0}), torch::zeros({0})), std::invalid_argument);
}

}  // namespace
}  // namespace dippas
