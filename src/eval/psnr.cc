#include "dippas/eval/psnr.h"

#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

namespace dippas {
namespace {

std::string Shape(const torch::Tensor& t) {
  std::string s = "(";
  for (int64_t i = 0; i < t.dim(); ++i) s += (i ? "," : "") + std::to_string(t.size(i));
  return s + ")";
}

torch::Tensor To8Bit(const torch::Tensor& t) {
  return torch::floor(t.to(torch::kFloat64) + 0.5).clamp(0, 255);
}

}  // namespace

double Psnr8(const torch::Tensor& a, const torch::Tensor& b) {
  if (!a.defined() || !b.defined() || a.numel() == 0 || !a.sizes().equals(b.sizes())) {
    throw std::invalid_argument("PSNR needs two images of the same non-empty shape, got " +
                                (a.defined() ? Shape(a) : std::string("undefined")) + " and " +
                                (b.defined() ? Shape(b) : std::string("undefined")));
  }
  const double mse = (To8Bit(a) - To8Bit(b).to(a.device())).square().mean().item<double>();
  if (mse == 0) return std::numeric_limits<double>::infinity();
  return 10.0 * std::log10(255.0 * 255.0 / mse);
}

int64_t StuckPixels(const torch::Tensor& output, const torch::Tensor& input, double margin) {
  if (!output.defined() || !input.defined() || output.dim() != 3 ||
      !output.sizes().equals(input.sizes())) {
    throw std::invalid_argument("StuckPixels needs two (C,H,W) images of the same shape, got " +
                                (output.defined() ? Shape(output) : std::string("undefined")) +
                                " and " + (input.defined() ? Shape(input) : std::string("undefined")));
  }
  const auto o = To8Bit(output), i = To8Bit(input).to(output.device());
  const auto stuck = ((o == 255) & (i < 255 - margin)) | ((o == 0) & (i > margin));
  return stuck.any(0).sum().item<int64_t>();
}

}  // namespace dippas
