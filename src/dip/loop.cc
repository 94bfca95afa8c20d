#include "dippas/dip/loop.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <c10/core/Event.h>
#include <c10/core/impl/VirtualGuardImpl.h>
#include <torch/cuda.h>
#include <torch/torch.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "dippas/assembly/assembly.h"
#include "dippas/dip/amsgrad.h"
#include "dippas/dip/checkpoint.h"
#include "dippas/dip/injection.h"
#include "dippas/dip/iteration.h"
#include "dippas/dip/loop_checkpoint.h"
#include "dippas/dip/network.h"
#include "dippas/dip/stop_rules.h"
#include "dippas/kernels/cpu/philox.h"
#include "dippas/prnu/residual.h"
#include "dippas/util/math_mode.h"
#include "dippas/util/parallel.h"

namespace dippas {

PrnuInjectionImpl::PrnuInjectionImpl(const torch::Tensor& p, double gamma_scale)
    : scale(gamma_scale) {
  if (!(scale > 0) || !std::isfinite(scale))
    throw std::invalid_argument("γ scale must be positive");
  TORCH_CHECK(p.dim() == 2, "PRNU pattern must be (H,W)");
  auto pf = p.to(torch::kFloat32);
  const double sd = pf.std().item<double>();
  if (!(sd > 0) || !std::isfinite(sd)) throw std::invalid_argument("PRNU pattern is constant or not finite");
  pattern = register_buffer("pattern", (pf / sd).unsqueeze(0).unsqueeze(0));
  gamma = register_parameter("gamma", torch::zeros({}, pf.options()));
}

torch::Tensor PrnuInjectionImpl::forward(const torch::Tensor& x) {
  // scale 1 keeps the paper's arithmetic bit for bit.
  return x * (1 + (scale == 1.0 ? gamma : gamma * scale) * pattern);
}

torch::Tensor PrnuInjectionImpl::Gamma() const {
  return scale == 1.0 ? gamma.detach() : gamma.detach() * scale;
}

void PrnuInjectionImpl::ClampGamma() {
  torch::NoGradGuard no_grad;
  gamma.clamp_min_(0.0);
}

NetworkOptions ToNetworkOptions(const DipOptions& o) {
  NetworkOptions n;
  n.input_depth = o.input_depth;
  n.filters = o.filters;
  n.skips = o.skips;
  n.alpha = o.alpha;
  n.fused_input = o.fused_input != 0;
  n.fused_norm = o.fused_norm != 0;
  n.fused_decoder = o.fused_decoder != 0;
  n.fused_upsample = o.fused_upsample != 0;
  n.direct_conv = o.direct_conv != 0;
  n.sigmoid_floor = o.sigmoid_floor;
  return n;
}

namespace {

// Held while a run seeds the default generators and draws from them (see RunDipAttempt).
std::mutex& SeedMutex() {
  static std::mutex mutex;
  return mutex;
}

// Reflect-pad (…,H,W) at the bottom/right to a multiple of m; reflection
// needs H,W ≥ the pad + 1, which the 32-pixel minimum guarantees for m ≤ 32.
torch::Tensor PadTo(const torch::Tensor& x, int64_t m) {
  const int64_t h = x.size(-2), w = x.size(-1);
  const int64_t ph = (m - h % m) % m, pw = (m - w % m) % m;
  if (ph == 0 && pw == 0) return x;
  auto x4 = x.dim() == 4 ? x : x.reshape({1, -1, h, w});
  auto padded = torch::reflection_pad2d(x4, {0, pw, 0, ph});
  auto shape = x.sizes().vec();
  shape[shape.size() - 2] = h + ph;
  shape[shape.size() - 1] = w + pw;
  return padded.reshape(shape);
}

class Timer {
 public:
  Timer(bool on, bool cuda) : on_(on), cuda_(cuda) { Reset(); }
  void Reset() {
    if (!on_) return;
    if (cuda_) torch::cuda::synchronize();
    t_ = std::chrono::steady_clock::now();
  }
  // Seconds since the last Reset/Lap, then restarts.
  double Lap() {
    if (!on_) return 0;
    if (cuda_) torch::cuda::synchronize();
    const auto now = std::chrono::steady_clock::now();
    const double s = std::chrono::duration<double>(now - t_).count();
    t_ = now;
    return s;
  }
  // Seconds since the last Reset/Lap, without restarting.
  double Elapsed() {
    if (!on_) return 0;
    if (cuda_) torch::cuda::synchronize();
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t_).count();
  }

