// dippas bench: timings that the speed targets are judged by (printed, not asserted).
#include "commands.h"
#include "common.h"
#include "dippas/dip/config.h"
#include "dippas/util/bench.h"
#include "dippas/util/runtime.h"

namespace dippas {

int RunBench(int argc, char** argv) {
  struct Options {
    std::string what = "prnu";  // which benchmark: prnu | dip
    int64_t iterations = 20;    // DIP iterations timed
    std::string device = "auto";  // auto | cpu | cuda
    std::string config;         // network/loop settings (default: the paper's)
    int64_t size = 512;         // image side
    int repeats = 9;            // timed runs (median reported)
    bool loop_only = false;     // dip: skip the side-by-side comparisons of the CPU rewrites
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
  app.add_option("--config", opt.config, "dip: config file (YAML/JSON) for the network; default: the paper's (configs/default.yaml)");
  app.add_option("--size", opt.size, "Image side in pixels")->default_val(512)->check(CLI::Range(32, 8192));
  app.add_flag("--loop-only", opt.loop_only,
               "dip: time the loop alone, without comparing each CPU rewrite with what it replaces "
               "(those take about a minute at 512 and count in the process's peak memory)");
  app.add_option("--repeats", opt.repeats, "Timed runs; the median is printed")->default_val(9)->check(CLI::Range(1, 1000));
  common.Add(app);
  CLI11_PARSE(app, argc, argv);
  return Guard("bench", [&] {
    common.Apply();
    const std::string device = ResolveDevice(opt.device);
    if (opt.what == "prnu") BenchPrnu(opt.size, opt.repeats, device);
    if (opt.what == "dip") {
      const DipOptions dip = opt.config.empty() ? DipOptions{} : LoadDipConfig(opt.config);
      BenchDip(opt.size, opt.iterations, device, dip, !opt.loop_only);
    }
    return 0;
  });
}

}  // namespace dippas
