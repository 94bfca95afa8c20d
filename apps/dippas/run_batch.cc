// dippas batch: `dippas anonymize` over a Dresden/Vision-style tree, resumable (the library's
// dippas/batch/batch.h does the work).
#include <cstdio>
#include <iostream>
#include <tuple>

#include "commands.h"
#include "common.h"
#include "dippas/batch/batch.h"

namespace dippas {
namespace {

void AddBatchOptions(CLI::App& app, BatchOptions& opt) {
  app.add_option("--input", opt.input, "ROOT folder: one sub-folder of images per device");
  auto* fps = app.add_option("--fingerprints", opt.fingerprints,
                             "Folder of fingerprints FPS/<device>.npy (aware mode; in blind mode "
                             "they are used for the metrics' NCC/PCE)");
  auto* manifest = app.add_option("--manifest", opt.manifest,
                                  "CSV manifest instead of the tree: image,device[,fingerprint] "
                                  "(header optional; images relative to --input or the manifest)");
  fps->excludes(manifest);
  auto* aware = app.add_flag("--aware", opt.aware, "PRNU-aware: P = the device's fingerprint");
  auto* blind = app.add_flag("--blind", opt.blind, "PRNU-blind: P = each image's own residual");
  aware->excludes(blind);
  app.add_option("--output", opt.output, "OUT folder (created)")->required();
  app.add_option("--jobs", opt.jobs,
                 "Images processed at once, one process each (default 1; keep 1 on a GPU)")
      ->check(CLI::Range(1, 256));
  app.add_option("--method", opt.method, "dip, subtract or denoise (see dippas anonymize)")
      ->check(CLI::IsMember({"dip", "subtract", "denoise"}));
  app.add_option("--device", opt.device, "auto, cpu or cuda")
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}));
  app.add_option("--crop", opt.crop, "Anonymize the centre N×N crop")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--config", opt.config, "Config file for every item (repeatable)")
      ->allow_extra_args(false);
  app.add_option("--set", opt.set, "Override a config key, key=value (repeatable)")
      ->allow_extra_args(false);
  app.add_flag("--retry-failed", opt.retry_failed, "Re-run the items that failed in earlier runs");
  app.add_flag("--keep-different", opt.keep_different,
               "Keep items finished with other settings or another method (default: redo them)");
  app.add_option("--mat-var", opt.mat_var,
                 "Variable holding the fingerprint in .mat files that hold several");
  app.add_option_function<std::string>(
      "--shard",
      [&opt](const std::string& s) {
        try {
          std::tie(opt.shard, opt.shards) = ParseShard(s);
        } catch (const std::invalid_argument& e) {
          throw CLI::ValidationError(e.what());
        }
      },
      "Run only shard I of N (0 <= I < N): a fixed 1/N of the items, the same on every run, "
      "for job arrays sharing OUT; its summary is OUT/summary.shard-I-of-N.csv");
  app.add_flag("--collect", opt.collect,
               "Run nothing: merge the shards' results into OUT/summary.csv (give the same "
               "--input/--manifest/--fingerprints); exit 4 listing missing or failed items");
}

}  // namespace

int RunBatch(int argc, char** argv) {
  BatchOptions opt;
  CommonOptions common;
  CLI::App app{
      "Anonymize a whole folder tree ROOT/<device>/<images> (Dresden/Vision layout), one "
      "`dippas anonymize` process per image; the output mirrors the tree (anonymized PNG, "
      "metrics JSON, log per image) plus OUT/summary.csv. Resumable: a rerun skips "
      "complete items and re-runs interrupted ones; failed items are retried with "
      "--retry-failed; items finished with other settings are redone. SIGTERM/SIGUSR1 stop "
      "the children after their iteration. Exit code 0 all done, 3 interrupted, 4 some "
      "items failed (or, with --collect, are missing)",
      "dippas batch"};
  AddBatchOptions(app, opt);
  common.Add(app);  // --threads: per child; default all cores / jobs
  CLI11_PARSE(app, argc, argv);
  opt.threads = common.threads;
  opt.quiet = common.quiet;
  return Guard("batch", [&] {
    const BatchResult r = RunBatchJob(
        opt, [](const std::string& w) { std::cerr << "dippas batch: warning: " << w << "\n"; });
    // What a collect finds missing is its answer: said even with --quiet.
    if (!opt.quiet || opt.collect) {
      for (const auto& f : r.failures) std::fprintf(stderr, "failed: %s\n", f.c_str());
      for (const auto& m : r.missing_items) std::fprintf(stderr, "missing: %s\n", m.c_str());
    }
    if (!opt.quiet) {
      std::fprintf(stderr,
                   "batch: %ld done, %ld skipped, %ld failed, %ld interrupted%s; summary in %s\n",
                   static_cast<long>(r.done), static_cast<long>(r.skipped),
                   static_cast<long>(r.failed), static_cast<long>(r.interrupted),
                   opt.collect ? (", " + std::to_string(r.missing) + " missing").c_str() : "",
                   r.summary.c_str());
    }
    return r.exit_code;
  });
}

}  // namespace dippas
