// Direct 3×3 convolution (stride 1, zero padding 1) on plain float arrays: the CPU kernels behind
// dip/network.h's direct convolutions (NetworkOptions::direct_conv).
//
// Why: oneDNN (LibTorch 1.13's CPU convolution) runs the network's narrow full- and
// half-resolution 3×3 convolutions (4→8, 8→13, 8→17, 17→26, … channels) at 20–90 GFLOP/s on two
// cores, its backward slowest, against 150–300 for the wide ones deeper down. Here each output
// row is computed from a zero-padded band of input rows held in cache, a tile of output channels
// × pixels kept in vector registers; the weights' gradient sums its products in a fixed order
// (bands of rows, then their sum in double), so every result has the same bits for any thread
// count. Compiled for AVX-512, AVX2 + FMA and plain vectors, chosen at run time.
#pragma once

#include <cstdint>
#include <string>

namespace dippas {

// One image: `cin` input planes of height × width, contiguous.
struct Conv3x3Shape {
  int64_t cin = 1, cout = 1, height = 1, width = 1;
};

// True when the kernels take this shape: every size positive, width a multiple of 16. The three
// functions below refuse any other shape, or a null array, with std::invalid_argument.
bool Conv3x3Supported(Conv3x3Shape s);

// out (cout, H, W) = Σ_ci Σ_k w[co, ci, ky, kx]·in[ci, y + ky − 1, x + kx − 1] + bias[co]
// (zero outside the image; bias may be null).
void Conv3x3Forward(const float* in, const float* w, const float* bias, Conv3x3Shape s, float* out,
                    int threads);

// The input's gradient (cin, H, W) from the output's (cout, H, W): the convolution of grad_out
// with the weights transposed and turned by 180°.
void Conv3x3BackwardInput(const float* grad_out, const float* w, Conv3x3Shape s, float* grad_in,
                          int threads);

// The weights' gradient (cout, cin, 3, 3), written (not accumulated): Σ over pixels of
// grad_out[co]·in[ci] shifted by the tap.
void Conv3x3BackwardWeight(const float* in, const float* grad_out, Conv3x3Shape s, float* grad_w,
                           int threads);

// "avx512", "avx2" or "generic": the kernels these functions run (the best this CPU has, capped
// by DIPPAS_CPU_LEVEL (kernels/cpu/dispatch.h), unless SelectConv3x3Kernel chose others).
const char* Conv3x3Kernel();

// Runs the kernels of that name from now on (tests and benchmarks compare them); false, and no
// change, when the name is unknown or this CPU lacks their instructions.
bool SelectConv3x3Kernel(const std::string& name);

}  // namespace dippas
