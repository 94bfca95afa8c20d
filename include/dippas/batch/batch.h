// Batch anonymization: `dippas anonymize` over a Dresden/Vision-style tree ROOT/<device>/<images>
// or a CSV manifest, one child process per item, resumable. Every item's outputs are written
// atomically by the child (PNG first, then the metrics JSON), so "complete" is decided from the
// JSON alone, and a crash or Ctrl-C at any moment leaves nothing a rerun would take for done.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <istream>
#include <string>
#include <vector>

namespace dippas {

// What `dippas batch` was asked to do.
struct BatchOptions {
  std::string input;                // ROOT/<device>/<images>; base of relative manifest paths
  std::string fingerprints;         // FPS/<device>.npy
  std::string manifest;             // CSV image,device[,fingerprint] instead of the tree
  bool aware = false;               // P = the device's fingerprint
  bool blind = false;               // P = each image's own residual
  std::string output;               // OUT folder (created)
  int jobs = 1;                     // children at once
  std::string method = "dip";       // dip | subtract | denoise
  std::string device = "auto";      // auto | cpu | cuda, for the children
  int64_t crop = 0;                 // centre crop side, 0 = whole image
  std::vector<std::string> config;  // config files for the children
  std::vector<std::string> set;     // key=value overrides for the children
  bool retry_failed = false;        // re-run items that failed before
  int threads = 0;                  // threads per child; 0 = all cores / jobs
  bool quiet = false;               // no progress display, no closing lines

  // std::invalid_argument naming the option for a missing or contradictory choice or a
  // missing folder. (The config files and --set keys are checked by RunBatchJob.)
  void Check() const;
};

// One input image and where its outputs go.
struct BatchItem {
  std::string image;              // absolute path of the input
  std::string label;              // the image as the summary names it (relative to ROOT)
  std::string device;             // camera / device folder name
  std::string fingerprint;        // fingerprint K (.npy) of the device; empty when none
  std::string key;                // output path relative to OUT, without extension: unique
  std::filesystem::path out_dir;  // OUT/<device>/<rel>
  std::string stem;               // file name of the input without extension
  std::string plan_error;         // known to fail before running (no fingerprint, duplicate)

  std::filesystem::path Png() const { return out_dir / (stem + ".anon.png"); }
  std::filesystem::path Json() const { return out_dir / (stem + ".anon.json"); }
  std::filesystem::path Log() const { return out_dir / (stem + ".log"); }
};

// Called with a warning (an ignored file…), one line without the "dippas batch: " prefix.
using BatchWarning = std::function<void(const std::string&)>;

// ROOT/<device>/**/<image>: every image file below each device folder, sorted; hidden entries
// and the folder `out` (when inside ROOT) are skipped. Fingerprints: `fps`/<device>.npy.
std::vector<BatchItem> ScanBatchTree(const std::filesystem::path& root,
                                     const std::filesystem::path& out, const std::string& fps,
                                     const BatchWarning& warn);

// One CSV record (RFC 4180 quoting, fields trimmed of blanks; `line` counts the lines read);
// false at the end of the input. std::invalid_argument for an unterminated quote.
bool ReadCsvRecord(std::istream& in, std::vector<std::string>& fields, int64_t& line);

// A manifest: CSV image,device[,fingerprint], optionally with that header. Relative image
// paths are taken from `root` (or the manifest's folder), fingerprints from the manifest's.
// std::invalid_argument naming the file and line for a bad record.
std::vector<BatchItem> ReadBatchManifest(const std::string& path, const std::string& root,
                                         const std::filesystem::path& out);
std::vector<BatchItem> ParseBatchManifest(std::istream& in, const std::string& path,
                                          const std::string& root,
                                          const std::filesystem::path& out);

// How a batch ended.
struct BatchResult {
  int64_t done = 0, skipped = 0, failed = 0, interrupted = 0;
  std::vector<std::string> failures;  // "label: error", one per failed item
  std::string summary;                // OUT/summary.csv
  int exit_code = 0;                  // 0 all done, 3 interrupted, 4 some items failed
};

// Runs the batch: checks that no output (summary.csv, the items' PNG/JSON/log…) is an input
// (image, fingerprint, manifest, config) before any work, skips complete items, runs the others
// `jobs` at a time (SIGINT/SIGTERM: forwarded once, then SIGKILL on the second), and keeps
// OUT/summary.csv and OUT/.failed.json current. Errors before the first item throw.
BatchResult RunBatchJob(const BatchOptions& options, const BatchWarning& warn);

}  // namespace dippas
