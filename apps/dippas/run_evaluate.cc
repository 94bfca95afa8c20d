// dippas evaluate: ROC AUC of NCC and PCE, PSNR and the trade-off C over a dataset of originals,
// their anonymized versions and the devices' fingerprints (SPEC §4, paper eq. 12).
#include <spawn.h>
#include <sys/wait.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <sstream>

#include "commands.h"
#include "common.h"
#include "dippas/eval/dataset.h"
#include "dippas/eval/psnr.h"
#include "dippas/eval/roc.h"
#include "dippas/io/atomic_file.h"
#include "dippas/prnu/detection.h"
#include "dippas/prnu/residual.h"
#include "dippas/util/progress.h"
#include "dippas/util/runtime.h"

extern char** environ;

namespace dippas {
namespace {

namespace fs = std::filesystem;

constexpr double kMaxFpr = 0.01;  // the FPR of tpr_at_fpr_0_01

torch::Tensor Chw(const Image& im) {
  return torch::from_blob(const_cast<float*>(im.data.data()), {im.height, im.width, im.channels},
                          torch::kFloat32)
      .permute({2, 0, 1})
      .contiguous()
      .clone();
}

std::string Size(int64_t h, int64_t w) { return std::to_string(h) + "x" + std::to_string(w); }

// NCC and PCE of images against every device's fingerprint.
class Scorer {
 public:
  Scorer(const std::map<std::string, std::string>& fingerprints, int64_t crop, double sigma,
         int64_t search) {
    ro_.sigma = sigma;
    po_.search_radius = search;
    std::vector<torch::Tensor> ks;
    std::string first;
    for (const auto& [device, path] : fingerprints) {
      auto k = LoadPattern(path, crop);
      if (!ks.empty() && (k.size(0) != ks[0].size(0) || k.size(1) != ks[0].size(1))) {
        throw UsageError(path + ": fingerprint is " + Size(k.size(0), k.size(1)) + " but " + first +
                         " is " + Size(ks[0].size(0), ks[0].size(1)) +
                         " (all fingerprints must have one size; --crop N)");
      }
      if (ks.empty()) first = path;
      devices_.push_back(device);
      paths_.push_back(path);
      ks.push_back(k);
    }
    ks_ = torch::stack(ks);
  }

  int64_t height() const { return ks_.size(1); }
  int64_t width() const { return ks_.size(2); }

  // An image scored must have the fingerprints' size.
  void CheckSize(const Image& im, const std::string& path) const {
    if (im.height != height() || im.width != width()) {
      throw UsageError(path + ": image is " + Size(im.height, im.width) +
                       " but the fingerprints (" + paths_[0] + ", …) are " +
                       Size(height(), width()) + " (use --crop N to compare centre crops)");
    }
  }

  // One row per fingerprint. `mask` (H,W), when defined, restricts W and G·K to its pixels.
  void Score(const torch::Tensor& chw, const torch::Tensor& mask, const std::string& image,
             const std::string& device, std::optional<double> psnr,
             std::vector<PairScore>& out) const {
    auto w = Residual(chw, ro_);  // once per image, for every fingerprint
    auto g = ToGray(chw);
    if (mask.defined()) {
      w = w * mask;
      g = g * mask;
    }
    const int64_t d = ks_.size(0);
    // Batched NCC, in chunks so that the double (chunk,H,W) products stay under ~0.5 GB.
    const int64_t chunk = std::max<int64_t>(1, (int64_t{1} << 26) / (height() * width()));
    std::vector<double> ncc;
    for (int64_t d0 = 0; d0 < d; d0 += chunk) {
      auto n = Ncc(w, g, ks_.slice(0, d0, std::min(d, d0 + chunk))).contiguous();
      ncc.insert(ncc.end(), n.data_ptr<double>(), n.data_ptr<double>() + n.numel());
    }
    const auto spectrum = PceSpectrum(w);
    for (int64_t i = 0; i < d; ++i) {
      PairScore s;
      s.image = image;
      s.device = device;
      s.fingerprint = devices_[i];
      s.ncc = ncc[i];
      s.pce = PceFromSpectrum(spectrum, g * ks_[i], po_).pce;
      s.psnr = psnr;
      out.push_back(s);
    }
  }

