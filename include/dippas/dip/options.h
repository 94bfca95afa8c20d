// Every setting of an anonymization run (SPEC §8). One struct feeds the
// command line, the config file (keys = field names) and the metrics JSON.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace dippas {

struct DipOptions {
  double sigma = 3.0;                                  // residual σ (SPEC §2), for P in blind mode and assembly
  int64_t input_depth = 512;                           // channels of z
  std::vector<int64_t> filters{16, 32, 64, 128, 256};  // MultiRes widths U per level
  std::vector<int64_t> skips{16, 32, 64, 128};         // res-path widths
  double alpha = 1.67;                                 // MultiRes width factor
  double lr = 0.001;                                   // Adam learning rate (amsgrad)
  double input_noise_std = 0.1;                        // std of z
  double reg_noise_std = 0.1;                          // std of z's per-iteration perturbation
  // How that perturbation's normals are drawn on the CPU: 1 = counter-based Philox4x32-10 in
  // parallel (~3× faster at 512² on two cores, the same numbers for any thread count);
  // 0 = torch's normal_ (one thread; the random stream of earlier dippas builds). Either is
  // N(0, 1): not a setting of the method, but each seed gives other pixels. CUDA always draws
  // with torch.
  int64_t philox_noise = 1;
  // How the first MultiRes block's two convolutions on z run on the CPU: 1 = one matrix product
  // of z with all their taps, then the 3×3 taps shifted and summed (~2× faster for 512 channels
  // of z); 0 = LibTorch's convolutions (earlier dippas builds). The same sums in another order:
  // outputs equal to ~1e-6, so a seed's trajectory drifts apart over iterations. CUDA always
  // convolves.
  int64_t fused_input = 1;
  // How each BatchNorm runs with the LeakyReLU and the sum next to it, on the CPU: 1 = one fused
  // operation, a channel's passes back to back while its plane is in cache (~5 % per iteration);
  // 0 = LibTorch's separate operators (earlier dippas builds). The same function, its sums in
  // another order: a seed's trajectory drifts apart over iterations. CUDA always uses LibTorch's.
  int64_t fused_norm = 1;
  // The same for the last decoder block (full resolution): its 3×3 and 1×1 shortcut
  // convolutions on its input (skip + upsampled, 67 channels by default) as one matrix product
  // (~5 % per iteration at 256² and 512²); 0 = LibTorch's convolutions (earlier dippas builds).
  // Outputs equal to ~1e-6, so a seed's trajectory drifts apart over iterations. CUDA convolves.
  int64_t fused_decoder = 1;
  // With fused_decoder: 1 = that product reads the deeper level's features (51 of the 67
  // channels) before their nearest ×2 upsampling and upsamples its result (4× fewer multiply-adds
  // for them, no upsampled copy or concatenation); 0 = the product on the concatenation (earlier
  // dippas builds). The same function, its sums in another order (outputs equal to ~1e-6).
  int64_t fused_upsample = 1;
  // How the stride-1 convolutions of the conv units and the head on images at least 128 pixels
  // wide (and the narrow layers, ≤ 4,096 input × output channels, on images 32 to 127 wide) run
  // on the CPU: 1 = dippas's own (3×3: direct kernels, 1×1: chunked matrix products;
  // 1.1–7× faster than oneDNN on these narrow layers); 0 = LibTorch's convolutions (earlier
  // dippas builds). The same sums in another order (outputs equal to ~1e-6), so a seed's
  // trajectory drifts apart. CUDA convolves.
  int64_t direct_conv = 1;
  double psnr_stop = 39.0;                             // stop once PSNR exceeds this (dB)
  double psnr_min = 38.0;                              // τ: pool admission (dB)
  int64_t max_iterations = 10000;                      // iteration budget
  // Stop rules for runs that cannot reach psnr_stop. plateau_window W: every W iterations from
  // the second window on, the run stops ("plateau") when the best PSNR of the last window plus
  // the rate of the mean PSNR between the last two windows, carried over the iterations left,
  // stays below its target (τ while the pool is empty, then psnr_stop); 0 = never. It
  // extrapolates a trend: a curve that levels off and then rises again can be stopped before it
  // would have got there (docs/configuration.md has the measured rate). pool_max M: stop
  // ("pool_full") once the pool holds M candidates; 0 = no limit.
  int64_t plateau_window = 500;
  int64_t pool_max = 2500;
  // A stalled run — stopped by the plateau rule with an empty pool, at its first check
  // (2·plateau_window iterations) or more than 10 dB below τ (IsStall) — starts again with
  // seed + 1, + 2, … (a new network and z), at most this many times; the attempt kept is the
  // first that admits candidates, else the one with the best PSNR. The DIP can sit at ~16 dB for
  // hundreds of iterations before it starts to fit, which the plateau rule reads as hopeless;
  // another seed usually starts at once. A run stopped later within 10 dB of τ had taken off: it is
  // not restarted. 0 = never.
  int64_t restarts = 1;
  // Beyond the paper (0 / 0 / 0 = the paper's loop). prnu_weight λ adds λ·ρ² to the loss, ρ the
  // NCC of the output's residual W(Iφ) with gray(Iφ)·P: the network is pulled away from the
  // fingerprint while it fits the image. prnu_block: ρ² averaged over blocks of this side
  // instead of one ρ over the image (the assembly then finds clean blocks everywhere); 0 = whole
  // image. gamma_lr: γ's own learning rate (γ = (gamma_lr/lr)·g, g trained by AMSGrad with lr);
  // 0 = lr, as in the paper, where γ barely leaves 0.
  double prnu_weight = 0;
  int64_t prnu_block = 0;
  double gamma_lr = 0;
  int64_t block_size = 64;                             // B: assembly block side
  // Beyond the paper: 1 ranks each block's candidates by |ρ| whatever its sign; 0 = the paper's
  // order (negative ρ first by |ρ|, then non-negative), which can leave a block anti-correlated.
  int64_t order_by_abs = 0;
  // Beyond the paper, aware mode: the assembly ranks each block's candidates by their ρ with
  // P/σ(P) + w·W/σ(W) instead of P, W the photo's own residual, which carries the camera's whole
  // pattern where P (a fingerprint from a few flat-fields) holds only part of it; the injection
  // keeps P. w = this weight; 0 = P alone (the paper).
  double select_residual = 0;
  // Beyond the paper: the least slope the output sigmoid passes back, ε: dσ/da is taken as
  // max(σ'(a), ε), the forward unchanged. A pixel whose output has saturated at 0 or 255 where
  // the photo is not (σ' ≈ 0.002 there) otherwise hardly moves again, and a few such pixels hold
  // the PSNR below τ or psnr_stop for thousands of iterations. 0 = the paper's sigmoid.
  double sigmoid_floor = 0;
  int64_t top = 10;                                    // L: candidates averaged per block
  int64_t seed = 0;                                    // every random draw
  int64_t tile_size = 512;    // larger images are anonymized in tiles of this side (rounded down to
                              // a multiple of B); 0 = never tile
  int64_t tile_margin = 64;   // context around each tile that the network sees and that is cut
                              // away, pixels (rounded up to a multiple of B)
  // Beyond the paper, for tiled photos: 1 = each tile after the first starts from the network of
  // the tile before it at its end (weights and BatchNorm statistics; its own z, optimizer and
  // seed), instead of from random weights; a restart starts afresh. 0 = random weights.
  int64_t warm_start = 0;
  // Tiled photos on the CPU: this many tiles run at once, each on its own thread with an equal
  // share of the threads (at least one); each tile gives what it gives run alone with that share.
  // 1 = one tile at a time with all the threads. Needs warm_start 0 (a warm tile waits for the one
  // before it). Not a setting of the method: kept out of the settings a work folder matches.
  int64_t concurrent_tiles = 1;
  // With a checkpoint folder (--checkpoint), the loop state is also saved every this many
  // iterations and seconds (0 = not on that count); always on a stop request (SIGTERM, SIGUSR1).
  // Not settings of the method: they do not change a single output bit.
  int64_t checkpoint_every = 0;
  double checkpoint_seconds = 300;

  // Throws std::invalid_argument naming the key and the allowed range.
  void Check() const;
};

// The key names, in SPEC §8 order (what a config file may contain).
const std::vector<std::string>& DipOptionKeys();

}  // namespace dippas
