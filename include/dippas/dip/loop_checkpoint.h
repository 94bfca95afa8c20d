// What a running DIP loop saves between two iterations and restores on resume: the network's
// weights and BatchNorm buffers, γ, the AMSGrad moments, the random generators, the online top-L
// assembly, the loop's running scalars and the caller's blob, in one checkpoint file
// (dip/checkpoint.h). A resumed loop continues bit for bit as if it had not stopped.
#pragma once

#include <ATen/core/Generator.h>
#include <torch/types.h>

#include <array>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>

namespace dippas {

class FlatAmsGrad;
class BlockAssembler;
class MultiResUNetImpl;

// The loop's running values besides its modules.
struct LoopScalars {
  int64_t pool_size = 0;              // M so far
  double best_psnr = 0;               // highest candidate PSNR seen
  double fallback_psnr = -INFINITY;   // PSNR of the fallback candidate (pool still empty)
  double best_key = INFINITY;         // lowest |NCC| admitted so far
  std::optional<double> best_ncc;     // its NCC
  double gamma = 0;                   // γ after the last step
  std::array<double, 3> plateau{0, -INFINITY, NAN};  // PlateauRule::State()
};

// The modules a checkpoint saves (held by the loop, not owned here).
struct LoopModules {
  MultiResUNetImpl* net = nullptr;
  FlatAmsGrad* adam = nullptr;
  BlockAssembler* assembler = nullptr;
  bool cuda = false;  // the CUDA generator is saved too
  torch::Device device = torch::kCPU;
  at::Generator cpu_generator;  // the run's CPU generator; undefined: the default one
};

// A loop state read back from disk.
struct LoopResume {
  int64_t iterations = 0;        // iterations done when it was saved
  int64_t threads = 0;           // the thread count it was saved with
  LoopScalars scalars;
  torch::Tensor best_candidate;  // the fallback candidate, undefined when none
  std::string caller_blob;       // LoopCallbacks::checkpoint_blob's text
};

// Saves the state after `iterations` iterations to `path` atomically (IoError naming it).
void SaveLoopCheckpoint(const std::string& path, const std::string& key, int64_t iterations,
                        const LoopModules& modules, const LoopScalars& scalars,
                        const torch::Tensor& best_candidate, const std::string& caller_blob);

// Restores the modules from `path` and returns the rest; nullopt when there is no such file.
// CheckpointError naming the file when it is corrupt, of another dippas version, saved under
// another key, or does not fit these modules; `max_iterations` bounds its iteration count.
std::optional<LoopResume> LoadLoopCheckpoint(const std::string& path, const std::string& key,
                                             int64_t max_iterations, const LoopModules& modules);

}  // namespace dippas
