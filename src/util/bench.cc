#include "dippas/util/bench.h"

#include <ATen/Parallel.h>
#include <sys/resource.h>
#include <torch/cuda.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#if defined(DIPPAS_HAVE_CUDA)
#include <c10/cuda/CUDACachingAllocator.h>
#endif

#include "dippas/kernels/cpu/conv3x3.h"
#include "dippas/kernels/cpu/philox.h"
#include "dippas/dip/loop.h"
#include "dippas/dip/network.h"
#include "dippas/prnu/detection.h"
#include "dippas/prnu/fingerprint.h"
#include "dippas/prnu/residual.h"
#include "dippas/util/parallel.h"

namespace dippas {
namespace {

void Sync(const std::string& device) {
  if (device == "cuda") torch::cuda::synchronize();
}

void PrintPeak(const std::string& device) {
  if (PeakIsGpu(device)) {
    std::printf("  peak GPU memory           %9.1f MiB (allocated by tensors)\n",
                PeakMemoryMiB(device));
  } else {
    std::printf("  peak resident memory      %9.1f MiB (whole process)\n", PeakMemoryMiB(device));
  }
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

double MedianSeconds(int repeats, const std::function<void()>& fn) {
  fn();
  std::vector<double> t;
  for (int i = 0; i < repeats; ++i) {
    const auto a = std::chrono::steady_clock::now();
    fn();
    t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - a).count());
  }
  return Median(t);
}

// The network's forward + MSE + backward on z with the option `field` on and off (and `also`,
// an option `field` needs, on in both), from the same weights, alternated pair by pair (what a
// shared machine's drift would bias otherwise), 5 pairs after one untimed: the median times (s) and
// the median of the pairs' ratios on / off (steadier than the ratio of the medians when the machine
// drifts).
struct BothWays {
  double on = 0, off = 0, ratio = 0;
};
BothWays NetworkBothWays(const DipOptions& dip, const torch::Tensor& z, bool NetworkOptions::*field,
                         bool NetworkOptions::*also = nullptr) {
  NetworkOptions options = ToNetworkOptions(dip);
  if (also) options.*also = true;
  options.*field = true;
  MultiResUNet on(options);
  options.*field = false;
  MultiResUNet off(options);
  {
    torch::NoGradGuard no_grad;
    auto from = on->named_parameters();
    for (auto& q : off->named_parameters()) q.value().copy_(from[q.key()]);
  }
  const auto target = torch::rand({1, 3, z.size(2), z.size(3)});
  const auto seconds = [&](MultiResUNet& net) {
    const auto t0 = std::chrono::steady_clock::now();
    net->zero_grad();
    torch::mse_loss(net->forward(z), target).backward();
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  std::vector<double> times_on, times_off, ratios;
  for (int pair = 0; pair < 6; ++pair) {
    double t_on, t_off;
    if (pair % 2 == 0) {
      t_on = seconds(on);
      t_off = seconds(off);
    } else {
      t_off = seconds(off);
      t_on = seconds(on);
    }
    if (pair == 0) continue;
    times_on.push_back(t_on);
    times_off.push_back(t_off);
    ratios.push_back(t_on / t_off);
  }
  return {Median(times_on), Median(times_off), Median(ratios)};
}

}  // namespace

void ResetPeakMemory(const std::string& device) {
#if defined(DIPPAS_HAVE_CUDA)
  if (device == "cuda") {
    // The caching allocator refuses ("Invalid device argument") before its first allocation.
    (void)torch::zeros({1}, torch::Device(torch::kCUDA));
    c10::cuda::CUDACachingAllocator::resetPeakStats(0);
  }
#else
  (void)device;
#endif
}

bool PeakIsGpu(const std::string& device) {
#if defined(DIPPAS_HAVE_CUDA)
  return device == "cuda";
#else
  (void)device;
  return false;
#endif
}

double PeakMemoryMiB(const std::string& device) {
#if defined(DIPPAS_HAVE_CUDA)
  if (device == "cuda") {
    // Index 0 is the aggregate over pool types in every LibTorch version.
    return static_cast<double>(
               c10::cuda::CUDACachingAllocator::getDeviceStats(0).allocated_bytes[0].peak) /
           (1 << 20);
  }
#endif
  (void)device;
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_maxrss) / 1024.0;
}

