// The dataset evaluation report (`dippas evaluate`): every image of a dataset (dataset.h) scored
// against every device's fingerprint, before and after anonymization (and/or a JPEG round trip,
// or on edges only), then summary.json, summary.csv, scores*.csv, roc_*.csv and gnuplot plots
// (roc.png, history.png) in an output folder.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "dippas/eval/dataset.h"

namespace dippas {

// What `dippas evaluate` was asked to do.
struct EvaluateOptions {
  std::string originals;       // originals tree ROOT/<device>/<image>
  std::string fingerprints;    // FPS/<device>.npy
  std::string anonymized;      // ROOT2/<device>/<image stem>[.anon].<ext>
  std::string manifest;        // CSV instead of the trees
  std::string out;             // output folder (created at the end; its parent must exist)
  std::string method;          // name in the report and the plot; empty: derived from the inputs
  std::string history;         // anonymize --history CSV → the history plot (paper Fig. 2)
  bool allow_missing = false;  // skip originals without an anonymized version
  int jpeg_quality = 0;        // 1..100: JPEG round trip of the scored images; 0: none
  bool edges = false;          // score the Canny edges of the original only (paper §5.2)
  double canny_low = 50;       // Canny low threshold
  double canny_high = 150;     // Canny high threshold
  int edge_dilate = 1;         // dilations of the edge mask by a 3×3 kernel
  double sigma = 3;            // wavelet noise σ of the residual
  int64_t crop = 0;            // centre N×N crop of images and fingerprints; 0 = whole image
  int64_t search = 0;          // PCE peak search radius (pixels)
  double psnr_min = 38;        // τ (dB) drawn on the history plot
  bool no_plots = false;       // CSV and JSON only
  bool quiet = false;          // no progress display

  // std::invalid_argument naming the option: no dataset given, trees without fingerprints, an
  // --out that is a file or whose parent folder does not exist.
  void Check() const;
};

// The outcome: the summaries and where the report was written.
struct EvaluationReport {
  DatasetSummary before;     // the originals' scores
  DatasetSummary after;      // the anonymized (or JPEG) images' scores, when has_after
  bool has_after = false;    // the scored images differ from the originals
  std::string summary_json;  // <out>/summary.json
};

// Called with a warning (a skipped image, a plot not drawn), without the "warning: " prefix.
using EvaluateWarning = std::function<void(const std::string&)>;

// Reads the dataset, refuses an output file that is one of the inputs (originals, anonymized,
// fingerprints, manifest, history), scores, and writes the report. Errors before any output
// throw std::invalid_argument / std::runtime_error naming the file.
EvaluationReport RunEvaluation(const EvaluateOptions& options, const EvaluateWarning& warn);

// The table `dippas evaluate` prints: a header and one row per set (before/after) and device.
std::string FormatEvaluationTable(const EvaluationReport& report);

}  // namespace dippas
