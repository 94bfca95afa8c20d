// dippas anonymize: options → AnonymizeOptions, then the library pipeline (pipeline/anonymize.h).
#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <deque>
#include <cstdio>
#include <iostream>
#include <map>
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

// The progress line: where the run is, time elapsed, and the time left as the stop rule projects
// it (StopProjection's iterations at the recent seconds per iteration; for a tiled photo, the
// tiles after this one at the finished tiles' mean, or at this tile's projected length).
class AnonymizeStatus {
 public:
  std::string Line(const AnonymizeProgress& p) {
    const auto now = std::chrono::steady_clock::now();
    // Each tile its own pace (tiles may run at once: their iterations interleave).
    auto& stamps = stamps_[p.tile != nullptr ? p.tile->index : 0];
    stamps.push_back(now);
    if (stamps.size() > 51) stamps.pop_front();
    const IterationRecord& r = *p.record;
    char s[240];
    if (p.tiles > 1) {
      std::snprintf(s, sizeof(s), "tile %lld/%lld%s  it %lld  PSNR %.2f dB  pool %lld",
                    static_cast<long long>(p.tile->index + 1), static_cast<long long>(p.tiles),
                    p.tiles_running > 1
                        ? (" (" + std::to_string(p.tiles_running) + " at once)").c_str()
                        : "",
                    static_cast<long long>(r.iteration), r.psnr, static_cast<long long>(p.pool_size));
    } else {
      std::snprintf(s, sizeof(s), "it %lld  PSNR %.2f dB  γ %.4f  pool %lld",
                    static_cast<long long>(r.iteration), r.psnr, r.gamma,
                    static_cast<long long>(p.pool_size));
    }
    std::string line = s;
    line += "  elapsed " + FormatDuration(std::chrono::duration<double>(now - start_).count());
    // Seconds per iteration over the last 50 (the first ones of a tile run slower).
    const double per_it =
        stamps.size() >= 6 ? std::chrono::duration<double>(stamps.back() - stamps.front()).count() /
                                 static_cast<double>(stamps.size() - 1)
                           : 0.0;
    if (!p.iterations_left || per_it <= 0) return line + "  eta …";
    const double tile_left = static_cast<double>(*p.iterations_left) * per_it;
    double left = tile_left;
    // Tiles not started yet, run `running` at a time.
    const int64_t running = std::max<int64_t>(p.tiles_running, 1);
    const int64_t after = p.tiles - p.tiles_done - running;
    if (after > 0) {
      const double per_tile =
          p.finished_tiles > 0 ? p.finished_seconds / static_cast<double>(p.finished_tiles)
                               : static_cast<double>(r.iteration + *p.iterations_left) * per_it;
      left += static_cast<double>((after + running - 1) / running) * per_tile;
      return line + "  eta ~" + FormatDuration(left) + " (tile ~" + FormatDuration(tile_left) + ")";
    }
    return line + "  eta ~" + FormatDuration(left);
  }

 private:
  static std::string FormatDuration(double s) {
    char b[32];
    const auto t = static_cast<long long>(std::llround(std::max(0.0, s)));
    if (t < 60) {
      std::snprintf(b, sizeof(b), "%llds", t);
    } else if (t < 3600) {
      std::snprintf(b, sizeof(b), "%lldm%02llds", t / 60, t % 60);
    } else {
      std::snprintf(b, sizeof(b), "%lldh%02lldm", t / 3600, (t % 3600) / 60);
    }
    return b;
  }

  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  std::map<int64_t, std::deque<std::chrono::steady_clock::time_point>> stamps_;  // per tile
};

// Named options that override config keys (after --config and --set).
struct Overrides {
  std::vector<std::string> set;  // key=value
  std::optional<int64_t> seed, max_iterations, block_size, top, tile_size, concurrent_tiles;
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
  app.add_option("--concurrent-tiles", ov.concurrent_tiles,
                 "Tiles run at once on the CPU, each with an equal share of --threads (default 1: "
                 "one at a time with all of them); each tile's pixels are those it gets alone with "
                 "that share. Not with warm_start 1")
      ->check(CLI::Range(1, 64));
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
  app.add_option("--out", opt.out,
                 "Anonymized image, in the format of its extension: .png (default: <image>.anon.png "
                 "beside the input), .tif, .jpg (--jpeg-quality; compression changes the residual "
                 "just shaped), .bmp. It keeps the input's channels, and its 16 bits where the "
                 "format holds them (PNG, TIFF)");
  app.add_option("--jpeg-quality", opt.jpeg_quality, "Quality 1-100 of a .jpg --out (default 95)")
      ->check(CLI::Range(1, 100));
  app.add_option("--metrics", opt.metrics, "Metrics JSON (default: the output path with .json)");
  app.add_option(
      "--history", opt.history,
      "Per-iteration CSV: [tile,] iteration, loss, PSNR, γ, admitted, NCC (the rows also go to "
      "<this path>.part as the loop runs; removed once the CSV is written)");
  app.add_flag("--history-ncc", opt.history_ncc, "Compute the NCC of every candidate for the history (slower)");
  app.add_option(
      "--save-pool", opt.save_pool,
      "Keep the admitted candidates in this folder (for dippas assemble); with --checkpoint, "
      "the candidates so far wait there in .pool.npy.partial until the run ends");
  app.add_flag("--describe", describe,
               "Print the network (parameter count, widths) and exit; with --image, also the "
               "image's tiles and the memory a CPU run of it needs against what is available");
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
  apply(opt.dip.concurrent_tiles, ov.concurrent_tiles);
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
      const std::string run = opt.image.empty() ? "" : DescribeRun(opt);  // its errors first
      std::cout << DescribeNetwork(opt.dip) << run;
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
    // No bar: max_iterations is a budget, not what a run takes; the status line has the ETA.
    Progress progress("anonymize", 0, !common.quiet && is_dip);
    AnonymizeStatus status;
    AnonymizeCallbacks cb;
    cb.stop_requested = [] { return g_signals.load() > 0; };
    cb.on_message = [&](const std::string& m) {
      if (!common.quiet) std::fprintf(stderr, "%s\n", m.c_str());
    };
    cb.on_notice = [&](const std::string& m) { std::fprintf(stderr, "%s\n", m.c_str()); };
    cb.on_iteration = [&](const AnonymizeProgress& p) {
      const std::string line = status.Line(p);
      progress.Show(line);
    };
    const AnonymizeOutcome outcome = Anonymize(opt, cb);
    progress.Finish();
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
