// The B, L, τ sweep over a saved candidate pool (SPEC §6).
#include "dippas/assembly/sweep.h"

#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iterator>
#include <limits>
#include <memory>
#include <sstream>
#include <stdexcept>

#include "dippas/assembly/assembly.h"
#include "dippas/eval/psnr.h"
#include "dippas/io/atomic_file.h"
#include "dippas/io/csv.h"
#include "dippas/io/image.h"
#include "dippas/io/npy.h"
#include "dippas/io/paths.h"
#include "dippas/io/pool.h"
#include "dippas/prnu/detection.h"
#include "dippas/prnu/residual.h"
#include "dippas/util/progress.h"
#include "io/inputs.h"

namespace dippas {
namespace {

namespace fs = std::filesystem;
using detail::NumberOrNull;

// τ in file names and messages: 38, 37.5 (shortest form, no trailing zeros).
std::string FormatTau(double tau) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.10g", tau);
  return buf;
}

template <typename T>
std::vector<T> Unique(const std::vector<T>& v) {
  std::vector<T> out;
  for (const auto& x : v) {
    if (std::find(out.begin(), out.end(), x) == out.end()) out.push_back(x);
  }
  return out;
}

// NCC and PCE of an 8-bit image against the evaluation fingerprint K (SPEC §4).
struct Scores {
  nlohmann::json ncc = nullptr, pce = nullptr;
};

Scores Score(const torch::Tensor& image, const torch::Tensor& k, double sigma) {
  Scores s;
  if (!k.defined()) return s;
  ResidualOptions ro;
  ro.sigma = sigma;
  const auto w = Residual(image, ro);
  const auto gray = ToGray(image);
  s.ncc = NumberOrNull(Ncc(w, gray, k).item<double>());
  s.pce = NumberOrNull(Pce(w, gray * k).pce);
  return s;
}

std::string CsvField(const nlohmann::json& v) {
  if (v.is_null()) return "";
  if (v.is_number_float()) {
    char buf[40];
    std::snprintf(buf, sizeof(buf), "%.10g", v.get<double>());
    return buf;
  }
  if (v.is_string()) return CsvQuote(v.get<std::string>());
  return v.dump();
}

// One (B, L, τ, M) of the sweep with its online assembler.
struct Combination {
  int64_t block_size;  // B
  int64_t top;         // L
  double tau;          // τ
  int64_t pool_max;    // M: at most the first M candidates at τ (0: all)
  std::unique_ptr<BlockAssembler> assembler;
  int64_t pool_size = 0;        // candidates with PSNR ≥ τ taken
  int64_t last_iteration = -1;  // the iteration of the last one taken (-1: none)
  std::string output;           // its image
};

// The sweep's state, from the pool to the table.
class Sweep {
 public:
  Sweep(const SweepOptions& opt, const SweepMessages& messages)
      : opt_(opt),
        msg_(messages),
        block_sizes_(Unique(opt.block_sizes)),
        tops_(Unique(opt.tops)),
        taus_(Unique(opt.taus)),
        pool_maxes_(opt.pool_maxes.empty() ? std::vector<int64_t>{0} : Unique(opt.pool_maxes)),
        pool_(opt.pool) {}

  SweepResult Run();

 private:
  nlohmann::json Recorded(const char* key) const {
    return pool_.index().contains(key) ? pool_.index()[key] : nlohmann::json(nullptr);
  }
  AssemblyOptions ForCombination(int64_t block_size, int64_t top) const {
    AssemblyOptions ao;
    ao.block_size = block_size;
    ao.top = top;
    ao.sigma = sigma_;
    ao.order_by_abs = opt_.order_by_abs;
    return ao;
  }
  int64_t StreamEnd() const;
  void ReadSettings();
  void CheckCombinations() const;
  void LoadInputs();
  void ReadCandidates();
  void CheckOutputs();
  void Stream();
  nlohmann::json Assemble();

