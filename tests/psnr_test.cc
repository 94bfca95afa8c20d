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
// Stuck: at 0 or 255 in some channel where the input is more than 64 levels away there; a bright
// or dark pixel the output matches, or one a little off, is not.
TEST(StuckPixels, CountsSaturatedOutputsWhereThePhotoIsNot) {
  auto input = torch::full({3, 4, 5}, 128.0);
  input[0][0][0] = 250;  // a bright pixel: 255 there is not stuck
  input[1][3][4] = 10;   // a dark one: 0 there is not stuck
  auto output = input.clone();
  output[0][0][0] = 255;
  output[1][3][4] = 0;
  EXPECT_EQ(StuckPixels(output, input), 0);
  output[2][1][1] = 255;  // 127 levels off: stuck
  output[0][2][3] = 0;    // 128 levels off: stuck
  output[1][2][3] = 0;    // the same pixel in another channel: counted once
  output[0][1][2] = 254.6;  // rounds to 255: stuck
  output[0][3][3] = 180;  // far off but not saturated: not stuck
  EXPECT_EQ(StuckPixels(output, input), 3);
  EXPECT_EQ(StuckPixels(output, input, 130), 0);  // every stuck one is within 130 levels
  EXPECT_THROW(StuckPixels(output, input.slice(1, 0, 2)), std::invalid_argument);
  EXPECT_THROW(StuckPixels(output[0], input[0]), std::invalid_argument);
}

}  // namespace dippas