 private:
  bool on_, cuda_;
  std::chrono::steady_clock::time_point t_;
};

}  // namespace

void PerturbInput(const torch::Tensor& z, double std, torch::Tensor& out, bool philox,
                  at::Generator generator) {
  torch::NoGradGuard no_grad;
  if (philox && z.is_cpu() && z.scalar_type() == torch::kFloat && out.sizes() == z.sizes() &&
      out.strides() == z.strides() && z.is_non_overlapping_and_dense()) {
    // One 64-bit key per iteration from the default generator (so seeds, restarts and
    // checkpoints carry it), then Philox normals filled in parallel: at 512² on two cores,
    // 0.19 s against 0.83 s for torch's one-thread normal_ (dippas bench --what dip).
    uint64_t key;
    {
      auto gen = generator.defined() ? generator
                                     : at::globalContext().defaultGenerator(c10::DeviceType::CPU);
      std::lock_guard<std::mutex> lock(gen.mutex());
      key = at::check_generator<at::CPUGeneratorImpl>(gen)->random64();
    }
    const float* zp = z.data_ptr<float>();
    float* op = out.data_ptr<float>();
    const int64_t n = z.numel(), chunks = (n + kNoiseChunk - 1) / kNoiseChunk;
    ParallelFor(0, chunks, 4096, at::get_num_threads(), [&](int64_t begin, int64_t end) {
      PhiloxPerturb(zp, static_cast<float>(std), key, op, begin * kNoiseChunk,
                    std::min(end * kNoiseChunk, n));
    });
    return;
  }
  // torch: randn_like is empty_like + normal_(0, 1); then std·n and z + (std·n), the same two
  // roundings. normal_ runs on one thread on the CPU. (An earlier try, 64 torch generators
  // filling slices under at::parallel_for, measured slower: that loop was serial, see ParallelFor.)
  // GCC's -O1 (the sanitizer build) misreads c10::optional<Generator>'s copy as uninitialised.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
  if (generator.defined()) {
    out.normal_(0, 1, generator);
  } else {
    out.normal_();
  }
#pragma GCC diagnostic pop
  out.mul_(std);
  out.add_(z);
}

at::Generator CopyOfDefaultCpuGenerator() {
  auto source = at::globalContext().defaultGenerator(c10::DeviceType::CPU);
  auto copy = at::make_generator<at::CPUGeneratorImpl>();
  std::lock_guard<std::mutex> lock(source.mutex());
  copy.set_state(source.get_state());
  return copy;
}

int64_t NetworkParameterCount(const DipOptions& options) {
  return MultiResUNet(ToNetworkOptions(options))->NumParameters();
}

