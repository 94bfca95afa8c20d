// dippas anonymize: options → AnonymizeOptions, then the library pipeline (pipeline/anonymize.h).
#include <atomic>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <memory>
#include <optional>
#include <unistd.h>

#include "commands.h"
#include "common.h"
#include "dippas/dip/config.h"
#include "dippas/io/atomic_file.h"
#include "dippas/pipeline/anonymize.h"
#include "dippas/util/progress.h"
#include "dippas/util/runtime.h"

namespace dippas {
namespace {

std::atomic<int> g_signals{0};
bool g_checkpointing = false;  // --checkpoint: SIGTERM/SIGUSR1 save the state and never abort

// First SIGINT/SIGTERM/SIGUSR1: stop after the iteration (saving the checkpoint, if any).
// Second: exit at once (130) removing the temporaries in flight — unless the outputs are being
// committed, which then completes (3). With a checkpoint, only a second SIGINT aborts: a
// cluster may deliver SIGTERM to every process of a job and through its script as well.
void OnSignal(int sig) {
  if (g_checkpointing && sig != SIGINT) {
    g_signals.fetch_add(1);
    return;
  }
  if (g_signals.fetch_add(1) >= 1 && BeginAbort()) {
    RemoveTemporaryFiles();
    _exit(130);
  }
}

std::string ProgressStatus(const AnonymizeProgress& p) {
  char s[200];
  const IterationRecord& r = *p.record;
  if (p.tiles > 1) {
    std::snprintf(s, sizeof(s), "tile %lld/%lld  it %lld  tile PSNR %.2f dB  pool %lld",
                  static_cast<long long>(p.tile->index + 1), static_cast<long long>(p.tiles),
                  static_cast<long long>(r.iteration), r.psnr, static_cast<long long>(p.pool_size));
  } else {
    std::snprintf(s, sizeof(s), "PSNR %.2f dB  γ %.4f  pool %lld", r.psnr, r.gamma,
                  static_cast<long long>(p.pool_size));
  }
  return s;
}

// Named options that override config keys (after --config and --set).
struct Overrides {
  std::vector<std::string> set;  // key=value
  std::optional<int64_t> seed, max_iterations, block_size, top, tile_size;
  std::optional<double> psnr_min, psnr_stop, sigma, lr;
};

void AddOptions(CLI::App& app, AnonymizeOptions& opt, Overrides& ov, std::string& device, bool& describe) {
  app.add_option("--image", opt.image, "Input image (PNG, JPEG, TIFF, BMP)");
  auto* prnu =
      app.add_option("--prnu", opt.prnu,
                     "Camera fingerprint K (.npy, or .mat with --mat-var): PRNU-aware mode, P = K");
  auto* blind = app.add_flag("--blind", opt.blind, "PRNU-blind mode: P = the image's own noise residual");
  prnu->excludes(blind);
  app.add_option("--eval-prnu", opt.eval_prnu,
                 "Fingerprint for the NCC/PCE before/after in the metrics (default: --prnu; none in blind mode)");
  app.add_option("--config", opt.config,
                 "Config file (YAML or JSON, keys as in configs/default.yaml); repeatable (later files override "
                 "earlier ones); the options below override them")
      ->allow_extra_args(false);
  app.add_option("--set", ov.set, "Override any config key, e.g. --set filters=8,16,32,64,128 (repeatable)")
      ->allow_extra_args(false);
  app.add_option("--crop", opt.crop, "Anonymize the centre N×N crop (image and fingerprint)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--device", device, "auto (CUDA when available), cpu or cuda")
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}));
  app.add_option("--seed", ov.seed, "Seed of every random draw (default 0)");
  app.add_option("--max-iterations", ov.max_iterations, "Iteration budget, per tile (default 10000)");
  app.add_option("--psnr-min", ov.psnr_min, "τ: PSNR for a candidate to join the pool, dB (default 38)");
  app.add_option("--psnr-stop", ov.psnr_stop, "Stop once PSNR exceeds this, dB (default 39)");
  app.add_option("--block-size", ov.block_size, "B: assembly block side (default 64)");
  app.add_option("--top", ov.top, "L: candidates averaged per block (default 10)");
  app.add_option("--sigma", ov.sigma, "Residual σ (default 3)");
  app.add_option("--lr", ov.lr, "Adam learning rate (default 0.001)");
  app.add_option("--tile-size", ov.tile_size,
                 "Tile side for large photos, rounded down to a multiple of B (default 512; 0 = never tile)");
  app.add_flag("--keep-tiles", opt.keep_tiles, "Keep the work folder <out>.tiles/ after a successful tiled run");
  app.add_option(
      "--checkpoint", opt.checkpoint,
      "Work folder for resuming: the loop state is saved there every checkpoint_every iterations / "
      "checkpoint_seconds (config keys) and on SIGTERM, SIGUSR1 or Ctrl-C; rerunning the same "
      "command resumes, bit for bit as an uninterrupted run with the same seed and threads. "
      "Removed on success");
  app.add_flag("--restart", opt.restart,
               "With --checkpoint: discard a checkpoint made with other inputs or settings instead "
               "of stopping");
  app.add_option("--out", opt.out, "Anonymized PNG (default: <image>.anon.png beside the input)");
  app.add_option("--metrics", opt.metrics, "Metrics JSON (default: the output path with .json)");
  app.add_option(
      "--history", opt.history,
      "Per-iteration CSV: [tile,] iteration, loss, PSNR, γ, admitted, NCC (the rows also go to "
      "<this path>.part as the loop runs; removed once the CSV is written)");
  app.add_flag("--history-ncc", opt.history_ncc, "Compute the NCC of every candidate for the history (slower)");
  app.add_option("--save-pool", opt.save_pool, "Keep the admitted candidates in this folder (for dippas assemble)");
  app.add_flag("--describe", describe, "Print the network (parameter count, widths) and exit");
  app.add_option("--method", opt.method,
                 "dip (DIPPAS), or a baseline: subtract (Î = I·(1 − α·K), α bisected to NCC ≈ 0; "
                 "needs --prnu) or denoise (Î = I − wavelet noise)")
      ->check(CLI::IsMember({"dip", "subtract", "denoise"}));
}