  const SweepOptions& opt_;
  const SweepMessages& msg_;
  const std::vector<int64_t> block_sizes_, tops_;
  const std::vector<double> taus_;
  const std::vector<int64_t> pool_maxes_;
  const PoolReader pool_;
  int64_t h_ = 0, w_ = 0, crop_ = 0;
  double sigma_ = 3;
  std::string image_path_;
  torch::Tensor original_;  // (3,H,W) float 0..255, undefined when there is none
  torch::Tensor pattern_;   // P: the reference the blocks are scored against
  double select_residual_ = 0;  // w of SweepOptions::select_residual, resolved
  torch::Tensor k_eval_;    // K: the evaluation fingerprint
  std::vector<double> psnr_;
  std::vector<int64_t> iteration_;
  std::vector<Combination> combos_;
};

void Sweep::ReadSettings() {
  h_ = pool_.height();
  w_ = pool_.width();
  sigma_ = opt_.sigma                      ? *opt_.sigma
           : Recorded("sigma").is_number() ? Recorded("sigma").get<double>()
                                           : 3.0;
  // A pool made in blind mode records no weight; one made with --prnu records the run's.
  select_residual_ = opt_.select_residual ? *opt_.select_residual
                     : opt_.blind         ? 0.0
                     : Recorded("select_residual").is_number()
                         ? Recorded("select_residual").get<double>()
                         : 0.0;
  crop_ = opt_.crop ? *opt_.crop
          : Recorded("crop").is_number_integer() && Recorded("crop").get<int64_t>() > 0
              ? Recorded("crop").get<int64_t>()
              : 0;
  if (opt_.prnu.empty() && !opt_.blind) {
    std::string hint;
    if (Recorded("mode") == "blind") hint = " (the pool was made in blind mode)";
    if (Recorded("prnu").is_string())
      hint = " (the pool was made with --prnu " + Recorded("prnu").get<std::string>() + ")";
    throw std::invalid_argument("give --prnu K.npy (the pattern P) or --blind" + hint);
  }
}

// Every (B, L) is checked before any work: B = 0, B > image, L = 0 are errors.
void Sweep::CheckCombinations() const {
  for (int64_t b : block_sizes_) {
    for (int64_t l : tops_) {
      const AssemblyOptions ao = ForCombination(b, l);
      try {
        ao.Check(h_, w_);
      } catch (const std::invalid_argument& e) {
        const bool is_b = std::string(e.what()).find("block_size") != std::string::npos;
        throw std::invalid_argument(
            std::string(is_b ? "--block-size " + std::to_string(b) : "--top " + std::to_string(l)) +
            ": " + e.what());
      }
    }
  }
}

// The original I (--image, else the path in pool.json; absent only allowed with --prnu), P and K.
void Sweep::LoadInputs() {
  image_path_ = opt_.image;
  if (image_path_.empty() && Recorded("image").is_string())
    image_path_ = Recorded("image").get<std::string>();
  if (!image_path_.empty()) {
    const Image img = detail::LoadImageChecked(image_path_, crop_);
    original_ = detail::ImageChw(img);
    if (img.channels == 1) original_ = original_.expand({3, -1, -1}).contiguous();
    if (original_.size(1) != h_ || original_.size(2) != w_) {
      throw std::invalid_argument(
          image_path_ + ": image is " + detail::SizeText(original_.size(1), original_.size(2)) +
          (crop_ ? " after --crop " + std::to_string(crop_) : "") + " but the pool " +
          pool_.npy_path() + " holds " + detail::SizeText(h_, w_) +
          " candidates (use the pool's image and --crop)");
    }
  } else if (opt_.blind || select_residual_ > 0) {
    throw std::invalid_argument(
        pool_.json_path() + " records no image: " +
        (opt_.blind ? "--blind" : "ranking by the residual (select_residual)") +
        " needs the original, pass --image");
  }
  const std::string size_owner = image_path_.empty() ? pool_.npy_path() : image_path_;
  ResidualOptions ro;
  ro.sigma = sigma_;
  pattern_ = opt_.blind ? Residual(original_, ro)
                        : detail::LoadFingerprint(opt_.prnu, crop_, h_, w_, size_owner);
  if (!opt_.eval_prnu.empty()) {
    k_eval_ = opt_.eval_prnu == opt_.prnu
                  ? pattern_
                  : detail::LoadFingerprint(opt_.eval_prnu, crop_, h_, w_, size_owner);
  } else if (!opt_.blind) {
    k_eval_ = pattern_;
  }
  // The blocks are ranked by P and the residual; the NCC/PCE columns still judge with K.
  if (select_residual_ > 0)
    pattern_ = SelectionPattern(pattern_, Residual(original_, ro), select_residual_);
}

// Candidate PSNR and iteration from the index (null PSNR: an exact copy, +inf).
void Sweep::ReadCandidates() {
  const auto& cands = pool_.index()["candidates"];
  psnr_.resize(cands.size());
  iteration_.resize(cands.size());
  for (size_t i = 0; i < cands.size(); ++i) {
    const auto& c = cands[i];
    const auto p = c.contains("psnr") ? c["psnr"] : nlohmann::json("missing");
    if (p.is_number()) {
      psnr_[i] = p.get<double>();
    } else if (p.is_null()) {
      psnr_[i] = std::numeric_limits<double>::infinity();
    } else {
      throw IoError(pool_.json_path() + ": candidate " + std::to_string(i) +
                    " has no numeric \"psnr\"");
    }
    iteration_[i] = c.contains("iteration") && c["iteration"].is_number_integer()
                        ? c["iteration"].get<int64_t>()
                        : static_cast<int64_t>(i);
  }
}

// One online assembler per (B, L, τ): memory O(combinations × L images). No output (an image,
// sweep.csv, sweep.json) may be an input (the pool's files, I, P, K).
void Sweep::CheckOutputs() {
  std::vector<NamedPath> outputs;
  for (int64_t b : block_sizes_) {
    for (int64_t l : tops_) {
      for (double tau : taus_) {
        for (int64_t m : pool_maxes_) {
          const std::string name =
              "assembled_B" + std::to_string(b) + "_L" + std::to_string(l) + "_tau" +
              FormatTau(tau) + (opt_.pool_maxes.empty() ? "" : "_M" + std::to_string(m)) + ".png";
          const std::string output = (fs::path(opt_.out_dir) / name).string();
          Combination c{
              b, l,  tau,   m, std::make_unique<BlockAssembler>(pattern_, ForCombination(b, l)),
              0, -1, output};
          outputs.push_back({"--out-dir", c.output});
          combos_.push_back(std::move(c));
        }
      }
    }
  }
  outputs.push_back({"--out-dir", (fs::path(opt_.out_dir) / "sweep.csv").string()});
  outputs.push_back({"--out-dir", (fs::path(opt_.out_dir) / "sweep.json").string()});
  CheckOutputsNotInputs(outputs, {{"--pool", pool_.npy_path()},
                                  {"--pool", pool_.json_path()},
                                  {"--image", image_path_},
                                  {"--prnu", opt_.prnu},
                                  {"--eval-prnu", opt_.eval_prnu}});
}

// One past the last candidate any combination takes: a combination with M > 0 takes none after
// its M-th at τ, so a sweep of small M reads the head of the pool only.
int64_t Sweep::StreamEnd() const {
  int64_t end = 0;
  for (const auto& c : combos_) {
    int64_t taken = 0, last = -1;
    for (int64_t i = 0; i < static_cast<int64_t>(psnr_.size()); ++i) {
      if (!(psnr_[i] >= c.tau)) continue;
      last = i;
      if (c.pool_max > 0 && ++taken >= c.pool_max) break;
    }
    end = std::max(end, last + 1);
  }
  return end;
}

// Streams the pool once; each candidate's residual W_m is computed once and shared.
void Sweep::Stream() {
  const double min_tau = *std::min_element(taus_.begin(), taus_.end());
  const int64_t end = StreamEnd();
  const auto admitted =
      std::count_if(psnr_.begin(), psnr_.begin() + end, [&](double p) { return p >= min_tau; });
  if (!opt_.quiet) {
    int64_t slots = 0;
    for (const auto& c : combos_) slots += c.top;
    char line[512];
    std::snprintf(line, sizeof line,
                  "pool %s: %" PRId64 " candidates of %" PRId64 "x%" PRId64
                  ", %zu with PSNR ≥ %s dB to read; %zu "
                  "combinations (block buffers of about %.1f MB)",
                  opt_.pool.c_str(), pool_.count(), h_, w_, static_cast<size_t>(admitted),
                  FormatTau(min_tau).c_str(), combos_.size(),
                  static_cast<double>(slots) * 3.0 * h_ * w_ * 4 / 1e6);
    if (msg_.info) msg_.info(line);
  }
  ResidualOptions ro;
  ro.sigma = sigma_;
  Progress progress("assemble", admitted, !opt_.quiet);
  int64_t done = 0;
  for (int64_t i = 0; i < end; ++i) {
    if (!(psnr_[i] >= min_tau)) continue;  // below every τ: not even read
    auto frame = pool_.Read(i);
    const auto candidate = torch::from_blob(frame.data(), {h_, w_, 3}, torch::kUInt8)
                               .permute({2, 0, 1})
                               .to(torch::kFloat32)
                               .contiguous();
    const auto residual = Residual(candidate, ro);
    for (auto& c : combos_) {
      if (psnr_[i] < c.tau || (c.pool_max > 0 && c.pool_size >= c.pool_max)) continue;
      c.assembler->AddWithResidual(candidate, residual, iteration_[i]);
      ++c.pool_size;
      c.last_iteration = iteration_[i];
    }
    progress.Update(++done, "candidate " + std::to_string(i));
  }
  progress.Finish();
}

// One image per combination; returns the table's rows.
nlohmann::json Sweep::Assemble() {
  const auto image8 = original_.defined() ? original_.round().clamp(0, 255) : torch::Tensor();
  const Scores before = original_.defined() ? Score(image8, k_eval_, sigma_) : Scores{};
  nlohmann::json rows = nlohmann::json::array();
  for (auto& c : combos_) {
    nlohmann::json row = {{"block_size", c.block_size}, {"top", c.top},
                          {"psnr_min", c.tau},          {"order_by_abs", opt_.order_by_abs},
                          {"pool_max", c.pool_max},     {"pool_size", c.pool_size},
                          {"last_iteration", nullptr},  {"psnr", nullptr},
                          {"ncc_after", nullptr},       {"pce_after", nullptr},
                          {"ncc_before", before.ncc},   {"pce_before", before.pce},
                          {"output", nullptr}};
    if (c.pool_size == 0) {
      row["warning"] = "no candidate with PSNR >= " + FormatTau(c.tau) + " dB: nothing to assemble";
      if (msg_.warning)
        msg_.warning("B=" + std::to_string(c.block_size) + " L=" + std::to_string(c.top) +
                     " τ=" + FormatTau(c.tau) + ": no candidate with PSNR ≥ τ, skipped");
      rows.push_back(row);
      continue;
    }
    row["last_iteration"] = c.last_iteration;
    const auto result = c.assembler->Finish();
    c.assembler.reset();  // its L-image buffer is no longer needed
    Image im;
    im.height = h_;
    im.width = w_;
    im.channels = 3;
    im.bit_depth = 8;
    const auto hwc = result.image.permute({1, 2, 0}).contiguous();
    im.data.assign(hwc.data_ptr<float>(), hwc.data_ptr<float>() + hwc.numel());
    WriteImage(c.output, im);
    if (original_.defined()) row["psnr"] = NumberOrNull(Psnr8(result.image, image8));
    const Scores after = Score(result.image, k_eval_, sigma_);
    row["ncc_after"] = after.ncc;
    row["pce_after"] = after.pce;
    row["output"] = c.output;
    rows.push_back(row);
  }
  return rows;
}

SweepResult Sweep::Run() {
  ReadSettings();
  CheckCombinations();
  LoadInputs();
  ReadCandidates();
  CheckOutputs();
  std::error_code ec;
  fs::create_directories(opt_.out_dir, ec);
  if (!fs::is_directory(opt_.out_dir, ec))
    throw std::invalid_argument(opt_.out_dir + ": cannot create the output folder");
  Stream();
  const nlohmann::json rows = Assemble();

  static const char* kColumns[] = {
      "block_size", "top",       "psnr_min",  "pool_max",   "pool_size",  "last_iteration",
      "psnr",       "ncc_after", "pce_after", "ncc_before", "pce_before", "output"};
  std::ostringstream csv;
  for (size_t k = 0; k < std::size(kColumns); ++k) csv << (k ? "," : "") << kColumns[k];
  csv << "\n";
  SweepResult r;
  for (const auto& row : rows) {
    for (size_t k = 0; k < std::size(kColumns); ++k)
      csv << (k ? "," : "") << CsvField(row[kColumns[k]]);
    csv << "\n";
    (row["output"].is_null() ? r.skipped : r.images) += 1;
  }
  r.csv_path = (fs::path(opt_.out_dir) / "sweep.csv").string();
  r.json_path = (fs::path(opt_.out_dir) / "sweep.json").string();
  WriteFileAtomic(r.csv_path, csv.str());
  const nlohmann::json prnu = opt_.blind ? nlohmann::json(nullptr) : nlohmann::json(opt_.prnu);
  const nlohmann::json j = {
      {"pool", opt_.pool},
      {"image", image_path_.empty() ? nlohmann::json(nullptr) : nlohmann::json(image_path_)},
      {"mode", opt_.blind ? "blind" : "aware"},
      {"prnu", prnu},
      {"eval_prnu", opt_.eval_prnu.empty() ? prnu : nlohmann::json(opt_.eval_prnu)},
      {"sigma", sigma_},
      {"select_residual", select_residual_},
      {"crop", crop_},
      {"size", {h_, w_}},
      {"pool_count", pool_.count()},
      {"rows", rows}};
  WriteFileAtomic(r.json_path, j.dump(2) + "\n");
  return r;
}

}  // namespace

void SweepOptions::Check() const {
  const double w = select_residual.value_or(0);
  if (!std::isfinite(w) || w < 0 || w > 100)
    throw std::invalid_argument("--select-residual: the residual's weight must be in [0, 100]");
  if (blind && w > 0) {
    throw std::invalid_argument(
        "--select-residual needs --prnu (in blind mode P is the residual already)");
  }
  for (double tau : taus) {
    if (!std::isfinite(tau))
      throw std::invalid_argument("--psnr-min: τ must be a finite number of dB");
  }
  for (int64_t m : pool_maxes) {
    if (m < 0)
      throw std::invalid_argument("--pool-max " + std::to_string(m) +
                                  ": M must be ≥ 0 candidates (0 = the whole pool)");
  }
}

SweepResult RunSweep(const SweepOptions& options, const SweepMessages& messages) {
  options.Check();
  return Sweep(options, messages).Run();
}

}  // namespace dippas