std::string DescribeNetwork(const DipOptions& options) {
  MultiResUNet net(ToNetworkOptions(options));
  std::ostringstream os;
  os << "MultiRes U-Net: " << net->NumParameters() << " trainable parameters, plus 1 for γ\n";
  os << "  input z: " << options.input_depth << " channels, std " << options.input_noise_std
     << ", perturbation std " << options.reg_noise_std << "\n";
  const auto widths = net->EncoderWidths();
  for (size_t l = 0; l < widths.size(); ++l) {
    const auto split = MultiResSplit(options.filters[l], options.alpha);
    os << "  level " << l << " (1/" << (1 << l) << " scale): MR(U=" << options.filters[l] << ") widths " << split[0]
       << "+" << split[1] << "+" << split[2] << " = " << widths[l];
    if (l + 1 < widths.size()) os << ", skip " << widths[l] << "→" << options.skips[l];
    os << "\n";
  }
  os << "  head: 1×1 conv " << widths[0] << "→3, sigmoid";
  if (options.sigmoid_floor > 0) os << " (backward slope at least " << options.sigmoid_floor << ")";
  os << "; injection Iφ·(1+γ·P/std P)\n";
  if (options.prnu_weight > 0) {
    os << "  loss: MSE + " << options.prnu_weight << "·ρ²(W(Iφ), gray(Iφ)·P)"
       << (options.prnu_block > 0 ? ", mean over " + std::to_string(options.prnu_block) + "² blocks"
                                  : std::string(", whole image"))
       << "\n";
  }
  return os.str();
}