// Settings: defaults ← config files ← --set ← the named options.
void ApplySettings(AnonymizeOptions& opt, const Overrides& ov) {
  for (const auto& path : opt.config) opt.dip = LoadDipConfig(path, opt.dip);
  for (const auto& kv : ov.set) {
    const auto eq = kv.find('=');
    if (eq == std::string::npos) throw UsageError("--set " + kv + ": expected key=value");
    SetDipOption(opt.dip, kv.substr(0, eq), kv.substr(eq + 1));
  }
  auto apply = [](auto& field, const auto& value) {
    if (value) field = *value;
  };
  apply(opt.dip.seed, ov.seed);
  apply(opt.dip.max_iterations, ov.max_iterations);
  apply(opt.dip.psnr_min, ov.psnr_min);
  apply(opt.dip.psnr_stop, ov.psnr_stop);
  apply(opt.dip.block_size, ov.block_size);
  apply(opt.dip.top, ov.top);
  apply(opt.dip.sigma, ov.sigma);
  apply(opt.dip.lr, ov.lr);
  apply(opt.dip.tile_size, ov.tile_size);
}

}  // namespace

int RunAnonymize(int argc, char** argv) {
  AnonymizeOptions opt;
  Overrides ov;
  std::string device = "auto";
  bool describe = false;
  CommonOptions common;
  CLI::App app{"Anonymize a photograph: regenerate it with a deep image prior while a learned γ·P is injected, "
               "then assemble per block the candidates least correlated with the fingerprint (DIPPAS). Photos "
               "larger than tile_size are anonymized tile by tile, resumably.",
               "dippas anonymize"};
  AddOptions(app, opt, ov, device, describe);
  common.Add(app);
  AddMatVarOption(app);
  CLI11_PARSE(app, argc, argv);

  return Guard("anonymize", [&]() -> int {
    ApplySettings(opt, ov);
    if (describe) {
      try {
        opt.dip.Check();
      } catch (const std::invalid_argument& e) {
        throw UsageError(std::string("invalid option ") + e.what());
      }
      std::cout << DescribeNetwork(opt.dip);
      return 0;
    }
    opt.device = ResolveDevice(device);
    common.Apply();
    g_signals = 0;
    g_checkpointing = !opt.checkpoint.empty();
    std::signal(SIGINT, OnSignal);
    std::signal(SIGTERM, OnSignal);
    std::signal(SIGUSR1, OnSignal);
    const bool is_dip = opt.method == "dip";
    Progress progress("anonymize", is_dip ? opt.dip.max_iterations : 0, !common.quiet && is_dip);
    std::unique_ptr<Progress> tiles_progress;
    AnonymizeCallbacks cb;
    cb.stop_requested = [] { return g_signals.load() > 0; };
    cb.on_message = [&](const std::string& m) {
      if (!common.quiet) std::fprintf(stderr, "%s\n", m.c_str());
    };
    cb.on_notice = [&](const std::string& m) { std::fprintf(stderr, "%s\n", m.c_str()); };
    cb.on_iteration = [&](const AnonymizeProgress& p) {
      if (p.tiles == 1) return progress.Update(p.record->iteration, ProgressStatus(p));
      // Tiles: the bar counts tiles, so its ETA is the whole photo's.
      if (!tiles_progress) tiles_progress = std::make_unique<Progress>("anonymize", p.tiles, !common.quiet);
      tiles_progress->Update(p.tiles_done, ProgressStatus(p));
    };
    const AnonymizeOutcome outcome = Anonymize(opt, cb);
    progress.Finish();
    if (tiles_progress) tiles_progress->Finish();
    if (!common.quiet || !outcome.written) std::fprintf(stderr, "%s\n", outcome.summary.c_str());
    if (outcome.resumable) {
      std::string cmd = "dippas";
      for (int i = 0; i < argc; ++i) cmd += std::string(" ") + argv[i];
      std::fprintf(stderr, "resume with: %s\n", cmd.c_str());
    }
    return outcome.ExitCode();
  });
}

}  // namespace dippas
