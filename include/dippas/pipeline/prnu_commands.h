// The PRNU forensics commands as library calls (SPEC §2–4): the noise residual W of an image,
// the fingerprint K of a camera from flat-fields, and NCC/PCE detection of images against
// fingerprints. File in, file (or rows) out, with the checks a command line needs.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "dippas/prnu/fingerprint_quality.h"

namespace dippas {

// The settings every PRNU command shares.
struct PrnuCommandOptions {
  double sigma = 3;    // wavelet noise σ of the residual
  int64_t crop = 0;    // centre N×N crop of every image (and fingerprint); 0 = whole image
  bool quiet = false;  // no progress display

  void Check() const;  // std::invalid_argument: σ ≤ 0 or crop < 0
};

// `image`'s residual W written to `out` as float32 .npy (H×W); returns {H, W}. --out must not
// be the image (std::invalid_argument naming both).
std::pair<int64_t, int64_t> WriteResidualFile(const std::string& image, const std::string& out,
                                              const PrnuCommandOptions& options);

// The fingerprint K of the flat-field `files` (all the same size; one in memory at a time)
// written to `out` as float32 .npy, and its quality estimate (prnu/fingerprint.h) beside it as
// JSON (FingerprintQualityPath). Neither output may be one of the files.
FingerprintQuality WriteFingerprintFile(const std::vector<std::string>& files,
                                        const std::string& out, const PrnuCommandOptions& options);

// <fingerprint>.quality.json: what `dippas fingerprint` knew of the estimate's quality.
std::string FingerprintQualityPath(const std::string& fingerprint);
// The quality recorded beside a fingerprint; nullopt when there is no such file (a fingerprint
// made elsewhere) or it cannot be read.
std::optional<FingerprintQuality> ReadFingerprintQuality(const std::string& fingerprint);

// What `dippas fingerprint` tells the user of q: the halves' agreement, the estimated ρ, and
// below kWeakFingerprint how many flat-fields would give ρ ≈ 0.9.
std::string FingerprintQualityText(const FingerprintQuality& q);

// Below this estimated ρ a fingerprint leaves a better-informed analyst much to find: anonymize
// warns (docs/quality.md: the stronger-analyst harness).
inline constexpr double kWeakFingerprint = 0.9;

// One image against one fingerprint.
struct DetectRow {
  std::string image, fingerprint;  // paths
  double ncc = 0, pce = 0;         // NaN when undefined
  int64_t peak_row = 0, peak_col = 0;
  bool attributed = false;  // PCE ≥ threshold
};

struct DetectOptions {
  PrnuCommandOptions prnu;                // σ, crop
  std::vector<std::string> fingerprints;  // K files
  std::string json;                       // JSON report; empty: none
  double threshold = 60;                  // PCE decision threshold
  int64_t search = 0;                     // PCE peak search radius (0: zero shift)
  int threads = 0;                        // images scored at once; 0: all cores
};

// Scores every image against every fingerprint; `on_row` sees each row, in image order, as soon
// as it and those before it are known. Writes options.json (which must be no input) at the end.
// Plain C++ and OpenCV (prnu/detection_cpu.h), no LibTorch: src/pipeline/detect.cc; images are
// scored on `threads` threads, one image per thread.
std::vector<DetectRow> DetectFiles(const std::vector<std::string>& files,
                                   const DetectOptions& options,
                                   const std::function<void(const DetectRow&)>& on_row);

}  // namespace dippas