// One attempt: the loop with options.dip.seed.
static DipResult RunDipAttempt(const torch::Tensor& image, const torch::Tensor& pattern,
                               const DipRunOptions& options, const LoopCallbacks& callbacks,
                               LoopProfile* profile) {
  const DipOptions& o = options.dip;
  o.Check();
  if (image.dim() != 3 || image.size(0) != 3) throw std::invalid_argument("RunDip: image must be (3,H,W)");
  const int64_t h = image.size(1), w = image.size(2);
  // Reflection padding to a multiple m = 2^(levels−1) needs sides ≥ m (so ≥ 32, and more for
  // networks deeper than 6 levels).
  const int64_t min_side = std::max<int64_t>(32, int64_t{1} << (o.filters.size() - 1));
  if (h < min_side || w < min_side) {
    throw std::invalid_argument("image is " + std::to_string(h) + "x" + std::to_string(w) +
                                ": the DIP needs at least " + std::to_string(min_side) + "x" +
                                std::to_string(min_side) + " pixels");
  }
  auto fits = [&](const torch::Tensor& p) {
    return p.dim() == 2 && p.size(0) == h && p.size(1) == w;
  };
  if (!fits(pattern)) throw std::invalid_argument("RunDip: pattern size differs from the image");
  const auto& selection = options.selection_pattern;
  if (selection.defined() && !fits(selection))
    throw std::invalid_argument("RunDip: selection pattern size differs from the image");
  const bool cuda = options.device == "cuda";
  const torch::Device dev = cuda ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU);
  const bool profiling = profile && profile->profile;
  Timer total_timer(true, false);

  const int64_t multiple = int64_t{1} << (o.filters.size() - 1);
  // I in [0,1], its 8-bit version for PSNR, and P: padded for the network.
  const auto target8 = image.to(torch::kFloat32).round().clamp(0, 255).to(dev);
  // The box the PSNR is measured on (DipRunOptions::psnr_box): all of it, or a tile's core.
  const auto& box = options.psnr_box;
  if (box[2] > 0 && (box[0] < 0 || box[1] < 0 || box[3] <= 0 || box[0] + box[2] > h ||
                     box[1] + box[3] > w)) {
    throw std::invalid_argument("RunDip: psnr_box outside the image");
  }
  const auto target = PadTo(image.to(torch::kFloat32).to(dev) / 255.0, multiple).unsqueeze(0);
  const int64_t hp = target.size(2), wp = target.size(3);
  // cuDNN autotuning for the network's fixed shapes (the residual's convolutions are tiny).
  const CudnnBenchmarkGuard cudnn_benchmark(true, /*engage=*/cuda);
  // The seeded draws — z, then the network's initial weights — and the run's own CPU generator
  // (a copy of the default one after them, for n) under one lock: runs at once on other threads
  // (tiles at once) each draw exactly what they draw alone.
  torch::Tensor z;
  MultiResUNet net{nullptr};
  at::Generator cpu_generator;
  {
    std::lock_guard<std::mutex> lock(SeedMutex());
    torch::manual_seed(static_cast<uint64_t>(o.seed));
    // z is drawn on the CPU so that the same seed gives the same z on any device.
    // (mul_ in place: the same rounding as `* std`, one z-sized array fewer at the start.)
    z = torch::randn({1, o.input_depth, hp, wp}).mul_(o.input_noise_std).to(dev);
    net = MultiResUNet(ToNetworkOptions(o));
    cpu_generator = CopyOfDefaultCpuGenerator();
  }
  PrnuInjection injection(PadTo(pattern.to(torch::kFloat32), multiple),
                          o.gamma_lr > 0 ? o.gamma_lr / o.lr : 1.0);
  if (options.initial_network) {  // a warm start: the tile before's weights and statistics
    torch::NoGradGuard no_grad;
    const auto& start = *options.initial_network;
    auto load = [&](const std::string& name, torch::Tensor& t) {
      const auto it = start.find(name);
      if (it == start.end() || it->second.sizes() != t.sizes()) {
        throw std::invalid_argument("warm start: the network to start from has no '" + name +
                                    "' of this size");
      }
      t.copy_(it->second);
    };
    for (auto& p : net->named_parameters()) load("param." + p.key(), p.value());
    for (auto& b : net->named_buffers()) load("buffer." + b.key(), b.value());
  }
  net->to(dev);
  injection->to(dev);
  net->train();  // BatchNorm on batch statistics throughout, as in the paper's code
  std::vector<torch::Tensor> params = net->parameters();
  params.push_back(injection->gamma);
  AmsGradOptions adam_options;
  adam_options.lr = o.lr;
  FlatAmsGrad adam(params, adam_options);

  AssemblyOptions ao;
  ao.block_size = o.block_size;
  ao.top = o.top;
  ao.order_by_abs = o.order_by_abs != 0;
  ao.sigma = o.sigma;
  ao.Check(h, w);
  const auto pattern_dev = pattern.to(torch::kFloat32).to(dev);
  BlockAssembler assembler(
      selection.defined() ? selection.to(torch::kFloat32).to(dev) : pattern_dev, ao);
  ResidualOptions ro;
  ro.sigma = o.sigma;
  DipIterationParts parts;
  parts.net = net.get();
  parts.injection = injection.get();
  parts.adam = &adam;
  parts.z = z;
  parts.target = target;
  parts.target8 = target8;
  parts.pattern = pattern_dev;
  parts.psnr_box = box;
  if (!cuda) parts.generator = cpu_generator;  // CUDA draws n from its default generator
  DipIteration body(parts, o);

  DipResult result;
  result.stop_reason = "max_iterations";
  LoopScalars s;  // pool size, best PSNR, fallback, lowest |NCC|, γ
  torch::Tensor best_candidate;
  Timer timer(profiling, cuda);
  LoopProfile prof;

  // What the host needs of an iteration. With a read-back delay of 1 (CUDA), its scalars are
  // copied asynchronously and read one iteration later, while the GPU already runs the next
  // one: the host never drains the queue just to learn the PSNR. Every decision (admission,
  // stop, pool) is still taken on the iteration's own values, so results do not change.
  const int64_t delay = options.readback_delay >= 0 ? std::min<int64_t>(options.readback_delay, 1) : (cuda ? 1 : 0);
  struct Pending {
    int64_t iteration = 0;
    torch::Tensor candidate;  // (3,h,w) on the device
    torch::Tensor scalars;    // loss, MSE8, γ as float64 on the host (ready once `ready` is)
    int slot = 0;
  };
  std::optional<Pending> pending;
  std::vector<torch::Tensor> host_scalars;
  std::vector<std::unique_ptr<c10::Event>> ready;
  if (cuda && delay > 0) {
    for (int i = 0; i < 2; ++i) {
      host_scalars.push_back(torch::empty({3}, torch::TensorOptions().dtype(torch::kFloat64).pinned_memory(true)));
      ready.push_back(std::make_unique<c10::Event>(c10::DeviceType::CUDA));
    }
  }

  PlateauRule plateau(o);
  // The host side of one iteration; the stop reason, or nullptr to go on.
  auto process = [&](const Pending& p) -> const char* {
    if (!ready.empty()) {
      // Waits for this iteration's copy only (c10::Event has no blocking wait in every LibTorch).
      while (!ready[static_cast<size_t>(p.slot)]->query()) std::this_thread::yield();
    }
    const auto& candidate = p.candidate;
    const double* v = p.scalars.data_ptr<double>();
    IterationRecord rec;
    rec.iteration = p.iteration;
    rec.loss = v[0];
    rec.psnr = v[1] > 0 ? 10.0 * std::log10(255.0 * 255.0 / v[1]) : INFINITY;
    rec.gamma = v[2];
    rec.admitted = rec.psnr >= o.psnr_min;
    s.best_psnr = std::max(s.best_psnr, rec.psnr);
    if (s.pool_size == 0 && !rec.admitted && rec.psnr >= s.fallback_psnr) {
      s.fallback_psnr = rec.psnr;  // kept only until the pool has a candidate
      best_candidate = candidate.clone();
    }
    if (rec.admitted) {
      // The whole-image NCC comes from the block sums the assembler computes anyway, in the
      // same read-back as the block ρ: no second NCC pass and host synchronisation.
      rec.ncc = assembler.AddWithResidual(candidate, Residual(candidate, ro), p.iteration);
      ++s.pool_size;
      const double key = std::isnan(*rec.ncc) ? INFINITY : std::fabs(*rec.ncc);
      if (key < s.best_key) {
        s.best_key = key;
        s.best_ncc = rec.ncc;
      }
      if (callbacks.on_candidate)
        callbacks.on_candidate(candidate.to(torch::kCPU).to(torch::kUInt8), rec);
    } else if (options.ncc_every_iteration) {
      rec.ncc = assembler.ImageNcc(candidate, Residual(candidate, ro));
    }
    prof.pool += timer.Lap();
    result.iterations = p.iteration;
    s.gamma = rec.gamma;
    if (callbacks.on_iteration) callbacks.on_iteration(rec, s.pool_size, s.best_ncc);
    if (rec.psnr > o.psnr_stop) return "psnr_stop";
    if (o.pool_max > 0 && s.pool_size >= o.pool_max) return "pool_full";
    // Target: τ while the pool is empty, then the stop PSNR.
    if (plateau.Observe(p.iteration, rec.psnr, s.pool_size > 0 ? o.psnr_stop : o.psnr_min))
      return "plateau";
    return nullptr;
  };

  // --- Checkpoints: everything the next iteration depends on, saved between two iterations.
  const bool checkpointing = !options.checkpoint.empty();
  const LoopModules modules{net.get(), &adam, &assembler, cuda, dev, cpu_generator};
  auto save_state = [&](int64_t done) {
    s.plateau = plateau.State();
    SaveLoopCheckpoint(options.checkpoint, options.checkpoint_key, done, modules, s,
                       best_candidate,
                       callbacks.checkpoint_blob ? callbacks.checkpoint_blob() : std::string());
    result.checkpoint_iteration = done;
    if (callbacks.on_checkpoint) callbacks.on_checkpoint(done);
  };
  if (checkpointing) {
    if (auto resume = LoadLoopCheckpoint(options.checkpoint, options.checkpoint_key,
                                         o.max_iterations, modules)) {
      s = resume->scalars;
      plateau.SetState(s.plateau);
      best_candidate = resume->best_candidate;
      result.iterations = result.resumed_from = resume->iterations;
      if (resume->threads != at::get_num_threads()) {
        std::fprintf(stderr,
                     "dippas: warning: %s was saved with %lld threads, resumed with %d: the result "
                     "may differ from an uninterrupted run in the last bits\n",
                     options.checkpoint.c_str(), static_cast<long long>(resume->threads),
                     at::get_num_threads());
      }
      if (callbacks.on_resume) callbacks.on_resume(resume->iterations, resume->caller_blob);
    }
  }
  int64_t last_saved = result.resumed_from;
  auto last_save_time = std::chrono::steady_clock::now();

  for (int64_t it = result.resumed_from + 1; it <= o.max_iterations; ++it) {
    const bool stop_requested = callbacks.stop_requested && callbacks.stop_requested();
    bool save_due = false;
    if (checkpointing && it - 1 > last_saved) {
      const double since =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - last_save_time).count();
      save_due = stop_requested || (o.checkpoint_every > 0 && (it - 1) % o.checkpoint_every == 0) ||
                 (o.checkpoint_seconds > 0 && since >= o.checkpoint_seconds);
    }
    if (stop_requested || save_due) {
      // The iteration already computed still counts, as without the delay.
      const char* stop = pending ? process(*pending) : nullptr;
      pending.reset();
      if (stop) {
        result.stop_reason = stop;
        break;
      }
      if (save_due) {
        save_state(it - 1);
        last_saved = it - 1;
        last_save_time = std::chrono::steady_clock::now();
      }
      if (stop_requested) {
        result.stop_reason = "interrupted";
        break;
      }
    }
    timer.Reset();
    const int slot = static_cast<int>(it % 2);
    body.Perturb();
    if (profiling) prof.perturb += timer.Elapsed();
    body.Forward(callbacks.on_forward);
    prof.forward += timer.Lap();
    body.Backward();
    prof.backward += timer.Lap();
    body.Step();
    prof.optimizer += timer.Lap();
    body.Outputs(slot);

    Pending cur;
    cur.iteration = it;
    cur.candidate = body.candidate(slot);
    const auto& scalars = body.scalars(slot);
    if (delay == 0) {
      cur.scalars = scalars.to(torch::kCPU, torch::kFloat64);
      if (const char* stop = process(cur)) {
        result.stop_reason = stop;
        break;
      }
      continue;
    }
    cur.slot = slot;
    if (ready.empty()) {
      cur.scalars = scalars.to(torch::kCPU, torch::kFloat64);
    } else {
      cur.scalars = host_scalars[static_cast<size_t>(cur.slot)];
      cur.scalars.copy_(scalars.to(torch::kFloat64), /*non_blocking=*/true);
      const c10::impl::VirtualGuardImpl guard(c10::DeviceType::CUDA);
      ready[static_cast<size_t>(cur.slot)]->record(guard.getStream(dev));
    }
    if (pending) {
      const char* stop = process(*pending);
      pending.reset();
      if (stop) {
        result.stop_reason = stop;  // iteration `it` was computed but is discarded
        break;
      }
    }
    pending = std::move(cur);
  }
  if (pending) {
    if (const char* stop = process(*pending)) result.stop_reason = stop;
  }
  // Stopped again before a new iteration: the checkpoint resumed from still stands.
  if (checkpointing && result.checkpoint_iteration < 0 && last_saved > 0)
    result.checkpoint_iteration = last_saved;
  result.pool_size = s.pool_size;
  result.best_psnr = s.best_psnr;
  result.gamma = s.gamma;
  if (result.pool_size > 0) {
    result.image = assembler.Finish().image.to(torch::kCPU);
  } else if (best_candidate.defined()) {
    // No candidate reached τ: the best one so far stands in, flagged in the metrics.
    result.fallback = true;
    result.image = best_candidate.to(torch::kCPU);
  } else if (result.stop_reason != "interrupted") {
    throw std::runtime_error("the DIP loop ran no iteration");
  }  // interrupted before the first iteration: no image (the caller writes nothing)
  if (options.export_network) {
    auto state = std::make_shared<std::map<std::string, torch::Tensor>>();
    for (const auto& p : net->named_parameters())
      (*state)["param." + p.key()] = p.value().detach().to(torch::kCPU).clone();
    for (const auto& b : net->named_buffers())
      (*state)["buffer." + b.key()] = b.value().to(torch::kCPU).clone();
    result.network = std::move(state);
  }
  prof.total = total_timer.Lap();
  prof.profile = profiling;
  result.profile = prof;
  if (profile) *profile = prof;
  return result;
}

