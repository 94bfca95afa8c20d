#include "dippas/dip/options.h"

#include <cmath>
#include <stdexcept>

namespace dippas {
namespace {

constexpr size_t kMaxLevels = 8;     // the network pads the image to a multiple of 2^7 at most
constexpr int64_t kMaxWidth = 4096;  // channels of z and of any layer

void Require(bool ok, const std::string& key, const std::string& rule) {
  if (!ok) throw std::invalid_argument(key + ": " + rule);
}

}  // namespace

void DipOptions::Check() const {
  Require(std::isfinite(sigma) && sigma > 0, "sigma", "must be a positive number");
  // Bounds keep 2^(levels−1) (the size multiple the image is padded to) and the layer sizes sane.
  Require(input_depth >= 1 && input_depth <= kMaxWidth, "input_depth", "must be in 1..4096");
  Require(filters.size() >= 2 && filters.size() <= kMaxLevels, "filters", "needs 2 to 8 levels");
  for (auto f : filters) Require(f >= 1 && f <= kMaxWidth, "filters", "widths must be in 1..4096");
  Require(skips.size() + 1 == filters.size(), "skips", "must have one entry fewer than filters");
  for (auto s : skips) Require(s >= 1 && s <= kMaxWidth, "skips", "widths must be in 1..4096");
  Require(std::isfinite(alpha) && alpha > 0, "alpha", "must be a positive number");
  Require(std::isfinite(lr) && lr > 0 && lr < 1, "lr", "must be in (0, 1)");
  Require(std::isfinite(input_noise_std) && input_noise_std >= 0, "input_noise_std", "must be ≥ 0");
  Require(std::isfinite(reg_noise_std) && reg_noise_std >= 0, "reg_noise_std", "must be ≥ 0");
  Require(std::isfinite(psnr_stop) && psnr_stop > 0 && psnr_stop <= 100, "psnr_stop", "must be in (0, 100] dB");
  Require(std::isfinite(psnr_min) && psnr_min > 0, "psnr_min", "must be a positive number of dB");
  Require(psnr_min <= psnr_stop, "psnr_min",
          "τ must not exceed psnr_stop (no candidate could join the pool before the run stops)");
  Require(max_iterations >= 1, "max_iterations", "must be at least 1");
  Require(block_size >= 1, "block_size", "must be at least 1");
  Require(top >= 1, "top", "must be at least 1");
  Require(seed >= 0, "seed", "must be ≥ 0");
  // Tiles are cut to whole assembly blocks (see pipeline/tiles.h), hence at least one block.
  Require(tile_size == 0 || (tile_size >= 32 && tile_size >= block_size), "tile_size",
          "must be 0 (never tile) or at least 32 and at least block_size");
  Require(tile_margin >= 0 && tile_margin <= 4096, "tile_margin", "must be in [0, 4096] pixels");
  Require(plateau_window >= 0, "plateau_window", "must be ≥ 0 iterations (0 = no plateau stop)");
  Require(pool_max >= 0, "pool_max", "must be ≥ 0 candidates (0 = no limit)");
  Require(restarts >= 0 && restarts <= 100, "restarts", "must be in [0, 100] (0 = never restart)");
  Require(std::isfinite(prnu_weight) && prnu_weight >= 0, "prnu_weight",
          "must be ≥ 0 (0 = no PRNU term)");
  Require(prnu_block >= 0, "prnu_block", "must be ≥ 0 pixels (0 = whole image)");
  Require(philox_noise == 0 || philox_noise == 1, "philox_noise",
          "must be 1 (Philox normals on the CPU) or 0 (torch's normal_)");
  Require(fused_input == 0 || fused_input == 1, "fused_input",
          "must be 1 (z's first convolutions as one matrix product) or 0 (convolutions)");
  Require(fused_norm == 0 || fused_norm == 1, "fused_norm",
          "must be 1 (BatchNorm fused with its LeakyReLU) or 0 (LibTorch's operators)");
  Require(fused_decoder == 0 || fused_decoder == 1, "fused_decoder",
          "must be 1 (the last decoder block's first convolutions as one matrix product) or 0 "
          "(convolutions)");
  Require(fused_upsample == 0 || fused_upsample == 1, "fused_upsample",
          "must be 1 (that product on the deeper features before their upsampling) or 0 (on the "
          "upsampled concatenation)");
  Require(direct_conv == 0 || direct_conv == 1, "direct_conv",
          "must be 1 (dippas's direct 3×3 kernels) or 0 (LibTorch's convolutions)");
  Require(warm_start == 0 || warm_start == 1, "warm_start",
          "must be 0 (tiles start from random weights) or 1 (from the tile before)");
  Require(concurrent_tiles >= 1 && concurrent_tiles <= 64, "concurrent_tiles",
          "must be 1..64 tiles at once, got " + std::to_string(concurrent_tiles));
  Require(concurrent_tiles == 1 || warm_start == 0, "concurrent_tiles",
          "must be 1 with warm_start 1 (each warm tile starts from the one before it)");
  Require(std::isfinite(sigmoid_floor) && sigmoid_floor >= 0 && sigmoid_floor < 0.25,
          "sigmoid_floor", "must be in [0, 0.25) (0 = the paper's sigmoid; σ' is at most 0.25)");
  Require(std::isfinite(select_residual) && select_residual >= 0 && select_residual <= 100,
          "select_residual", "must be in [0, 100] (the residual's weight beside P; 0 = P alone)");
  Require(order_by_abs == 0 || order_by_abs == 1, "order_by_abs",
          "must be 0 (the paper's order: negative ρ first) or 1 (by |ρ|)");
  Require(std::isfinite(gamma_lr) && gamma_lr >= 0 && gamma_lr < 1, "gamma_lr",
          "must be in [0, 1) (0 = lr)");
  Require(checkpoint_every >= 0, "checkpoint_every", "must be ≥ 0 iterations (0 = not by count)");
  Require(std::isfinite(checkpoint_seconds) && checkpoint_seconds >= 0, "checkpoint_seconds",
          "must be ≥ 0 seconds (0 = not by time)");
}

const std::vector<std::string>& DipOptionKeys() {
  // clang-format off
  static const std::vector<std::string> keys = {
      "sigma",      "input_depth", "filters",          "skips",
      "alpha",      "lr",          "input_noise_std",  "reg_noise_std",
      "philox_noise", "fused_input", "fused_norm", "fused_decoder",
      "fused_upsample", "direct_conv",
      "psnr_stop",  "psnr_min",    "max_iterations",   "plateau_window",
      "pool_max",   "restarts",    "prnu_weight",      "prnu_block",
      "gamma_lr",   "block_size",  "top",              "order_by_abs",
      "select_residual", "sigmoid_floor",
      "seed",       "tile_size",   "tile_margin",      "warm_start",
      "concurrent_tiles", "checkpoint_every", "checkpoint_seconds"};
  // clang-format on
  return keys;
}

}  // namespace dippas