 private:
  ResidualOptions ro_;
  PceOptions po_;
  std::vector<std::string> devices_, paths_;
  torch::Tensor ks_;  // (D,H,W)
};

std::string CsvField(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

std::string CsvNumber(double v) {
  if (std::isnan(v)) return "";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

std::string CsvNumber(const std::optional<double>& v) { return v ? CsvNumber(*v) : ""; }

// PSNR column: empty when not computed and when infinite (unchanged image: SPEC says null).
std::string CsvPsnr(const std::optional<double>& v) {
  return v && std::isfinite(*v) ? CsvNumber(*v) : "";
}

void WriteScoresCsv(const std::string& path, const std::vector<PairScore>& scores) {
  std::ostringstream csv;
  csv << "image,device,fingerprint,ncc,pce,psnr\n";
  for (const auto& s : scores) {
    csv << CsvField(s.image) << "," << CsvField(s.device) << "," << CsvField(s.fingerprint) << ","
        << CsvNumber(s.ncc) << "," << CsvNumber(s.pce) << "," << CsvPsnr(s.psnr) << "\n";
  }
  WriteFileAtomic(path, csv.str());
}

void WriteRocCsv(const std::string& path, const std::vector<PairScore>& scores) {
  const auto r = SplitScores(scores, std::nullopt);
  std::ostringstream csv;
  csv << "fpr,tpr\n";
  for (const auto& p : RocCurve(r.pos_ncc, r.neg_ncc))
    csv << CsvNumber(p.fpr) << "," << CsvNumber(p.tpr) << "\n";
  WriteFileAtomic(path, csv.str());
}

nlohmann::json SetJson(const SetSummary& s) {
  return {{"auc_ncc", NumberOrNull(s.auc_ncc)},
          {"auc_pce", NumberOrNull(s.auc_pce)},
          {"tpr_at_fpr_0_01", NumberOrNull(s.tpr_ncc)},
          {"tpr_at_fpr_0_01_pce", NumberOrNull(s.tpr_pce)},
          {"psnr_mean", NumberOrNull(s.psnr_mean)},
          {"psnr_median", NumberOrNull(s.psnr_median)},
          {"c_metric", NumberOrNull(s.c_metric)},
          {"n_images", s.n_images},
          {"n_positives", s.n_positives},
          {"n_negatives", s.n_negatives},
          {"n_unchanged", s.n_unchanged}};
}

nlohmann::json SummaryJson(const DatasetSummary& d) {
  auto j = SetJson(d.pooled);
  j["per_device"] = nlohmann::json::object();
  for (const auto& [device, s] : d.per_device) j["per_device"][device] = SetJson(s);
  return j;
}

void AddSummaryRows(std::ostringstream& csv, const std::string& set, const DatasetSummary& d) {
  auto row = [&](const std::string& device, const SetSummary& s) {
    csv << set << "," << CsvField(device) << "," << s.n_images << "," << CsvNumber(s.auc_ncc) << ","
        << CsvNumber(s.auc_pce) << "," << CsvNumber(s.tpr_ncc) << "," << CsvNumber(s.tpr_pce) << ","
        << CsvNumber(s.psnr_mean) << "," << CsvNumber(s.psnr_median) << "," << CsvNumber(s.c_metric)
        << "\n";
  };
  row("pooled", d.pooled);
  for (const auto& [device, s] : d.per_device) row(device, s);
}

std::string Fixed(const std::optional<double>& v, int decimals) {
  if (!v || !std::isfinite(*v)) return "-";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, *v);
  return buf;
}

void PrintTable(const std::string& set, const DatasetSummary& d) {
  auto row = [&](const std::string& device, const SetSummary& s) {
    std::printf("%-8s %-24s %6lld %9s %9s %8s %10s %10s %8s\n", set.c_str(), device.c_str(),
                static_cast<long long>(s.n_images), Fixed(s.auc_ncc, 4).c_str(),
                Fixed(s.auc_pce, 4).c_str(), Fixed(s.tpr_ncc, 3).c_str(),
                Fixed(s.psnr_mean, 2).c_str(), Fixed(s.psnr_median, 2).c_str(),
                Fixed(s.c_metric, 2).c_str());
  };
  row("pooled", d.pooled);
  for (const auto& [device, s] : d.per_device) row(device, s);
}

std::string ScriptsDir() {
  if (const char* env = std::getenv("DIPPAS_SCRIPTS_DIR"); env && *env) return env;
#ifdef DIPPAS_SCRIPTS_DIR
  return DIPPAS_SCRIPTS_DIR;
#else
  return "scripts";
#endif
}

// A gnuplot single-quoted string literal ('' is a quote inside).
std::string GpString(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("''") : std::string(1, c);
  return q + "'";
}

// Renders `out` with scripts/<script>; a missing gnuplot or a failed plot is a warning, not an
// error: the numbers (JSON, CSV) are the result, the picture a convenience.
bool Plot(const std::string& script, const std::string& settings, const std::string& out) {
  const std::string path = (fs::path(ScriptsDir()) / script).string();
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) {
    std::cerr << "warning: " << path << " not found (set DIPPAS_SCRIPTS_DIR): " << out
              << " not drawn\n";
    return false;
  }
  std::vector<std::string> args = {"gnuplot", "-e", settings, path};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  if (posix_spawnp(&pid, "gnuplot", nullptr, nullptr, argv.data(), environ) != 0) {
    std::cerr << "warning: gnuplot not found (apt-get install gnuplot-nox): " << out
              << " not drawn\n";
    return false;
  }
  int status = 0;
  if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::cerr << "warning: gnuplot failed on " << path << ": " << out << " not drawn\n";
    return false;
  }
  return true;
}

std::string AucLabel(const std::string& name, const std::optional<double>& auc) {
  return name + " (AUC " + Fixed(auc, 4) + ")";
}

}  // namespace