void BenchPrnu(int64_t size, int repeats, const std::string& device) {
  torch::manual_seed(0);
  // Synthetic 8-bit photographs: smooth scene plus noise, so no stage sees a degenerate input.
  auto make = [&] {
    auto base = torch::rand({3, size / 8, size / 8}) * 200.0;
    auto up = torch::upsample_bilinear2d(base.unsqueeze(0), {size, size}, false).squeeze(0);
    return (up + torch::randn({3, size, size}) * 4.0).clamp(0, 255).round().to(torch::Device(device));
  };
  std::vector<torch::Tensor> imgs;
  for (int i = 0; i < 10; ++i) imgs.push_back(make());
  const auto k = (torch::randn({size, size}) * 0.01).to(torch::Device(device));
  auto timed = [&](int n, const std::function<void()>& fn) {
    return MedianSeconds(n, [&] {
      fn();
      Sync(device);
    });
  };

  const double t_res = timed(repeats, [&] { Residual(imgs[0]); });
  const double t_wav = timed(repeats, [&] { WaveletNoise(imgs[0], {}); });
  const auto gray = ToGray(WaveletNoise(imgs[0], {}));
  const double t_zm = timed(repeats, [&] { ZeroMeanTotal(gray); });
  const double t_wd = timed(repeats, [&] { WienerDft(gray); });
  const auto batch = torch::stack(imgs);
  const double t_batch = timed(std::max(1, repeats / 3), [&] { Residual(batch); });
  const double t_fp = timed(std::max(1, repeats / 3), [&] {
    FingerprintAccumulator acc;
    for (const auto& im : imgs) acc.Add(im);
    acc.Finish();
  });
  const auto w = Residual(imgs[0]);
  const auto g = ToGray(imgs[0]);
  const double t_det = timed(repeats, [&] {
    Ncc(w, g, k).item<double>();
    Pce(w, g * k);
  });
  std::printf("prnu bench, %lldx%lld RGB, %s, %d threads, median of %d runs\n", static_cast<long long>(size),
              static_cast<long long>(size), device.c_str(), at::get_num_threads(), repeats);
  std::printf("  residual (1 image)        %9.2f ms\n", t_res * 1e3);
  std::printf("    wavelet noise (3 ch)    %9.2f ms\n", t_wav * 1e3);
  std::printf("    zero-mean               %9.2f ms\n", t_zm * 1e3);
  std::printf("    Wiener-DFT              %9.2f ms\n", t_wd * 1e3);
  std::printf("  residual, batch of 10      %8.2f ms\n", t_batch * 1e3);
  std::printf("  fingerprint (10 images)   %9.2f ms\n", t_fp * 1e3);
  std::printf("  NCC + PCE (1 pair)        %9.2f ms\n", t_det * 1e3);
}

