// The DIP generator f_φ (SPEC §5): a multi-resolution U-Net (MultiResUNet)
// mapping a fixed noise tensor z (N, depth, H, W) to an image (N, out, H, W)
// in (0, 1). Built from conv units, MultiRes blocks and length-1 res paths.
// The PRNU gain γ is not part of the network; the DIP loop owns it.
#pragma once

#include <torch/torch.h>

#include <array>
#include <cstdint>
#include <utility>
#include <vector>

namespace dippas {

// Widths of the network; the defaults are the official ones and give
// 2,219,718 trainable parameters.
struct NetworkOptions {
  int64_t input_depth = 512;                           // channels of the input noise z
  std::vector<int64_t> filters{16, 32, 64, 128, 256};  // U of the MultiRes block per level
  std::vector<int64_t> skips{16, 32, 64, 128};         // res-path width per level but the deepest
  double alpha = 1.67;                                 // MultiRes width factor: W = alpha·U
  int64_t output_channels = 3;                         // channels of the output image
  // On the CPU, the first block's two convolutions on z (3×3 → c1 and 1×1 shortcut) as one
  // matrix product of all their taps with z, then the 3×3 taps shifted and summed: the same
  // sums in another order (outputs equal to ~1e-6), ~2× faster than LibTorch's convolutions
  // for 512 input channels and 29 outputs. false = the convolutions (earlier dippas builds).
  bool fused_input = true;
  // On the CPU, each BatchNorm with the LeakyReLU and the sum next to it as one fused operation
  // (kernels/cpu/batch_norm.h): the same function, its sums in another order (outputs equal to
  // ~1e-6); the whole network ~5 % faster. false = LibTorch's operators (earlier dippas builds).
  bool fused_norm = true;
  // On the CPU, the last decoder block's 3×3 and 1×1 shortcut convolutions (on the skip and the
  // upsampled features, 67 channels by default) as FusedConv3x3And1x1, as fused_input does for
  // the first block: outputs equal to ~1e-6; the whole iteration ~5 % faster at 256² and 512².
  // false = the convolutions (earlier dippas builds).
  bool fused_decoder = true;
  // With fused_decoder, on the CPU: that block's product reads the deeper level's features
  // (51 of the 67 channels) before their nearest ×2 upsampling and upsamples its result, as a
  // per-pixel product commutes with it: 4× fewer multiply-adds for those channels, and no
  // upsampled copy or concatenation. The same function, the skip's and the deeper channels'
  // sums added last (outputs equal to ~1e-6). false = the product on the concatenation.
  bool fused_upsample = true;
  // On the CPU, the stride-1 convolutions of the conv units and the head on images at least
  // kDirectConvMinWidth wide, and the narrow ones on images down to kDirectConvNarrowMinWidth
  // (DirectConvApplies): 3×3 by kernels/cpu/conv3x3.h's direct kernels (width a multiple of 16),
  // 1×1 as TapsProduct's chunked matrix product (DirectConvApplies). The same sums in another
  // order (outputs equal to ~1e-6); oneDNN is 1.1–7× slower on these narrow layers (3 to 276
  // channels), its backward slowest. false = LibTorch's convolutions (earlier dippas builds).
  bool direct_conv = true;
  // The least slope the output sigmoid passes back, ε (DipOptions::sigmoid_floor); 0 = σ'.
  double sigmoid_floor = 0;

