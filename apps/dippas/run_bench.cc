// dippas bench: timings that the speed targets are judged by (printed, not asserted).
#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>

#include <sys/resource.h>

#include "commands.h"
#include "common.h"
#include "dippas/dip/config.h"
#include "dippas/dip/loop.h"
#include "dippas/prnu/detection.h"
#include "dippas/prnu/fingerprint.h"
#include "dippas/prnu/residual.h"
#include "dippas/util/runtime.h"

namespace dippas {
namespace {

// Median wall time of `repeats` runs after one warm-up.
double MedianSeconds(int repeats, const std::function<void()>& fn) {
  fn();
  std::vector<double> t;
  for (int i = 0; i < repeats; ++i) {
    const auto a = std::chrono::steady_clock::now();
    fn();
    t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - a).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

void BenchPrnu(int64_t size, int repeats) {
  torch::manual_seed(0);
  // Synthetic 8-bit photographs: smooth scene plus noise, so no stage sees a degenerate input.
  auto make = [&] {
    auto base = torch::rand({3, size / 8, size / 8}) * 200.0;
    auto up = torch::upsample_bilinear2d(base.unsqueeze(0), {size, size}, false).squeeze(0);
    return (up + torch::randn({3, size, size}) * 4.0).clamp(0, 255).round();
  };
  std::vector<torch::Tensor> imgs;
  for (int i = 0; i < 10; ++i) imgs.push_back(make());
  const auto k = torch::randn({size, size}) * 0.01;

  const double t_res = MedianSeconds(repeats, [&] { Residual(imgs[0]); });
  const double t_wav = MedianSeconds(repeats, [&] { WaveletNoise(imgs[0], {}); });
  const auto gray = ToGray(WaveletNoise(imgs[0], {}));
  const double t_zm = MedianSeconds(repeats, [&] { ZeroMeanTotal(gray); });
  const double t_wd = MedianSeconds(repeats, [&] { WienerDft(gray); });
  const double t_fp = MedianSeconds(std::max(1, repeats / 3), [&] {
    FingerprintAccumulator acc;
    for (const auto& im : imgs) acc.Add(im);
    acc.Finish();
  });
  const auto w = Residual(imgs[0]);
  const auto g = ToGray(imgs[0]);
  const double t_det = MedianSeconds(repeats, [&] {
    Ncc(w, g, k).item<double>();
    Pce(w, g * k);
  });
  std::printf("prnu bench, %lldx%lld RGB, %d threads, median of %d runs\n", static_cast<long long>(size),
              static_cast<long long>(size), at::get_num_threads(), repeats);
  std::printf("  residual (1 image)        %9.2f ms\n", t_res * 1e3);
  std::printf("    wavelet noise (3 ch)    %9.2f ms\n", t_wav * 1e3);
  std::printf("    zero-mean               %9.2f ms\n", t_zm * 1e3);
  std::printf("    Wiener-DFT              %9.2f ms\n", t_wd * 1e3);
  std::printf("  fingerprint (10 images)   %9.2f ms\n", t_fp * 1e3);
  std::printf("  NCC + PCE (1 pair)        %9.2f ms\n", t_det * 1e3);
}

// N iterations of the real loop (default network unless --config/--set), with
// every candidate admitted to the pool (τ = 0) so that the pool work is counted.
void BenchDip(int64_t size, int64_t iterations, const std::string& device, const DipOptions& base) {
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
  const double loop = prof.forward + prof.backward + prof.optimizer + prof.pool;
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  std::printf("dip bench, %lldx%lld, %s, %d threads, %lld iterations, %lld parameters (+γ)\n",
              static_cast<long long>(size), static_cast<long long>(size), device.c_str(), at::get_num_threads(),
              static_cast<long long>(iterations), static_cast<long long>(NetworkParameterCount(run.dip)));
  std::printf("  iterations/s              %9.3f\n", static_cast<double>(iterations) / prof.total);
  std::printf("  time per iteration        %9.2f ms\n", 1e3 * prof.total / static_cast<double>(iterations));
  std::printf("  forward                   %8.1f %%\n", 100 * prof.forward / loop);
  std::printf("  backward                  %8.1f %%\n", 100 * prof.backward / loop);
  std::printf("  optimizer                 %8.1f %%\n", 100 * prof.optimizer / loop);
  std::printf("  pool (residual, NCC, top-L) %6.1f %%\n", 100 * prof.pool / loop);
  std::printf("  peak resident memory      %9.1f MiB (whole process)\n", static_cast<double>(ru.ru_maxrss) / 1024.0);
}

}  // namespace

int RunBench(int argc, char** argv) {
  struct Options {
    std::string what = "prnu";  // which benchmark: prnu | dip
    int64_t iterations = 20;    // DIP iterations timed
    std::string device = "auto";  // auto | cpu | cuda
    std::string config;         // network/loop settings (default: SPEC §8)
    int64_t size = 512;         // image side
    int repeats = 9;            // timed runs (median reported)
  } opt;
  CommonOptions common;
  CLI::App app{"Print timings: the PRNU stages (residual, fingerprint of 10 images, NCC+PCE), or N iterations of "
               "the DIP loop (it/s, memory, share of forward/backward/optimizer/pool)",
               "dippas bench"};
  app.add_option("--what", opt.what, "Benchmark to run: prnu or dip")
      ->check(CLI::IsMember({"prnu", "dip"}))
      ->default_val("prnu");
  app.add_option("--iterations", opt.iterations, "dip: iterations timed")->default_val(20)->check(CLI::Range(1, 100000));
  app.add_option("--device", opt.device, "dip: auto, cpu or cuda")->check(CLI::IsMember({"auto", "cpu", "cuda"}));
  app.add_option("--config", opt.config, "dip: config file (YAML/JSON) for the network; default SPEC §8");
  app.add_option("--size", opt.size, "Image side in pixels")->default_val(512)->check(CLI::Range(32, 8192));
  app.add_option("--repeats", opt.repeats, "Timed runs; the median is printed")->default_val(9)->check(CLI::Range(1, 1000));
  common.Add(app);
  CLI11_PARSE(app, argc, argv);
  return Guard("bench", [&] {
    common.Apply();
    if (opt.what == "prnu") BenchPrnu(opt.size, opt.repeats);
    if (opt.what == "dip") {
      const DipOptions dip = opt.config.empty() ? DipOptions{} : LoadDipConfig(opt.config);
      BenchDip(opt.size, opt.iterations, ResolveDevice(opt.device), dip);
    }
    return 0;
  });
}

}  // namespace dippas
