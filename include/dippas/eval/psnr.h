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

// Pixels of a (C,H,W) output at 0 or 255 in some channel where the input, in that channel, is
// more than `margin` levels away (both rounded to 8 bits): an output sigmoid saturated where the
// photo is not. The network hardly moves such a pixel again, and a few of them can hold the PSNR
// below τ (DipOptions::sigmoid_floor). Throws std::invalid_argument as Psnr8.
int64_t StuckPixels(const torch::Tensor& output, const torch::Tensor& input, double margin = 64);

}  // namespace dippas