int RunEvaluate(int argc, char** argv) {
  struct Options {
    std::string originals;     // ROOT/<device>/<image>
    std::string fingerprints;  // FPS/<device>.npy
    std::string anonymized;    // ROOT2/<device>/<image stem>[.anon].<ext>
    std::string manifest;      // CSV instead of the trees
    std::string out;           // output folder
    std::string method;        // name in the report and the plot
    std::string history;       // anonymize --history CSV → Fig. 2
    bool allow_missing = false;
    int jpeg_quality = 0;  // 0: no re-compression
    bool edges = false;
    double canny_low = 50, canny_high = 150;
    int edge_dilate = 1;
    double sigma = 3;
    int64_t crop = 0;
    int64_t search = 0;
    double psnr_min = 38;  // τ line of the history plot
    bool no_plots = false;
  } opt;
  CommonOptions common;
  CLI::App app{
      "Dataset evaluation (SPEC §4): per-device and pooled ROC AUC of NCC and PCE (positives: a "
      "device's images against its fingerprint; negatives: every other device's images against "
      "it), TPR at FPR 0.01, PSNR (anonymized vs original) and the trade-off "
      "C = PSNR_mean·(1 − 2|AUC − 0.5|), after and before anonymization",
      "dippas evaluate"};
  auto* originals =
      app.add_option("--originals", opt.originals, "Originals tree ROOT/<device>/[…/]<image>");
  auto* manifest =
      app.add_option("--manifest", opt.manifest,
                     "CSV with columns image,device,fingerprint[,anonymized] instead of the trees "
                     "(paths relative to the CSV's folder)");
  originals->excludes(manifest);
  manifest->excludes(originals);
  app.add_option("--fingerprints", opt.fingerprints, "Folder of fingerprints FPS/<device>.npy");
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
  app.add_option("--sigma", opt.sigma, "Wavelet noise σ of the residual (SPEC §2)")
      ->default_val(3.0)
      ->check(CLI::PositiveNumber);
  app.add_option("--crop", opt.crop,
                 "Use the centre N×N crop of every image and fingerprint; 0 = whole image")
      ->default_val(0)
      ->check(CLI::NonNegativeNumber);
  app.add_option("--search", opt.search, "Search the PCE peak within ±N pixels of zero shift")
      ->default_val(0)
      ->check(CLI::NonNegativeNumber);
  app.add_option("--history", opt.history,
                 "Per-iteration CSV of dippas anonymize --history: plot PSNR and NCC against "
                 "iteration (history.png)");
  app.add_option("--psnr-min", opt.psnr_min, "τ (dB) drawn on the history plot")->default_val(38.0);
  app.add_flag("--no-plots", opt.no_plots, "Write the CSV and JSON only, no PNG plots");
  common.Add(app);
  CLI11_PARSE(app, argc, argv);
  return Guard("evaluate", [&] {
    common.Apply();
    if (opt.originals.empty() && opt.manifest.empty())
      throw UsageError("give --originals ROOT or --manifest CSV");
    if (!opt.originals.empty() && opt.fingerprints.empty())
      throw UsageError("--originals needs --fingerprints FPS");
    // Check the output folder's parent before any work, create the folder only at the end.
    std::error_code ec;
    const fs::path out_dir(opt.out);
    if (fs::exists(out_dir, ec) && !fs::is_directory(out_dir, ec)) {
      throw UsageError(opt.out + ": --out exists and is not a folder");
    }
    const fs::path parent = out_dir.parent_path().empty() ? fs::path(".") : out_dir.parent_path();
    if (!fs::is_directory(parent, ec)) {
      throw UsageError(opt.out + ": cannot create the output folder, " + parent.string() +
                       " does not exist");
    }
    const Dataset ds =
        opt.manifest.empty()
            ? ScanTrees(opt.originals, opt.fingerprints, opt.anonymized, opt.allow_missing)
            : ReadManifest(opt.manifest, opt.fingerprints, opt.allow_missing);
    for (const auto& m : ds.missing)
      std::cerr << "warning: no anonymized version of " << m << ": skipped\n";
    const std::vector<HistoryPoint> history =
        opt.history.empty() ? std::vector<HistoryPoint>{} : ReadHistory(opt.history);
    const bool has_anonymized = !ds.items.front().anonymized.empty();
    const bool has_after =
        has_anonymized || opt.jpeg_quality > 0;  // scored images differ from the originals
    std::string method = opt.method;
    if (method.empty()) {
      method = has_anonymized
                   ? (opt.anonymized.empty()
                          ? fs::path(opt.manifest).stem().string()
                          : fs::path(opt.anonymized).lexically_normal().filename().string())
                   : "originals";
      if (method.empty()) method = "anonymized";
      if (opt.jpeg_quality > 0) method += " + JPEG " + std::to_string(opt.jpeg_quality);
    }

    const Scorer scorer(ds.fingerprints, opt.crop, opt.sigma, opt.search);
    std::vector<PairScore> before, after;
    Progress progress("evaluate", static_cast<int64_t>(ds.items.size()), !common.quiet);
    for (size_t i = 0; i < ds.items.size(); ++i) {
      const auto& item = ds.items[i];
      const Image original_full = ReadImage(item.original);
      const Image original =
          opt.crop > 0 ? CenterCrop(original_full, opt.crop, item.original) : original_full;
      scorer.CheckSize(original, item.original);
      const auto chw_o = Chw(original);
      torch::Tensor mask;
      if (opt.edges) {
        // Edges of the original: the same pixels are scored before and after.
        auto m = EdgeMask(original, opt.canny_low, opt.canny_high, opt.edge_dilate);
        mask = torch::from_blob(m.data(), {original.height, original.width}, torch::kUInt8)
                   .to(torch::kFloat32);
      }
      scorer.Score(chw_o, mask, item.original, item.device, std::nullopt, before);
      if (has_after) {
        const std::string path = has_anonymized ? item.anonymized : item.original;
        Image a = has_anonymized ? ReadImage(path) : original_full;
        // JPEG on the whole file, as a save would do, then the crop.
        if (opt.jpeg_quality > 0) a = JpegRoundTrip(a, opt.jpeg_quality);
        if (opt.crop > 0) a = CenterCrop(a, opt.crop, path);
        if (a.height != original.height || a.width != original.width ||
            a.channels != original.channels) {
          throw UsageError(path + ": anonymized image is " + Size(a.height, a.width) + "x" +
                           std::to_string(a.channels) + " but its original " + item.original +
                           " is " + Size(original.height, original.width) + "x" +
                           std::to_string(original.channels));
        }
        const auto chw_a = Chw(a);
        scorer.Score(chw_a, mask, path, item.device, Psnr8(chw_a, chw_o),
                     after);  // PSNR over the whole image
      }
      progress.Update(static_cast<int64_t>(i + 1), fs::path(item.original).filename().string());
    }
    progress.Finish();

    const DatasetSummary sum_before = Summarize(before, kMaxFpr);
    const DatasetSummary sum_after = has_after ? Summarize(after, kMaxFpr) : DatasetSummary{};
    const DatasetSummary& evaluated = has_after ? sum_after : sum_before;

    nlohmann::json j = SummaryJson(evaluated);
    j["evaluated"] = has_anonymized ? "anonymized" : (has_after ? "originals_jpeg" : "originals");
    j["method"] = method;
    if (has_after) j["before"] = SummaryJson(sum_before);
    j["counts"] = {{"images", ds.items.size()},
                   {"devices", evaluated.per_device.size()},
                   {"fingerprints", ds.fingerprints.size()},
                   {"pairs", (has_after ? after : before).size()},
                   {"missing_anonymized", ds.missing.size()},
                   {"unchanged", evaluated.pooled.n_unchanged}};
    j["missing_anonymized"] = ds.missing;
    j["fingerprints"] = ds.fingerprints;
    j["options"] = {{"jpeg_quality",
                     opt.jpeg_quality > 0 ? nlohmann::json(opt.jpeg_quality) : nlohmann::json()},
                    {"edges", opt.edges},
                    {"canny_low", opt.canny_low},
                    {"canny_high", opt.canny_high},
                    {"edge_dilate", opt.edge_dilate},
                    {"crop", opt.crop},
                    {"sigma", opt.sigma},
                    {"pce_search", opt.search},
                    {"max_fpr", kMaxFpr}};
    j["inputs"] = {{"originals", opt.originals},
                   {"anonymized", opt.anonymized},
                   {"manifest", opt.manifest},
                   {"fingerprints", opt.fingerprints},
                   {"history", opt.history}};
    j["dippas"] = Version();

    if (!fs::is_directory(out_dir, ec)) fs::create_directory(out_dir);
    const auto file = [&](const std::string& name) { return (out_dir / name).string(); };
    WriteScoresCsv(file("scores.csv"), has_after ? after : before);
    if (has_after) WriteScoresCsv(file("scores_before.csv"), before);
    std::ostringstream table;
    table << "set,device,n_images,auc_ncc,auc_pce,tpr_at_fpr_0_01,tpr_at_fpr_0_01_pce,psnr_mean,"
             "psnr_median,c_metric\n";
    AddSummaryRows(table, "before", sum_before);
    if (has_after) AddSummaryRows(table, "after", sum_after);
    WriteFileAtomic(file("summary.csv"), table.str());
    WriteRocCsv(file("roc_before.csv"), before);
    if (has_after) WriteRocCsv(file("roc_after.csv"), after);

    nlohmann::json plots = nlohmann::json::object();
    if (!opt.no_plots) {
      std::string settings = "before=" + GpString(file("roc_before.csv")) + "; before_label=" +
                             GpString(AucLabel("originals", sum_before.pooled.auc_ncc)) +
                             "; out=" + GpString(file("roc.png"));
      if (has_after) {
        settings += "; after=" + GpString(file("roc_after.csv")) +
                    "; after_label=" + GpString(AucLabel(method, sum_after.pooled.auc_ncc));
      }
      if (opt.edges) settings += "; plot_title=" + GpString("ROC of the pooled NCC, edges only");
      if (Plot("plot_roc.gp", settings, file("roc.png"))) plots["roc"] = file("roc.png");
    }
    if (!history.empty()) {
      std::ostringstream csv;
      csv << "iteration,psnr,ncc\n";
      bool has_ncc = false;
      for (const auto& p : history) {
        if (!std::isfinite(p.psnr)) continue;
        csv << p.iteration << "," << CsvNumber(p.psnr) << "," << CsvNumber(p.ncc) << "\n";
        has_ncc = has_ncc || p.ncc.has_value();
      }
      WriteFileAtomic(file("history_points.csv"), csv.str());
      if (!has_ncc)
        std::cerr << "warning: " << opt.history
                  << " has no NCC column values (anonymize --history-ncc)\n";
      if (!opt.no_plots) {
        char tau[32];
        std::snprintf(tau, sizeof tau, "%.9g", opt.psnr_min);
        const std::string settings = "in=" + GpString(file("history_points.csv")) +
                                     "; out=" + GpString(file("history.png")) + "; tau=" + tau +
                                     "; has_ncc=" + (has_ncc ? "1" : "0");
        if (Plot("plot_history.gp", settings, file("history.png")))
          plots["history"] = file("history.png");
      }
    }
    j["plots"] = plots;
    WriteJson(file("summary.json"), j);

    std::printf("%-8s %-24s %6s %9s %9s %8s %10s %10s %8s\n", "set", "device", "images", "AUC(NCC)",
                "AUC(PCE)", "TPR@1%", "PSNR mean", "PSNR med", "C");
    PrintTable("before", sum_before);
    if (has_after) PrintTable("after", sum_after);
    if (!common.quiet)
      std::cerr << "wrote " << file("summary.json") << ", scores.csv, summary.csv, roc_*.csv\n";
    return 0;
  });
}

}  // namespace dippas
