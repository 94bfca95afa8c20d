// The network's CPU operators as LibTorch autograd functions over the hand-written kernels: the
// direct 3×3 convolution (conv3x3.h), the chunked matrix product (chunked_sgemm.h), the fused
// BatchNorm + LeakyReLU (batch_norm.h), and the two reshuffles around the first MultiRes block's
// taps product. dip/network.h decides where each applies; these compute it.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <utility>

namespace dippas {

// (out3, out1) from y (N, 9·c3 + c1, H·W), the taps product of a fused 3×3 + 1×1 convolution:
// out3 = the nine shifted taps summed + b3 (N, c3, H, W), out1 = the last c1 rows + b1.
std::pair<torch::Tensor, torch::Tensor> TapsToOutputs(const torch::Tensor& y, const torch::Tensor& b3,
                                                      const torch::Tensor& b1, int64_t height,
                                                      int64_t width);

// y (R, H·W) + the nearest ×2 upsampling of y_low (R, H/2·W/2).
torch::Tensor AddUpsampledTaps(const torch::Tensor& y, const torch::Tensor& y_low, int64_t height,
                               int64_t width);

// rows (M×K) · x (K×N), 2-D contiguous float CPU tensors, by ChunkedSgemm (needs
// HaveChunkedSgemm()), forward and both gradients.
torch::Tensor ChunkedMatmul(const torch::Tensor& rows, const torch::Tensor& x);

// Batch mean and biased variance of each channel (c doubles), for the running statistics.
struct NormStats {
  torch::Tensor mean, var;
};

// y = post(BN(pre(x + x2))) with training statistics, by NormActForward/Backward; without has_x2,
// x2 is x again and unused. Contiguous float CPU tensors.
torch::Tensor FusedNormActivate(const torch::Tensor& x, const torch::Tensor& x2,
                                const torch::Tensor& weight, const torch::Tensor& bias,
                                bool has_x2, double pre_slope, double post_slope, double eps,
                                NormStats* stats);

// conv(x, w) + b of a 3×3 convolution (stride 1, padding 1) by the direct kernels, sample by
// sample, forward and the gradients of x, w and b. x (N, Cin, H, W) float on the CPU, W a
// multiple of 16 (Conv3x3Supported).
torch::Tensor Conv3x3Direct(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b);

}  // namespace dippas