  // Throws std::invalid_argument naming the offending field: non-positive
  // widths, skips.size() != filters.size() − 1, or a filter so small that a
  // MultiRes branch would get zero channels.
  void Check() const;
};

// (c1, c2, c3) of MR(u): int(0.167·W), int(0.333·W), int(0.5·W) with
// W = alpha·u, truncated in double precision as the official Python code does.
std::array<int64_t, 3> MultiResSplit(int64_t u, double alpha);

// c1 + c2 + c3: the output width of MR(u).
int64_t MultiResWidth(int64_t u, double alpha);

// post(bn(pre(x + x2))) with bn's batch statistics (training mode), pre and post LeakyReLUs of
// these slopes (1 = none), x2 optional (undefined = none); bn's running statistics are updated
// as BatchNorm2d does. With `fused` and a float CPU input, one fused operation of
// kernels/cpu/batch_norm.h; otherwise (and in eval mode) LibTorch's operators.
torch::Tensor NormActivate(const torch::nn::BatchNorm2d& bn, const torch::Tensor& x,
                           const torch::Tensor& x2, double pre_slope, double post_slope,
                           bool fused);

// Where direct_conv takes over: every layer of an image at least kDirectConvMinWidth wide, and
// on narrower ones down to kDirectConvNarrowMinWidth the layers with at most
// kDirectConvNarrowMaxChannels input × output channels. Measured on two cores (AVX-512),
// forward + backward: at 64² dippas's take 0.33–0.78 of oneDNN's time on such layers (25 → 8 up
// to 105 → 35) but up to 2.4× on wide ones (554 → 212); at 32² 0.37–0.87 against up to 1.6×.
constexpr int64_t kDirectConvMinWidth = 128;
constexpr int64_t kDirectConvNarrowMinWidth = 32;
constexpr int64_t kDirectConvNarrowMaxChannels = 4096;

// conv(x) of a 3×3 convolution with stride 1, padding 1 and a bias, by kernels/cpu/conv3x3.h's direct
// kernels: float CPU tensors (N, C, H, W), W a multiple of 16 (Conv3x3Supported). Differentiable
// in x, the weights and the bias.
torch::Tensor DirectConv3x3(const torch::Tensor& x, const torch::nn::Conv2d& conv);

// conv(x) of a 1×1 convolution (stride 1) as TapsProduct(weights, x) plus the bias: x
// contiguous, batch 1. Differentiable in x, the weights and the bias.
torch::Tensor Conv1x1Product(const torch::Tensor& x, const torch::nn::Conv2d& conv);

// Whether NetworkOptions::direct_conv takes over a stride-1 convolution of this kernel size (3 or
// 1) and output width on x: a float CPU image at least kDirectConvMinWidth wide, or at least
// kDirectConvNarrowMinWidth with few channels (above); for 3×3 a width that is a multiple of 16,
// for 1×1 batch 1, contiguous, with OpenBLAS loaded (TapsProduct's chunks).
bool DirectConvApplies(const torch::Tensor& x, int64_t kernel, int64_t out_channels);

// conv k×k (zero padding (k−1)/2, bias) → BatchNorm2d → LeakyReLU(0.2).
struct ConvUnitImpl : torch::nn::Module {
  ConvUnitImpl(int64_t in, int64_t out, int64_t kernel, int64_t stride = 1);
  torch::Tensor forward(const torch::Tensor& x);
  // BatchNorm2d → LeakyReLU(0.2) of a convolution output computed elsewhere.
  torch::Tensor Finish(const torch::Tensor& conv_out);

  torch::nn::Conv2d conv{nullptr};
  torch::nn::BatchNorm2d bn{nullptr};
  bool fused_norm = true;   // NormActivate's `fused`
  bool direct_conv = true;  // NetworkOptions::direct_conv

