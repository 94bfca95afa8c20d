// dippas assemble: re-assemble Î from a saved candidate pool with other B, L, τ (SPEC §6), without
// re-running the DIP (the library's dippas/assembly/sweep.h does the work).
#include <cstdio>

#include "commands.h"
#include "common.h"
#include "dippas/assembly/sweep.h"

namespace dippas {
namespace {

void AddSweepOptions(CLI::App& app, SweepOptions& opt) {
  app.add_option("--pool", opt.pool, "Pool folder (pool.npy + pool.json)")->required();
  auto* prnu =
      app.add_option("--prnu", opt.prnu, "Reference pattern P (.npy) to score blocks against");
  auto* blind =
      app.add_flag("--blind", opt.blind, "Blind mode: P = residual of the original image");
  prnu->excludes(blind);
  blind->excludes(prnu);
  app.add_option("--image", opt.image,
                 "Original image I (default: the path recorded in pool.json)");
  app.add_option("--eval-prnu", opt.eval_prnu,
                 "Fingerprint K for the NCC/PCE columns (default: --prnu; none in blind mode)");
  app.add_option("--crop", opt.crop,
                 "Centre N×N crop of the image and patterns (default: as recorded in the pool)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--block-size", opt.block_sizes, "B: block side(s), e.g. 32,64 or 32 64")
      ->required()
      ->delimiter(',');
  app.add_option("--top", opt.tops, "L: candidates averaged per block, one or more values")
      ->required()
      ->delimiter(',');
  app.add_option("--psnr-min", opt.taus, "τ: PSNR (dB) a candidate needs, one or more values")
      ->required()
      ->delimiter(',');
  app.add_option("--pool-max", opt.pool_maxes,
                 "M: assemble from the first M candidates at each τ only, what a run with "
                 "pool_max = M would have kept before stopping; one or more values, 0 = all "
                 "(default: all, and no _M in the file names)")
      ->delimiter(',');
  app.add_option("--sigma", opt.sigma,
                 "Wavelet noise σ of the residual (default: as recorded in the pool, else 3)")
      ->check(CLI::PositiveNumber);
  app.add_flag("--order-by-abs", opt.order_by_abs,
               "Rank each block's candidates by |ρ| whatever its sign (default: the paper's order, "
               "negative ρ first)");
  app.add_option("--select-residual", opt.select_residual,
                 "w: rank each block's candidates by their correlation with P/σ + w·W/σ, W the "
                 "original's own residual, which holds the camera's whole pattern where P holds "
                 "part (default: the weight the pool's run used, else 0: P alone)");
  app.add_option("--out-dir", opt.out_dir, "Folder for the images, sweep.csv and sweep.json")
      ->required();
}

}  // namespace

int RunAssemble(int argc, char** argv) {
  SweepOptions opt;
  CommonOptions common;
  CLI::App app{
      "Re-assemble a saved candidate pool (anonymize --save-pool) with other block sizes B, top L, "
      "PSNR thresholds τ and pool limits M, without re-running the DIP. One image per combination, "
      "plus sweep.csv and sweep.json with PSNR, NCC and PCE of each.",
      "dippas assemble"};
  AddSweepOptions(app, opt);
  common.Add(app);
  AddMatVarOption(app);
  CLI11_PARSE(app, argc, argv);
  opt.quiet = common.quiet;
  return Guard("assemble", [&] {
    common.Apply();
    SweepMessages messages;
    messages.info = [](const std::string& s) { std::fprintf(stderr, "%s\n", s.c_str()); };
    messages.warning = [](const std::string& s) {
      std::fprintf(stderr, "warning: %s\n", s.c_str());
    };
    const SweepResult r = RunSweep(opt, messages);
    if (!common.quiet) {
      const std::string note = r.skipped ? " (" + std::to_string(r.skipped) +
                                               " combinations skipped: empty pool at their τ)"
                                         : "";
      std::fprintf(stderr, "wrote %lld images, %s and %s%s\n", static_cast<long long>(r.images),
                   r.csv_path.c_str(), r.json_path.c_str(), note.c_str());
    }
    return 0;
  });
}

}  // namespace dippas