std::string RestartCheckpointPath(const std::string& checkpoint, int64_t attempt) {
  return checkpoint + ".restart" + std::to_string(attempt);
}

DipResult RunDip(const torch::Tensor& image, const torch::Tensor& pattern,
                 const DipRunOptions& options, const LoopCallbacks& callbacks,
                 LoopProfile* profile) {
  options.dip.Check();
  DipResult kept;
  std::vector<DipAttempt> attempts;
  int64_t offset = 0;  // iterations of the earlier attempts: the callers see one run
  // Attempt k's seed; unsigned arithmetic wraps instead of overflowing, and stays ≥ 0.
  auto seed_of = [&](int64_t k) {
    return static_cast<int64_t>(
        (static_cast<uint64_t>(options.dip.seed) + static_cast<uint64_t>(k)) &
        0x7fffffffffffffffULL);
  };
  for (int64_t k = 0;; ++k) {
    DipRunOptions run = options;
    run.dip.seed = seed_of(k);
    LoopCallbacks cb = callbacks;
    if (k > 0) {
      run.initial_network.reset();  // a restart: a new network
      if (!options.checkpoint.empty()) {
        run.checkpoint = RestartCheckpointPath(options.checkpoint, k);
        run.checkpoint_key = options.checkpoint_key + "/restart " + std::to_string(k);
      }
      if (callbacks.on_iteration) {
        cb.on_iteration = [&](const IterationRecord& r, int64_t pool, std::optional<double> ncc) {
          IterationRecord shifted = r;
          shifted.iteration += offset;
          callbacks.on_iteration(shifted, pool, ncc);
        };
      }
      if (callbacks.on_candidate) {
        cb.on_candidate = [&](const torch::Tensor& c, const IterationRecord& r) {
          IterationRecord shifted = r;
          shifted.iteration += offset;
          callbacks.on_candidate(c, shifted);
        };
      }
      if (callbacks.on_resume) {
        cb.on_resume = [&](int64_t n, const std::string& blob) {
          callbacks.on_resume(offset + n, blob);
        };
      }
      if (callbacks.on_checkpoint)
        cb.on_checkpoint = [&](int64_t n) { callbacks.on_checkpoint(offset + n); };
    }
    DipResult r = RunDipAttempt(image, pattern, run, cb, profile);
    attempts.push_back({run.dip.seed, r.iterations, r.stop_reason, r.pool_size, r.best_psnr});
    offset += r.iterations;
    // The first attempt with candidates ends the run; without any, the best PSNR is kept.
    const bool better = k == 0 || r.pool_size > 0 || r.best_psnr > kept.best_psnr;
    if (better) {
      if (k > 0) {
        if (r.resumed_from > 0) r.resumed_from += offset - r.iterations;
        if (r.checkpoint_iteration >= 0) r.checkpoint_iteration += offset - r.iterations;
      }
      kept = std::move(r);
      kept.kept = k;
    } else {
      // The run's stop reason and checkpoint state are those of its last attempt.
      kept.stop_reason = r.stop_reason;
      kept.checkpoint_iteration =
          r.checkpoint_iteration >= 0 ? offset - r.iterations + r.checkpoint_iteration : -1;
    }
    const DipAttempt& last = attempts.back();
    const bool stalled = IsStall(last, options.dip);
    if (!stalled || k >= options.dip.restarts) break;
    if (callbacks.on_restart)
      callbacks.on_restart(k, last.best_psnr, last.iterations, seed_of(k + 1));
  }
  kept.iterations = offset;
  kept.attempts = std::move(attempts);
  return kept;
}

}  // namespace dippas
