// Dataset-level evaluation (SPEC §4): which files to score (a tree or a manifest), the
// summary of their NCC/PCE/PSNR scores (pooled and per-device ROC AUC, TPR at FPR, PSNR,
// trade-off C), and the image operations the evaluation applies (JPEG round trip, edge mask).
// No tensors: the scoring itself is the caller's (dippas evaluate).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "dippas/io/image.h"

namespace dippas {

// One image to score: the original, its device, and (when evaluating an anonymization)
// the anonymized version of it.
struct DatasetItem {
  std::string original;    // path of the original image
  std::string device;      // camera identity
  std::string anonymized;  // path of its anonymized version; empty when none
};

struct Dataset {
  std::vector<DatasetItem> items;  // trees: by device, then path; manifests: file order
  std::map<std::string, std::string> fingerprints;  // device → fingerprint .npy
  std::vector<std::string> missing;  // originals without an anonymized file (skipped)
};

// The anonymized version of `stem` in folder `dir`: an image file named `<stem>.anon.<ext>`
// (preferred: what `dippas anonymize` writes) or `<stem>.<ext>`, ext any image extension.
// Empty when there is none or `dir` does not exist; std::runtime_error naming the files when
// two files match equally (e.g. x.png and x.jpg).
std::string FindAnonymized(const std::string& dir, const std::string& stem);

// Trees: `originals/<device>/[sub/…/]<image>`, fingerprints `fingerprints/<device>.npy`, and
// (when `anonymized` is not empty) `anonymized/<device>/[sub/…/]` holding each image's
// anonymized version (FindAnonymized). Device folders without images are skipped; files
// directly in `originals` are ignored. std::runtime_error naming the path for: a missing root,
// no images at all, a missing fingerprint, a missing anonymized file (unless allow_missing:
// then the item is left out of every set and listed in `missing`).
Dataset ScanTrees(const std::string& originals, const std::string& fingerprints,
                  const std::string& anonymized, bool allow_missing);

// Manifest CSV with a header naming the columns image, device, fingerprint (optional when
// fingerprints_dir is given: then `<fingerprints_dir>/<device>.npy`) and, optionally,
// anonymized. Relative paths are relative to the manifest's folder; fields may be double-quoted.
// A device must have one fingerprint. An empty anonymized cell in a manifest that has the
// column is a missing file (error, or skipped with allow_missing). std::runtime_error naming
// the file and line otherwise.
Dataset ReadManifest(const std::string& path, const std::string& fingerprints_dir,
                     bool allow_missing);

// Scores of one image against one fingerprint.
struct PairScore {
  std::string image;           // the file scored
  std::string device;          // the image's device
  std::string fingerprint;     // the fingerprint's device
  double ncc = 0;              // NaN when undefined
  double pce = 0;              // NaN when undefined
  std::optional<double> psnr;  // vs the original; nullopt when not computed, +inf when unchanged
};

// The summary of one set of scores (pooled, or one device's fingerprint).
struct SetSummary {
  std::optional<double> auc_ncc, auc_pce;        // nullopt without positives or negatives
  std::optional<double> tpr_ncc, tpr_pce;        // TPR at the summary's max FPR
  std::optional<double> psnr_mean, psnr_median;  // over images with a finite PSNR
  std::optional<double> c_metric;                // PSNR_mean·(1 − 2|AUC_ncc − 0.5|)
  int64_t n_images = 0;                          // distinct images (of that device)
  int64_t n_positives = 0, n_negatives = 0;      // pairs behind the AUC
  int64_t n_unchanged = 0;                       // images with infinite PSNR (identical)
};

struct DatasetSummary {
  SetSummary pooled;                             // all pairs
  std::map<std::string, SetSummary> per_device;  // one entry per device that has images
};

// Positives and negatives of the ROC (SPEC §4): for fingerprint device d, pairs of d's images
// are positives and pairs of other devices' images negatives; nullopt pools every fingerprint.
struct RocSets {
  std::vector<double> pos_ncc, neg_ncc, pos_pce, neg_pce;
};
RocSets SplitScores(const std::vector<PairScore>& scores,
                    const std::optional<std::string>& fingerprint);

// Pooled and per-device statistics. An image's PSNR is read from its first row; infinite
// PSNRs (unchanged images: SPEC says null, not infinity) are counted in n_unchanged and left
// out of the mean and median.
DatasetSummary Summarize(const std::vector<PairScore>& scores, double max_fpr = 0.01);

// One row of the per-iteration history `dippas anonymize --history` writes.
struct HistoryPoint {
  int64_t iteration = 0;
  double psnr = 0;
  std::optional<double> ncc;  // empty cell: not computed
};

// Reads a history CSV (header with at least `iteration` and `psnr`; `ncc` optional). Rows with
// a non-finite PSNR are kept (the caller filters). std::runtime_error naming file and line.
std::vector<HistoryPoint> ReadHistory(const std::string& path);

// The image after a JPEG save at `quality` (1..100) and reload, in memory: values rounded to
// 8 bits first, as a file writer would.
Image JpegRoundTrip(const Image& image, int quality);

// Canny edges (thresholds low/high) of the 8-bit gray of `image`, dilated `dilate` times with
// a 3×3 kernel: height·width values, 1 on an edge, 0 elsewhere.
std::vector<uint8_t> EdgeMask(const Image& image, double low, double high, int dilate);

}  // namespace dippas
