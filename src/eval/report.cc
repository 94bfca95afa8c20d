// The dataset evaluation report: scoring (NCC and PCE of every image against every fingerprint)
// and the files of the report (SPEC §4, paper eq. 12).
#include "dippas/eval/report.h"

#include <spawn.h>
#include <sys/wait.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <stdexcept>

#include "dippas/eval/psnr.h"
#include "dippas/eval/roc.h"
#include "dippas/io/atomic_file.h"
#include "dippas/io/csv.h"
#include "dippas/io/paths.h"
#include "dippas/prnu/detection.h"
#include "dippas/prnu/residual.h"
#include "dippas/util/progress.h"
#include "dippas/util/runtime.h"
#include "io/inputs.h"

extern char** environ;

namespace dippas {
namespace {

namespace fs = std::filesystem;
using detail::NumberOrNull;
using detail::SizeText;

constexpr double kMaxFpr = 0.01;  // the FPR of tpr_at_fpr_0_01

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
      auto k = detail::LoadFingerprint(path, crop);
      if (!ks.empty() && (k.size(0) != ks[0].size(0) || k.size(1) != ks[0].size(1))) {
        throw std::invalid_argument(path + ": fingerprint is " + SizeText(k.size(0), k.size(1)) +
                                    " but " + first + " is " +
                                    SizeText(ks[0].size(0), ks[0].size(1)) +
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
      throw std::invalid_argument(path + ": image is " + SizeText(im.height, im.width) +
                                  " but the fingerprints (" + paths_[0] + ", …) are " +
                                  SizeText(height(), width()) +
                                  " (use --crop N to compare centre crops)");
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

nlohmann::json NumberOrNull(const std::optional<double>& v) {
  return v ? detail::NumberOrNull(*v) : nullptr;
}

void WriteScoresCsv(const std::string& path, const std::vector<PairScore>& scores) {
  std::ostringstream csv;
  csv << "image,device,fingerprint,ncc,pce,psnr\n";
  for (const auto& s : scores) {
    csv << CsvQuote(s.image) << "," << CsvQuote(s.device) << "," << CsvQuote(s.fingerprint) << ","
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
    csv << set << "," << CsvQuote(device) << "," << s.n_images << "," << CsvNumber(s.auc_ncc) << ","
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

// printf into a std::string of any length.
template <typename... Args>
std::string Format(const char* format, Args... args) {
  const int n = std::snprintf(nullptr, 0, format, args...);
  std::string s(n > 0 ? n : 0, '\0');
  if (n > 0) std::snprintf(s.data(), s.size() + 1, format, args...);
  return s;
}

void AddTableRows(std::string& out, const std::string& set, const DatasetSummary& d) {
  auto row = [&](const std::string& device, const SetSummary& s) {
    out += Format("%-8s %-24s %6lld %9s %9s %8s %10s %10s %8s\n", set.c_str(), device.c_str(),
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
bool Plot(const std::string& script, const std::string& settings, const std::string& out,
          const EvaluateWarning& warn) {
  const std::string path = (fs::path(ScriptsDir()) / script).string();
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) {
    warn(path + " not found (set DIPPAS_SCRIPTS_DIR): " + out + " not drawn");
    return false;
  }
  std::vector<std::string> args = {"gnuplot", "-e", settings, path};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  if (posix_spawnp(&pid, "gnuplot", nullptr, nullptr, argv.data(), environ) != 0) {
    warn("gnuplot not found (apt-get install gnuplot-nox): " + out + " not drawn");
    return false;
  }
  int status = 0;
  if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    warn("gnuplot failed on " + path + ": " + out + " not drawn");
    return false;
  }
  return true;
}

std::string AucLabel(const std::string& name, const std::optional<double>& auc) {
  return name + " (AUC " + Fixed(auc, 4) + ")";
}

// The method's name in the report: given, else the anonymized tree's (or manifest's) name.
std::string MethodName(const EvaluateOptions& opt, bool has_anonymized) {
  if (!opt.method.empty()) return opt.method;
  std::string method = has_anonymized
                           ? (opt.anonymized.empty()
                                  ? fs::path(opt.manifest).stem().string()
                                  : fs::path(opt.anonymized).lexically_normal().filename().string())
                           : "originals";
  if (method.empty()) method = "anonymized";
  if (opt.jpeg_quality > 0) method += " + JPEG " + std::to_string(opt.jpeg_quality);
  return method;
}

// The scores of one dataset, before and (has_after) after.
struct Scores {
  std::vector<PairScore> before, after;
};

Scores ScoreDataset(const EvaluateOptions& opt, const Dataset& ds, bool has_anonymized,
                    bool has_after) {
  const Scorer scorer(ds.fingerprints, opt.crop, opt.sigma, opt.search);
  Scores sc;
  Progress progress("evaluate", static_cast<int64_t>(ds.items.size()), !opt.quiet);
  for (size_t i = 0; i < ds.items.size(); ++i) {
    const auto& item = ds.items[i];
    const Image original_full = ReadImage(item.original);
    const Image original =
        opt.crop > 0 ? CenterCrop(original_full, opt.crop, item.original) : original_full;
    scorer.CheckSize(original, item.original);
    const auto chw_o = detail::ImageChw(original);
    torch::Tensor mask;
    if (opt.edges) {
      // Edges of the original: the same pixels are scored before and after.
      auto m = EdgeMask(original, opt.canny_low, opt.canny_high, opt.edge_dilate);
      mask = torch::from_blob(m.data(), {original.height, original.width}, torch::kUInt8)
                 .to(torch::kFloat32);
    }
    scorer.Score(chw_o, mask, item.original, item.device, std::nullopt, sc.before);
    if (has_after) {
      const std::string path = has_anonymized ? item.anonymized : item.original;
      Image a = has_anonymized ? ReadImage(path) : original_full;
      // JPEG on the whole file, as a save would do, then the crop.
      if (opt.jpeg_quality > 0) a = JpegRoundTrip(a, opt.jpeg_quality);
      if (opt.crop > 0) a = CenterCrop(a, opt.crop, path);
      if (a.height != original.height || a.width != original.width ||
          a.channels != original.channels) {
        throw std::invalid_argument(
            path + ": anonymized image is " + SizeText(a.height, a.width) + "x" +
            std::to_string(a.channels) + " but its original " + item.original + " is " +
            SizeText(original.height, original.width) + "x" + std::to_string(original.channels));
      }
      const auto chw_a = detail::ImageChw(a);
      scorer.Score(chw_a, mask, path, item.device, Psnr8(chw_a, chw_o),
                   sc.after);  // PSNR over the whole image
    }
    progress.Update(static_cast<int64_t>(i + 1), fs::path(item.original).filename().string());
  }
  progress.Finish();
  return sc;
}

// The files of the report in `out_dir`: which are written depends on the options.
std::vector<std::string> ReportFiles(const EvaluateOptions& opt, bool has_after, bool has_history) {
  std::vector<std::string> names = {"scores.csv", "summary.csv", "roc_before.csv", "summary.json"};
  if (has_after) names.insert(names.end(), {"scores_before.csv", "roc_after.csv"});
  if (!opt.no_plots) names.push_back("roc.png");
  if (has_history) names.push_back("history_points.csv");
  if (has_history && !opt.no_plots) names.push_back("history.png");
  return names;
}

// No report file may be one of the inputs (by any spelling or link).
void CheckReportNotInputs(const EvaluateOptions& opt, const Dataset& ds, bool has_after,
                          bool has_history) {
  std::vector<NamedPath> outputs, inputs;
  for (const auto& name : ReportFiles(opt, has_after, has_history)) {
    outputs.push_back({"--out", (fs::path(opt.out) / name).string()});
  }
  inputs.push_back({"--manifest", opt.manifest});
  inputs.push_back({"--history", opt.history});
  for (const auto& [device, path] : ds.fingerprints) inputs.push_back({"fingerprint", path});
  for (const auto& item : ds.items) {
    inputs.push_back({"original", item.original});
    inputs.push_back({"anonymized", item.anonymized});
  }
  CheckOutputsNotInputs(outputs, inputs);
}

nlohmann::json ReportJson(const EvaluateOptions& opt, const Dataset& ds, const Scores& sc,
                          const EvaluationReport& r, bool has_anonymized,
                          const std::string& method) {
  const DatasetSummary& evaluated = r.has_after ? r.after : r.before;
  nlohmann::json j = SummaryJson(evaluated);
  j["evaluated"] = has_anonymized ? "anonymized" : (r.has_after ? "originals_jpeg" : "originals");
  j["method"] = method;
  if (r.has_after) j["before"] = SummaryJson(r.before);
  j["counts"] = {{"images", ds.items.size()},
                 {"devices", evaluated.per_device.size()},
                 {"fingerprints", ds.fingerprints.size()},
                 {"pairs", (r.has_after ? sc.after : sc.before).size()},
                 {"missing_anonymized", ds.missing.size()},
                 {"unchanged", evaluated.pooled.n_unchanged}};
  j["missing_anonymized"] = ds.missing;
  j["fingerprints"] = ds.fingerprints;
  j["options"] = {
      {"jpeg_quality", opt.jpeg_quality > 0 ? nlohmann::json(opt.jpeg_quality) : nlohmann::json()},
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
  return j;
}

// history_points.csv and history.png; returns whether the plot was drawn.
bool WriteHistory(const EvaluateOptions& opt, const std::vector<HistoryPoint>& history,
                  const fs::path& out_dir, const EvaluateWarning& warn) {
  const auto file = [&](const std::string& name) { return (out_dir / name).string(); };
  std::ostringstream csv;
  csv << "iteration,psnr,ncc\n";
  bool has_ncc = false;
  for (const auto& p : history) {
    if (!std::isfinite(p.psnr)) continue;
    csv << p.iteration << "," << CsvNumber(p.psnr) << "," << CsvNumber(p.ncc) << "\n";
    has_ncc = has_ncc || p.ncc.has_value();
  }
  WriteFileAtomic(file("history_points.csv"), csv.str());
  if (!has_ncc) warn(opt.history + " has no NCC column values (anonymize --history-ncc)");
  if (opt.no_plots) return false;
  char tau[32];
  std::snprintf(tau, sizeof tau, "%.9g", opt.psnr_min);
  const std::string settings = "in=" + GpString(file("history_points.csv")) +
                               "; out=" + GpString(file("history.png")) + "; tau=" + tau +
                               "; has_ncc=" + (has_ncc ? "1" : "0");
  return Plot("plot_history.gp", settings, file("history.png"), warn);
}

}  // namespace

void EvaluateOptions::Check() const {
  if (originals.empty() && manifest.empty())
    throw std::invalid_argument("give --originals ROOT or --manifest CSV");
  if (!originals.empty() && fingerprints.empty())
    throw std::invalid_argument("--originals needs --fingerprints FPS");
  // The output folder's parent is checked before any work, the folder created only at the end.
  std::error_code ec;
  const fs::path out_dir(out);
  if (fs::exists(out_dir, ec) && !fs::is_directory(out_dir, ec)) {
    throw std::invalid_argument(out + ": --out exists and is not a folder");
  }
  const fs::path parent = out_dir.parent_path().empty() ? fs::path(".") : out_dir.parent_path();
  if (!fs::is_directory(parent, ec)) {
    throw std::invalid_argument(out + ": cannot create the output folder, " + parent.string() +
                                " does not exist");
  }
}

EvaluationReport RunEvaluation(const EvaluateOptions& opt, const EvaluateWarning& warn) {
  opt.Check();
  const Dataset ds =
      opt.manifest.empty()
          ? ScanTrees(opt.originals, opt.fingerprints, opt.anonymized, opt.allow_missing)
          : ReadManifest(opt.manifest, opt.fingerprints, opt.allow_missing);
  for (const auto& m : ds.missing) warn("no anonymized version of " + m + ": skipped");
  const std::vector<HistoryPoint> history =
      opt.history.empty() ? std::vector<HistoryPoint>{} : ReadHistory(opt.history);
  const bool has_anonymized = !ds.items.front().anonymized.empty();
  EvaluationReport r;
  r.has_after = has_anonymized || opt.jpeg_quality > 0;  // scored images differ from the originals
  CheckReportNotInputs(opt, ds, r.has_after, !history.empty());
  const std::string method = MethodName(opt, has_anonymized);

  const Scores sc = ScoreDataset(opt, ds, has_anonymized, r.has_after);
  r.before = Summarize(sc.before, kMaxFpr);
  if (r.has_after) r.after = Summarize(sc.after, kMaxFpr);
  nlohmann::json j = ReportJson(opt, ds, sc, r, has_anonymized, method);

  std::error_code ec;
  const fs::path out_dir(opt.out);
  if (!fs::is_directory(out_dir, ec)) fs::create_directory(out_dir);
  const auto file = [&](const std::string& name) { return (out_dir / name).string(); };
  WriteScoresCsv(file("scores.csv"), r.has_after ? sc.after : sc.before);
  if (r.has_after) WriteScoresCsv(file("scores_before.csv"), sc.before);
  std::ostringstream table;
  table << "set,device,n_images,auc_ncc,auc_pce,tpr_at_fpr_0_01,tpr_at_fpr_0_01_pce,psnr_mean,"
           "psnr_median,c_metric\n";
  AddSummaryRows(table, "before", r.before);
  if (r.has_after) AddSummaryRows(table, "after", r.after);
  WriteFileAtomic(file("summary.csv"), table.str());
  WriteRocCsv(file("roc_before.csv"), sc.before);
  if (r.has_after) WriteRocCsv(file("roc_after.csv"), sc.after);

  nlohmann::json plots = nlohmann::json::object();
  if (!opt.no_plots) {
    std::string settings = "before=" + GpString(file("roc_before.csv")) + "; before_label=" +
                           GpString(AucLabel("originals", r.before.pooled.auc_ncc)) +
                           "; out=" + GpString(file("roc.png"));
    if (r.has_after) {
      settings += "; after=" + GpString(file("roc_after.csv")) +
                  "; after_label=" + GpString(AucLabel(method, r.after.pooled.auc_ncc));
    }
    if (opt.edges) settings += "; plot_title=" + GpString("ROC of the pooled NCC, edges only");
    if (Plot("plot_roc.gp", settings, file("roc.png"), warn)) plots["roc"] = file("roc.png");
  }
  if (!history.empty() && WriteHistory(opt, history, out_dir, warn))
    plots["history"] = file("history.png");
  j["plots"] = plots;
  r.summary_json = file("summary.json");
  WriteFileAtomic(r.summary_json, j.dump(2) + "\n");
  return r;
}

std::string FormatEvaluationTable(const EvaluationReport& r) {
  std::string out = Format("%-8s %-24s %6s %9s %9s %8s %10s %10s %8s\n", "set", "device", "images",
                           "AUC(NCC)", "AUC(PCE)", "TPR@1%", "PSNR mean", "PSNR med", "C");
  AddTableRows(out, "before", r.before);
  if (r.has_after) AddTableRows(out, "after", r.after);
  return out;
}

}  // namespace dippas
