// PSNR between 8-bit images (SPEC §4): 10·log10(255² / mean((a − b)²)) over all pixels and
// channels, in double, on values rounded to 8 bits.
#pragma once

#include <torch/types.h>

namespace dippas {

// a and b: same shape, values on the 0..255 scale (any dtype, any device). Both are rounded
// (half away from zero, like the image writer) and clamped to 0..255 first, so a float image
// and its saved PNG score alike. +inf when identical after rounding (callers reporting JSON
// turn that into null). Throws std::invalid_argument on a shape mismatch or empty tensors.
double Psnr8(const torch::Tensor& a, const torch::Tensor& b);

}  // namespace dippas
