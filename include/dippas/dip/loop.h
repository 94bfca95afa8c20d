// The DIPPAS loop (SPEC §5) with the online assembly (SPEC §6): optimise the
// U-Net f_φ and γ on the one image, admit 8-bit candidates with PSNR ≥ τ to
// the pool as they come, keep per block the top-L, and assemble Î.
#pragma once

#include <ATen/core/Generator.h>
#include <torch/types.h>

#include <array>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "dippas/dip/options.h"
#include "dippas/dip/stop_rules.h"

namespace dippas {

// One iteration, as reported to callbacks and the history.
struct IterationRecord {
  int64_t iteration = 0;       // 1-based
  double loss = 0;             // MSE of the injected output against I (0..1 scale), + λ·ρ²
  double psnr = 0;             // PSNR(8-bit candidate, I) in dB, over DipRunOptions::psnr_box
  double gamma = 0;            // γ after the step
  bool admitted = false;       // PSNR ≥ τ: joined the pool
  std::optional<double> ncc;   // NCC(residual(candidate), gray·P) when computed
};

// Hooks for the caller: progress, history, pool saving, interruption.
struct LoopCallbacks {
  // After every iteration; `pool_size` and `best_ncc` (lowest |NCC| admitted so far).
  std::function<void(const IterationRecord&, int64_t pool_size, std::optional<double> best_ncc)> on_iteration;
  // For every admitted candidate: (3,H,W) uint8 on the CPU.
  std::function<void(const torch::Tensor&, const IterationRecord&)> on_candidate;
  // Polled once per iteration; true stops the loop ("interrupted").
  std::function<bool()> stop_requested;
  // For tests: after every forward pass, the network input z_t, the network output Iφ and the
  // injected output Iφ·(1+γP̃), all (1,C,H',W') at the padded size, detached.
  std::function<void(const torch::Tensor& z_t, const torch::Tensor& output,
                     const torch::Tensor& injected)>
      on_forward;
  // With a checkpoint (DipRunOptions::checkpoint): the caller's own state to save with the
  // loop's (its history rows, say), given back by on_resume when a run resumes from it;
  // on_checkpoint after every save. `iterations` = iterations done when the state was saved.
  std::function<std::string()> checkpoint_blob;
  std::function<void(int64_t iterations, const std::string& blob)> on_resume;
  std::function<void(int64_t iterations)> on_checkpoint;
  // Before a restart (DipOptions::restarts): the attempt that ended (0-based), its best PSNR and
  // iterations, and the seed the next one uses.
  std::function<void(int64_t attempt, double best_psnr, int64_t iterations, int64_t next_seed)>
      on_restart;
};

// Where the time went, in seconds (the device is synchronised around each
// stage only when `profile` is set, since that costs speed on a GPU).
struct LoopProfile {
  bool profile = false;
  // Seconds; `perturb` (z + std·n) is part of `forward`, also shown on its own.
  double forward = 0, backward = 0, optimizer = 0, pool = 0, total = 0, perturb = 0;
};

struct DipRunOptions {
  DipOptions dip;                  // SPEC §8 settings
  std::string device = "cpu";      // "cpu" or "cuda" (already resolved)
  bool ncc_every_iteration = false;  // compute IterationRecord::ncc for every candidate (--history-ncc)
  // Iterations between computing an iteration's PSNR/loss/γ and reading them on the host: 1 lets
  // a GPU run the next iteration meanwhile (no per-iteration drain of the queue); the decisions
  // and results are the same, only an iteration past a psnr_stop is computed and discarded.
  // −1 = 1 on CUDA, 0 on the CPU; values above 1 act as 1.
  int readback_delay = -1;
  // Checkpoint file of the loop state (φ with BatchNorm buffers, γ, AMSGrad moments, RNG
  // states, iteration, the online top-L assembly, the caller's blob). When it exists the run
  // resumes from it — and ends bit for bit as an uninterrupted run with the same seed and
  // threads; it is saved every dip.checkpoint_every iterations / checkpoint_seconds and when
  // a stop is requested. "" = none.
  std::string checkpoint;
  // What identifies the run (settings and inputs): a checkpoint saved under another key is
  // refused with CheckpointError (dip/checkpoint.h), never resumed.
  std::string checkpoint_key;
  // The pixels the PSNR rules judge — admission at τ, psnr_stop, the plateau rule, the fallback —
  // as a box {y, x, h, w} of the image; h = 0: the whole image. A tile's run gives its core: the
  // margin around it is cut away, so its PSNR must not let a candidate in.
  std::array<int64_t, 4> psnr_box{0, 0, 0, 0};
  // A network to start from instead of random weights (DipOptions::warm_start): the named
  // parameters and buffers DipResult::network gave; null = random. The first attempt only (a
  // restart starts afresh); std::invalid_argument when its shapes are not this network's.
  std::shared_ptr<const std::map<std::string, torch::Tensor>> initial_network;
  // Hand the network's state at the end out in DipResult::network (the next tile's start).
  bool export_network = false;
  // The P the assembly ranks blocks by (and the NCC of IterationRecord), (H,W) like `pattern`:
  // DipOptions::select_residual's P/σ + w·W/σ. Undefined = the injected pattern (the paper).
  torch::Tensor selection_pattern;
};

struct DipResult {
  torch::Tensor image;            // Î (3,H,W) float, integer values 0..255, CPU; undefined
                                  // when interrupted before the first iteration
  int64_t iterations = 0;         // iterations run, over every attempt
  std::string stop_reason;        // psnr_stop | plateau | pool_full | max_iterations | interrupted
  double gamma = 0;               // final γ
  int64_t pool_size = 0;          // M: admitted candidates
  double best_psnr = 0;           // highest candidate PSNR seen
  bool fallback = false;          // pool empty: Î is the best-PSNR candidate, not an assembly
  int64_t resumed_from = 0;       // iterations taken from a checkpoint (0: a fresh start)
  int64_t checkpoint_iteration = -1;  // iterations in the last checkpoint saved (−1: none)
  LoopProfile profile;
  // Every attempt in order (one without a restart); the fields above are the kept attempt's,
  // except `iterations` (all attempts) and `stop_reason` and `checkpoint_iteration` (the last
  // attempt's: why and where the run ended). `kept` indexes it.
  std::vector<DipAttempt> attempts;
  int64_t kept = 0;
  // With DipRunOptions::export_network: the kept attempt's network at its end (CPU tensors).
  std::shared_ptr<const std::map<std::string, torch::Tensor>> network;
};

// image: I (3,H,W) on 0..255 (any H,W ≥ 32; padded by reflection to a multiple
// of 2^(levels−1) for the network and cropped back); pattern: P (H,W).
// With restarts, the callbacks see one run: iterations (records, pool metadata) count on across
// attempts; attempt k > 0 checkpoints to `checkpoint` + ".restart<k>" (a resumed run replays the
// earlier attempts from their own checkpoints, bit for bit).
DipResult RunDip(const torch::Tensor& image, const torch::Tensor& pattern, const DipRunOptions& options,
                 const LoopCallbacks& callbacks = {}, LoopProfile* profile = nullptr);

// Where attempt k > 0 of a run checkpointing to `checkpoint` keeps its own checkpoint.
std::string RestartCheckpointPath(const std::string& checkpoint, int64_t attempt);

// A short description of the network for --describe: parameter count and
// per-level widths.
std::string DescribeNetwork(const DipOptions& options);

// out ← z + std·n with n ~ N(0,1) drawn into `out` itself (same shape as z): the DIP's input
// perturbation without z-sized temporaries. philox (float CPU tensors): n from PhiloxPerturb
// under a key drawn from the default CPU generator, the same for any thread count; otherwise
// (and always on CUDA) bit for bit z + std·randn_like(z) from the same generator state.
// generator: the one to draw from; undefined = the device's default generator.
void PerturbInput(const torch::Tensor& z, double std, torch::Tensor& out, bool philox = false,
                  at::Generator generator = {});

// A new CPU generator in the default CPU generator's state: its draws are those the default one
// would give next. (Generator::clone leaks the copy in LibTorch 1.13: one reference too many.)
at::Generator CopyOfDefaultCpuGenerator();

// The network's widths and CPU paths of these options (input_depth, filters, skips, alpha,
// fused_input, fused_norm, fused_decoder, fused_upsample); NetworkOptions is in dip/network.h.
struct NetworkOptions;
NetworkOptions ToNetworkOptions(const DipOptions& options);

// Parameter count of the U-Net for these options (γ excluded).
int64_t NetworkParameterCount(const DipOptions& options);

}  // namespace dippas
