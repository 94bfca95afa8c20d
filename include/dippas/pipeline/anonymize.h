// One anonymization as a library call: load the image and the pattern (K, or blind), score
// them, run DIPPAS (tile by tile on large photos) or a baseline, score the result, and write
// the anonymized image, the metrics JSON and the optional history and pool — all of them
// committed in one step, or none. `dippas anonymize` and batch runs call this.
#pragma once

#include <torch/types.h>

#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "dippas/dip/loop.h"
#include "dippas/dip/options.h"
#include "dippas/pipeline/tiles.h"

namespace dippas {

struct AnonymizeOptions {
  std::string image;                // input photograph (PNG, JPEG, TIFF, BMP)
  std::string prnu;                 // fingerprint K (.npy): PRNU-aware mode, P = K
  bool blind = false;               // PRNU-blind mode: P = the image's own noise residual
  std::string eval_prnu;            // fingerprint scoring NCC/PCE before/after ("" = prnu)
  std::vector<std::string> config;  // config files that were applied: inputs, never overwritten
  int64_t crop = 0;                 // centre N×N crop of image and fingerprint; 0 = whole image
  std::string device = "cpu";       // cpu | cuda, already resolved
  std::string method = "dip";       // dip (DIPPAS) | subtract | denoise (baselines)
  std::string out;                  // anonymized image, format by extension (.png, .jpg, .tif,
                                    // .bmp); "" = <image>.anon.png beside the input
  int jpeg_quality = 0;             // JPEG quality 1..100 of a .jpg --out (0 = 95)
  std::string metrics;              // metrics JSON; "" = the output's path with .json
  std::string history;              // per-iteration CSV; "" = none
  bool history_ncc = false;         // NCC of every candidate in the history (slower)
  std::string save_pool;            // folder keeping the admitted candidates; "" = none
  bool keep_tiles = false;          // keep the work folder <out>.tiles/ after success
  std::string checkpoint;           // work folder saving the loop state too, for resuming
                                    // ("" = <out>.tiles/ when tiled, no loop state)
  bool restart = false;             // discard a checkpoint of other inputs or settings
  DipOptions dip;                   // the method's settings (the config file keys)

  // UsageError naming the option: missing image, mode, method-specific options.
  void Check() const;
  std::string OutputPath() const;   // `out` or its default
  std::string MetricsPath() const;  // `metrics` or its default
  std::string WorkFolder() const;   // `checkpoint`, or <output>.tiles
};

// For --describe with --image: the image's size, its tile grid, and the memory a CPU run of it
// needs against what is available, one item per line (the network itself: DescribeNetwork).
// IoError naming the file as ReadImage; UsageError for a --crop larger than the image.
std::string DescribeRun(const AnonymizeOptions& opt);

// What the progress display gets after every iteration.
struct AnonymizeProgress {
  const Tile* tile = nullptr;  // the tile running
  int64_t tiles = 1;           // tiles in the grid
  int64_t tiles_done = 0;      // finished (or reused) so far
  int64_t tiles_running = 1;   // tiles running at once (DipOptions::concurrent_tiles)
  const IterationRecord* record = nullptr;
  int64_t pool_size = 0;
  // Iterations the tile is expected to take still (StopProjection: the PSNR trend, the limits);
  // nullopt early on.
  std::optional<int64_t> iterations_left;
  // The tiles this run has finished (reused ones not counted) and the seconds they took.
  int64_t finished_tiles = 0;
  double finished_seconds = 0;
};

struct AnonymizeCallbacks {
  std::function<void(const AnonymizeProgress&)> on_iteration;  // progress display
  std::function<bool()> stop_requested;                        // polled every iteration
  std::function<void(const std::string&)> on_message;          // notes for the user (work folder…)
  std::function<void(const std::string&)> on_notice;  // checkpoint saved / resumed: always shown
};

struct AnonymizeOutcome {
  bool written = false;      // the outputs were committed
  bool interrupted = false;  // stopped by a request (exit code 3)
  bool resumable = false;    // interrupted with finished tiles or a checkpoint kept
  nlohmann::json metrics;    // the metrics JSON (written when `written`)
  std::string summary;       // one line for the user
  int ExitCode() const { return interrupted ? 3 : 0; }
};

// Runs the whole flow. Errors (bad input, sizes, unwritable outputs, an output naming an
// input) throw before any long work starts, naming the file.
AnonymizeOutcome Anonymize(const AnonymizeOptions& options, const AnonymizeCallbacks& callbacks = {});

// NCC and PCE of an image against a fingerprint (nothing when `k` is undefined).
struct AttributionScores {
  std::optional<double> ncc, pce;
};
AttributionScores ScoreImage(const torch::Tensor& image, const torch::Tensor& k, double sigma);

}  // namespace dippas
