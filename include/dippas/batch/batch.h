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
#include <utility>
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
  bool keep_different = false;      // keep items finished with other settings (else redone)
  std::string mat_var;              // variable of .mat fingerprints, for the children
  int threads = 0;                  // threads per child; 0 = all cores / jobs
  bool quiet = false;               // no progress display, no closing lines
  // --shard I/N: run only the items with ShardOf(key, N) == I, so N machines (a job array)
  // share one OUT; shards = 0: every item.
  int shard = 0;
  int shards = 0;
  // --collect: run nothing; rebuild the plan (--input/--manifest/--fingerprints), merge the
  // shards' summaries and the items' metrics into OUT/summary.csv, list what is missing.
  bool collect = false;

  // std::invalid_argument naming the option for a missing or contradictory choice or a
  // missing folder. (The config files and --set keys are checked by RunBatchJob.)
  void Check() const;
  // OUT/summary.csv, or OUT/summary.shard-I-of-N.csv for a shard.
  std::string SummaryName() const;
};

// "I/N" with 0 ≤ I < N → {I, N}; std::invalid_argument naming --shard otherwise.
std::pair<int, int> ParseShard(const std::string& text);

// The shard of an item: FNV-1a 64 of its key (output path relative to OUT) modulo N, so the
// split depends on neither the order of the scan or manifest nor the other items.
int ShardOf(const std::string& key, int shards);

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
  int64_t done = 0, skipped = 0, failed = 0, interrupted = 0, missing = 0, redone = 0;
  std::vector<std::string> failures;  // "label: error", one per failed item
  std::vector<std::string> missing_items;  // --collect: labels no shard finished or reported
  std::string summary;                     // OUT/summary.csv (or the shard's)
  int exit_code = 0;  // 0 all done, 3 interrupted, 4 some items failed (or, collecting, missing)
};

// Runs the batch: checks that no output (summary.csv, the items' PNG/JSON/log…) is an input
// (image, fingerprint, manifest, config) before any work, skips complete items finished with
// the same settings (settings_hash in their metrics; others are redone unless keep_different),
// runs the others `jobs` at a time, and keeps the summary and OUT/.failed.json current.
// Signals: SIGINT is forwarded once, a second one SIGKILLs the children; SIGTERM and SIGUSR1
// (a scheduler's warning, which may come twice) are forwarded once as SIGTERM and never
// escalate; the batch then exits 3 once the children have. With options.collect, merges the
// shards instead (see BatchOptions::collect). Errors before the first item throw.
BatchResult RunBatchJob(const BatchOptions& options, const BatchWarning& warn);

}  // namespace dippas