 private:
  int64_t kernel_, stride_;
};
TORCH_MODULE(ConvUnit);

// rows · x (2-D). For contiguous float CPU tensors, with OpenBLAS loaded, it runs in fixed column
// chunks of x, each a single-threaded BLAS call on dippas's threads (kernels/cpu/chunked_sgemm.h), and so does
// the rows' gradient: 1.5-1.8× faster than one multi-threaded OpenBLAS call for the first
// block's 61 × 512 taps on z, and the same bits for any thread count. Otherwise torch::mm.
torch::Tensor TapsProduct(const torch::Tensor& rows, const torch::Tensor& x);

// conv3(x) and conv1(x) of a 3×3 (stride 1, padding 1) and a 1×1 convolution on the same x,
// with their biases, computed as one matrix product [taps of conv3; conv1]·x followed by the
// shifted sum of the nine taps, one pass per output row (and one pass for the taps' gradient
// in backward). Differentiable in the weights, the biases and x (the last decoder block's input
// needs x's gradient; z, the first block's, needs none).
// With `low` (N, Cl, H/2, W/2), the convolutions read cat(x, nearest ×2 upsampling of low) along
// the channels: the taps of low's channels are multiplied at low's resolution and upsampled
// before the shifted sum (a per-pixel product commutes with the upsampling), then added to
// those of x's channels. Differentiable in low too.
std::pair<torch::Tensor, torch::Tensor> FusedConv3x3And1x1(const torch::Tensor& x,
                                                           const torch::nn::Conv2d& conv3,
                                                           const torch::nn::Conv2d& conv1,
                                                           const torch::Tensor& low = {});

// MR(U, in): three chained 3×3 conv units whose outputs are concatenated,
// plus a 1×1 shortcut; BN(LeakyReLU(shortcut + BN(concat))).
struct MultiResBlockImpl : torch::nn::Module {
  MultiResBlockImpl(int64_t u, int64_t in, double alpha);
  torch::Tensor forward(const torch::Tensor& x);
  // The same function, conv1 and the shortcut computed by FusedConv3x3And1x1; with `low`, of
  // cat(x, nearest ×2 upsampling of low), low's taps at its own resolution.
  torch::Tensor ForwardFused(const torch::Tensor& x, const torch::Tensor& low = {});
  int64_t out_channels() const { return out_channels_; }
  // NormActivate's `fused` for this block and its conv units.
  void SetFusedNorm(bool on);

  ConvUnit conv1{nullptr}, conv2{nullptr}, conv3{nullptr};
  torch::nn::BatchNorm2d bn_concat{nullptr};
  ConvUnit shortcut{nullptr};
  torch::nn::BatchNorm2d bn_out{nullptr};
  bool fused_norm = true;

 private:
  int64_t out_channels_;
};
TORCH_MODULE(MultiResBlock);

// Res path of length 1 (in → out): BN(LeakyReLU(unit3×3(x) + unit1×1(x))).
struct ResPathImpl : torch::nn::Module {
  ResPathImpl(int64_t in, int64_t out);
  torch::Tensor forward(const torch::Tensor& x);
  // NormActivate's `fused` for the path and its conv units.
  void SetFusedNorm(bool on);

  ConvUnit conv3{nullptr}, conv1{nullptr};
  torch::nn::BatchNorm2d bn{nullptr};
  bool fused_norm = true;
};
TORCH_MODULE(ResPath);

// The U-Net: levels = filters.size(); H and W must be multiples of
// 2^(levels − 1).
struct MultiResUNetImpl : torch::nn::Module {
  explicit MultiResUNetImpl(const NetworkOptions& options = {});

  // (N, input_depth, H, W) → (N, output_channels, H, W), values in (0, 1).
  // Throws std::invalid_argument on a wrong rank, depth or size.
  torch::Tensor forward(torch::Tensor z);

  // Trainable parameters only.
  int64_t NumParameters() const;

  // Output width of the encoder's MultiRes block per level (25, 51, 105, 212,
  // 426 by default).
  std::vector<int64_t> EncoderWidths() const { return encoder_widths_; }

  const NetworkOptions& options() const { return options_; }

 private:
  NetworkOptions options_;
  std::vector<int64_t> encoder_widths_;
  std::vector<MultiResBlock> encoders_;  // level l
  std::vector<ConvUnit> downs_;          // entering level l + 1
  std::vector<ResPath> skips_;           // level l < levels − 1
  std::vector<MultiResBlock> decoders_;  // level l < levels − 1
  torch::nn::Conv2d head_{nullptr};
};
TORCH_MODULE(MultiResUNet);

}  // namespace dippas