// N iterations of the real loop (default network unless --config/--set), with
// every candidate admitted to the pool (τ = 0) so that the pool work is counted.
void BenchDip(int64_t size, int64_t iterations, const std::string& device, const DipOptions& base,
              bool compare) {
  ResetPeakMemory(device);
  torch::manual_seed(0);
  auto base_img = torch::rand({1, 3, size / 8, size / 8}) * 200.0;
  auto img = (torch::upsample_bilinear2d(base_img, {size, size}, false)[0] + torch::randn({3, size, size}) * 3.0)
                 .clamp(0, 255)
                 .round();
  auto p = torch::randn({size, size});
  DipRunOptions run;
  run.dip = base;
  run.dip.max_iterations = iterations;
  run.dip.psnr_min = 1e-6;  // every candidate joins the pool
  run.dip.psnr_stop = 100.0;
  run.dip.pool_max = 0;        // no stop rule ends the timed iterations early
  run.dip.plateau_window = 0;
  run.dip.block_size = std::min<int64_t>(run.dip.block_size, size);
  run.device = device;
  // Warm-up (allocator, kernels), not counted.
  {
    DipRunOptions warm = run;
    warm.dip.max_iterations = 2;
    RunDip(img, p, warm);
  }
  LoopProfile prof;
  prof.profile = true;
  RunDip(img, p, run, {}, &prof);
  // On a GPU the stage timings synchronise the device, which a real run never does: time the
  // loop once more as it runs. (On the CPU the two are the same run.)
  double plain = prof.total;
  if (device == "cuda") {
    const auto t0 = std::chrono::steady_clock::now();
    RunDip(img, p, run);
    Sync(device);
    plain = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  const double loop = prof.forward + prof.backward + prof.optimizer + prof.pool;
  std::printf("dip bench, %lldx%lld, %s, %d threads, %lld iterations, %lld parameters (+γ)\n",
              static_cast<long long>(size), static_cast<long long>(size), device.c_str(), at::get_num_threads(),
              static_cast<long long>(iterations), static_cast<long long>(NetworkParameterCount(run.dip)));
  const char* wait_policy = std::getenv("OMP_WAIT_POLICY");
  std::printf("  OpenMP wait policy        %s\n", wait_policy ? wait_policy : "(unset)");
  std::printf("  dippas's parallel loops   %s\n", ParallelBackend());
  std::printf("  direct 3×3 kernels        %s\n", Conv3x3Kernel());
  std::printf("  Philox kernel             %s\n", PhiloxKernel());
  std::printf("  iterations/s              %9.3f (no stage timing: the loop as it runs)\n",
              static_cast<double>(iterations) / plain);
  std::printf("  iterations/s, profiled    %9.3f (device synchronised around each stage)\n",
              static_cast<double>(iterations) / prof.total);
  std::printf("  time per iteration        %9.2f ms\n",
              1e3 * plain / static_cast<double>(iterations));
  std::printf("  forward                   %8.1f %%\n", 100 * prof.forward / loop);
  std::printf("    of which z + std·n      %8.1f %%\n", 100 * prof.perturb / loop);
  std::printf("  backward                  %8.1f %%\n", 100 * prof.backward / loop);
  std::printf("  optimizer                 %8.1f %%\n", 100 * prof.optimizer / loop);
  std::printf("  pool (residual, NCC, top-L) %6.1f %%\n", 100 * prof.pool / loop);
  PrintPeak(device);
  if (device == "cpu" && compare) {
    // The two generators of z's perturbation on this z, side by side (median of 3 each).
    const auto z = torch::randn({1, run.dip.input_depth, size, size}) * run.dip.input_noise_std;
    auto out = torch::empty_like(z);
    PerturbInput(z, run.dip.reg_noise_std, out, true);  // pages touched before timing
    const double philox =
        MedianSeconds(3, [&] { PerturbInput(z, run.dip.reg_noise_std, out, true); });
    const double normal =
        MedianSeconds(3, [&] { PerturbInput(z, run.dip.reg_noise_std, out, false); });
    std::printf(
        "  z + std·n alone, %lld×%lld×%lld: Philox %.1f ms, torch normal_ %.1f ms (%.2fx); the loop"
        " above used %s\n",
        static_cast<long long>(run.dip.input_depth), static_cast<long long>(size),
        static_cast<long long>(size), 1e3 * philox, 1e3 * normal, philox / normal,
        run.dip.philox_noise ? "Philox" : "normal_");
    // The AVX-512 Philox kernel against the AVX2 one, the same bits (median of 3 each).
    const std::string best = PhiloxKernel();
    if (best == "avx512" && SelectPhiloxKernel("avx2")) {
      const double avx2 =
          MedianSeconds(3, [&] { PerturbInput(z, run.dip.reg_noise_std, out, true); });
      SelectPhiloxKernel(best);
      std::printf(
          "  z + std·n alone, Philox kernels: avx512 %.1f ms, avx2 %.1f ms (%.2fx); the loop"
          " above used the first\n",
          1e3 * philox, 1e3 * avx2, philox / avx2);
    }
    // The first block's two convolutions on z (3×3 → c1, 1×1 shortcut), forward and the weights'
    // backward, both ways on this z, side by side (median of 3 each).
    torch::manual_seed(0);
    MultiResBlock block(run.dip.filters[0], run.dip.input_depth, run.dip.alpha);
    auto conv3 = block->conv1->conv;
    auto conv1 = block->shortcut->conv;
    const auto once = [&](bool fused) {
      block->zero_grad();
      auto [a, b] =
          fused ? FusedConv3x3And1x1(out, conv3, conv1) : std::make_pair(conv3(out), conv1(out));
      (a.sum() + b.sum()).backward();
    };
    once(true);
    once(false);
    const double fused = MedianSeconds(3, [&] { once(true); });
    const double convs = MedianSeconds(3, [&] { once(false); });
    std::printf(
        "  first block's convolutions on z, forward + backward: one matrix product %.1f ms,"
        " LibTorch convolutions %.1f ms (%.2fx); the loop above used %s\n",
        1e3 * fused, 1e3 * convs, fused / convs,
        run.dip.fused_input ? "the matrix product" : "the convolutions");
    // The whole network, forward + MSE + backward on this z, each CPU rewrite on and off.
    const auto both_ways = [&](bool NetworkOptions::*field, const char* used, const char* on_name,
                               const char* off_name, bool NetworkOptions::*also = nullptr) {
      const auto t = NetworkBothWays(run.dip, out, field, also);
      std::printf(
          "  network forward + backward: %s %.1f ms, %s %.1f ms (%.2fx, median of 5 alternated"
          " pairs); the loop above used %s\n",
          on_name, 1e3 * t.on, off_name, 1e3 * t.off, t.ratio, used);
    };
    const auto which = [](bool first) { return first ? "the first" : "the second"; };
    both_ways(&NetworkOptions::fused_norm, which(run.dip.fused_norm != 0), "fused BatchNorm",
              "LibTorch's BatchNorm");
    both_ways(&NetworkOptions::fused_decoder, which(run.dip.fused_decoder != 0),
              "last decoder block as one matrix product", "as convolutions");
    both_ways(&NetworkOptions::fused_upsample,
              run.dip.fused_decoder == 0 ? "neither (fused_decoder: 0)"
                                         : which(run.dip.fused_upsample != 0),
              "that product on the deeper features before upsampling",
              "on the upsampled concatenation", &NetworkOptions::fused_decoder);
    // At the smallest size (32) the first level's narrow layers still take them.
    both_ways(&NetworkOptions::direct_conv, which(run.dip.direct_conv != 0),
              "dippas's own convolutions (3×3 direct, 1×1 products)", "oneDNN's");
  }
}

}  // namespace dippas
