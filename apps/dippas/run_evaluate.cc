// dippas evaluate: ROC AUC of NCC and PCE, PSNR and the trade-off C over a dataset of originals,
// their anonymized versions and the devices' fingerprints (SPEC §4, paper eq. 12); the library's
// dippas/eval/report.h does the work.
#include <cstdio>
#include <iostream>

#include "commands.h"
#include "common.h"
#include "dippas/eval/report.h"

namespace dippas {
namespace {

void AddEvaluateOptions(CLI::App& app, EvaluateOptions& opt) {
  auto* originals =
      app.add_option("--originals", opt.originals, "Originals tree ROOT/<device>/[…/]<image>");
  auto* manifest =
      app.add_option("--manifest", opt.manifest,
                     "CSV with columns image,device,fingerprint[,anonymized] instead of the trees "
                     "(paths relative to the CSV's folder)");
  originals->excludes(manifest);
  manifest->excludes(originals);
  app.add_option("--fingerprints", opt.fingerprints,
                 "Folder of fingerprints FPS/<device>.npy (or .mat)");
  auto* anonymized = app.add_option(
      "--anonymized", opt.anonymized,
      "Anonymized tree ROOT2/<device>/[…/]: <stem>.anon.<ext> or <stem>.<ext> for each "
      "original ROOT/<device>/[…/]<stem>.<ext>");
  anonymized->excludes(manifest);
  app.add_option("--out", opt.out, "Output folder (created; its parent must exist)")->required();
  app.add_option("--method-name", opt.method,
                 "Name of the anonymization method in the report and plots");
  app.add_flag("--allow-missing", opt.allow_missing,
               "Skip originals without an anonymized version (with a warning)");
  app.add_option("--jpeg-quality", opt.jpeg_quality,
                 "Re-compress the scored images (anonymized, or originals without --anonymized) "
                 "as JPEG of this quality before scoring; PSNR is then taken after the JPEG round "
                 "trip")
      ->check(CLI::Range(1, 100));
  app.add_flag("--edges", opt.edges,
               "Score only the image edges (Canny on the original, dilated; paper §5.2)");
  app.add_option("--canny-low", opt.canny_low, "Canny low threshold (--edges)")->default_val(50.0);
  app.add_option("--canny-high", opt.canny_high, "Canny high threshold (--edges)")
      ->default_val(150.0);
  app.add_option("--edge-dilate", opt.edge_dilate,
                 "Dilations of the edge mask by a 3×3 kernel (--edges)")
      ->default_val(1)
      ->check(CLI::Range(0, 100));
  AddSigmaCropOptions(app, opt.sigma, opt.crop);
  app.add_option("--search", opt.search, "Search the PCE peak within ±N pixels of zero shift")
      ->default_val(0)
      ->check(CLI::NonNegativeNumber);
  app.add_option("--history", opt.history,
                 "Per-iteration CSV of dippas anonymize --history: plot PSNR and NCC against "
                 "iteration (history.png)");
  app.add_option("--psnr-min", opt.psnr_min, "τ (dB) drawn on the history plot")->default_val(38.0);
  app.add_flag("--no-plots", opt.no_plots, "Write the CSV and JSON only, no PNG plots");
}

}  // namespace

int RunEvaluate(int argc, char** argv) {
  EvaluateOptions opt;
  CommonOptions common;
  CLI::App app{
      "Dataset evaluation: per-device and pooled ROC AUC of NCC and PCE (positives: a "
      "device's images against its fingerprint; negatives: every other device's images against "
      "it), TPR at FPR 0.01, PSNR (anonymized vs original) and the trade-off "
      "C = PSNR_mean·(1 − 2|AUC − 0.5|), after and before anonymization",
      "dippas evaluate"};
  AddEvaluateOptions(app, opt);
  common.Add(app);
  AddMatVarOption(app);
  CLI11_PARSE(app, argc, argv);
  opt.quiet = common.quiet;
  return Guard("evaluate", [&] {
    common.Apply();
    const EvaluationReport r =
        RunEvaluation(opt, [](const std::string& w) { std::cerr << "warning: " << w << "\n"; });
    std::fputs(FormatEvaluationTable(r).c_str(), stdout);
    if (!common.quiet)
      std::cerr << "wrote " << r.summary_json << ", scores.csv, summary.csv, roc_*.csv\n";
    return 0;
  });
}

}  // namespace dippas
