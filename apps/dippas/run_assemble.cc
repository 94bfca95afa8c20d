// dippas assemble: re-assemble Î from a saved candidate pool with other B, L, τ (SPEC §6), without
// re-running the DIP — the paper's sweep over the post-processing parameters.
#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <iterator>
#include <limits>
#include <memory>
#include <optional>
#include <sstream>

#include "commands.h"
#include "common.h"
#include "dippas/assembly/assembly.h"
#include "dippas/eval/psnr.h"
#include "dippas/io/atomic_file.h"
#include "dippas/io/npy.h"
#include "dippas/io/pool.h"
#include "dippas/prnu/detection.h"
#include "dippas/prnu/residual.h"
#include "dippas/util/progress.h"

namespace dippas {
namespace {

namespace fs = std::filesystem;

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
  if (v.is_string()) {
    const auto s = v.get<std::string>();
    if (s.find_first_of(",\"\n") == std::string::npos) return s;
    std::string q = "\"";
    for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
    return q + "\"";
  }
  return v.dump();
}

// One (B, L, τ) of the sweep with its online assembler.
struct Combination {
  int64_t block_size;  // B
  int64_t top;         // L
  double tau;          // τ
  std::unique_ptr<BlockAssembler> assembler;
  int64_t pool_size = 0;  // candidates with PSNR ≥ τ
};

}  // namespace

int RunAssemble(int argc, char** argv) {
  struct Options {
    std::string pool;                  // folder written by anonymize --save-pool
    std::string prnu;                  // P (aware mode)
    bool blind = false;                // P = residual(original)
    std::string image;                 // original I (default: the path in pool.json)
    std::string eval_prnu;             // K for the NCC/PCE columns (default: --prnu)
    std::optional<int64_t> crop;       // centre crop side (default: the pool's, else 0)
    std::vector<int64_t> block_sizes;  // B values
    std::vector<int64_t> tops;         // L values
    std::vector<double> taus;          // τ values (dB)
    std::optional<double> sigma;       // residual σ (default: the pool's, else 3)
    std::string out_dir;               // outputs
  } opt;
  CommonOptions common;
  CLI::App app{
      "Re-assemble a saved candidate pool (anonymize --save-pool) with other block sizes B, top L "
      "and PSNR thresholds τ, without re-running the DIP. One image per combination, plus "
      "sweep.csv and sweep.json with PSNR, NCC and PCE of each.",
      "dippas assemble"};
  app.add_option("--pool", opt.pool, "Pool folder (pool.npy + pool.json)")->required();
  auto* prnu =
      app.add_option("--prnu", opt.prnu, "Reference pattern P (.npy) to score blocks against");
  auto* blind =
      app.add_flag("--blind", opt.blind, "Blind mode: P = residual of the original image");
  prnu->excludes(blind);
  blind->excludes(prnu);
  app.add_option("--image", opt.image,
                 "Original image I (default: the path recorded in pool.json)");
  app.add_option("--eval-prnu", opt.eval_prnu,
                 "Fingerprint K for the NCC/PCE columns (default: --prnu; none in blind mode)");
  app.add_option("--crop", opt.crop,
                 "Centre N×N crop of the image and patterns (default: as recorded in the pool)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--block-size", opt.block_sizes, "B: block side(s), e.g. 32,64 or 32 64")
      ->required()
      ->delimiter(',');
  app.add_option("--top", opt.tops, "L: candidates averaged per block, one or more values")
      ->required()
      ->delimiter(',');
  app.add_option("--psnr-min", opt.taus, "τ: PSNR (dB) a candidate needs, one or more values")
      ->required()
      ->delimiter(',');
  app.add_option("--sigma", opt.sigma,
                 "Wavelet noise σ of the residual (default: as recorded in the pool, else 3)")
      ->check(CLI::PositiveNumber);
  app.add_option("--out-dir", opt.out_dir, "Folder for the images, sweep.csv and sweep.json")
      ->required();
  common.Add(app);
  CLI11_PARSE(app, argc, argv);
  return Guard("assemble", [&] {
    common.Apply();
    const auto block_sizes = Unique(opt.block_sizes);
    const auto tops = Unique(opt.tops);
    const auto taus = Unique(opt.taus);
    for (double tau : taus) {
      if (!std::isfinite(tau)) throw UsageError("--psnr-min: τ must be a finite number of dB");
    }

    // The pool and what it records.
    const PoolReader pool(opt.pool);
    const auto& index = pool.index();
    const int64_t h = pool.height(), w = pool.width();
    auto recorded = [&](const char* key) {
      return index.contains(key) ? index[key] : nlohmann::json(nullptr);
    };
    const double sigma = opt.sigma                       ? *opt.sigma
                         : recorded("sigma").is_number() ? recorded("sigma").get<double>()
                                                         : 3.0;
    const int64_t crop =
        opt.crop ? *opt.crop
        : recorded("crop").is_number_integer() && recorded("crop").get<int64_t>() > 0
            ? recorded("crop").get<int64_t>()
            : 0;
    ResidualOptions ro;
    ro.sigma = sigma;
    if (opt.prnu.empty() && !opt.blind) {
      std::string hint;
      if (recorded("mode") == "blind") hint = " (the pool was made in blind mode)";
      if (recorded("prnu").is_string())
        hint = " (the pool was made with --prnu " + recorded("prnu").get<std::string>() + ")";
      throw UsageError("give --prnu K.npy (the pattern P) or --blind" + hint);
    }

    // Every (B, L) is checked before any work: B = 0, B > image, L = 0 are errors.
    for (int64_t b : block_sizes) {
      for (int64_t l : tops) {
        AssemblyOptions ao;
        ao.block_size = b;
        ao.top = l;
        ao.sigma = sigma;
        try {
          ao.Check(h, w);
        } catch (const std::invalid_argument& e) {
          const bool is_b = std::string(e.what()).find("block_size") != std::string::npos;
          throw UsageError(std::string(is_b ? "--block-size " + std::to_string(b)
                                            : "--top " + std::to_string(l)) +
                           ": " + e.what());
        }
      }
    }

    // The original I: --image, else the path in pool.json (absent only allowed with --prnu).
    std::string image_path = opt.image;
    if (image_path.empty() && recorded("image").is_string()) {
      image_path = recorded("image").get<std::string>();
    }
    torch::Tensor original;  // (3,H,W) float 0..255, undefined when there is none
    if (!image_path.empty()) {
      auto img = LoadImage(image_path, crop);
      original = img.chw;
      if (img.image.channels == 1) original = original.expand({3, -1, -1}).contiguous();
      if (original.size(1) != h || original.size(2) != w) {
        throw UsageError(image_path + ": image is " + std::to_string(original.size(1)) + "x" +
                         std::to_string(original.size(2)) +
                         (crop ? " after --crop " + std::to_string(crop) : "") + " but the pool " +
                         pool.npy_path() + " holds " + std::to_string(h) + "x" + std::to_string(w) +
                         " candidates (use the pool's image and --crop)");
      }
    } else if (opt.blind) {
      throw UsageError(pool.json_path() +
                       " records no image: --blind needs the original, pass --image");
    }
    const std::string size_owner = image_path.empty() ? pool.npy_path() : image_path;

    // P: the reference the blocks are scored against; K: the evaluation fingerprint.
    torch::Tensor pattern =
        opt.blind ? Residual(original, ro) : LoadPattern(opt.prnu, crop, h, w, size_owner);
    torch::Tensor k_eval;
    if (!opt.eval_prnu.empty()) {
      k_eval =
          opt.eval_prnu == opt.prnu ? pattern : LoadPattern(opt.eval_prnu, crop, h, w, size_owner);
    } else if (!opt.blind) {
      k_eval = pattern;
    }

    // Candidate PSNR and iteration from the index (null PSNR: an exact copy, +inf).
    const auto& cands = index["candidates"];
    std::vector<double> psnr(cands.size());
    std::vector<int64_t> iteration(cands.size());
    for (size_t i = 0; i < cands.size(); ++i) {
      const auto& c = cands[i];
      const auto p = c.contains("psnr") ? c["psnr"] : nlohmann::json("missing");
      if (p.is_number()) {
        psnr[i] = p.get<double>();
      } else if (p.is_null()) {
        psnr[i] = std::numeric_limits<double>::infinity();
      } else {
        throw IoError(pool.json_path() + ": candidate " + std::to_string(i) +
                      " has no numeric \"psnr\"");
      }
      iteration[i] = c.contains("iteration") && c["iteration"].is_number_integer()
                         ? c["iteration"].get<int64_t>()
                         : static_cast<int64_t>(i);
    }

    std::error_code ec;
    fs::create_directories(opt.out_dir, ec);
    if (!fs::is_directory(opt.out_dir, ec))
      throw UsageError(opt.out_dir + ": cannot create the output folder");

    // One online assembler per (B, L, τ): memory O(combinations × L images).
    std::vector<Combination> combos;
    for (int64_t b : block_sizes) {
      for (int64_t l : tops) {
        for (double tau : taus) {
          AssemblyOptions ao;
          ao.block_size = b;
          ao.top = l;
          ao.sigma = sigma;
          Combination c{b, l, tau, std::make_unique<BlockAssembler>(pattern, ao)};
          combos.push_back(std::move(c));
        }
      }
    }
    const double min_tau = *std::min_element(taus.begin(), taus.end());
    const auto admitted =
        std::count_if(psnr.begin(), psnr.end(), [&](double p) { return p >= min_tau; });
    if (!common.quiet) {
      int64_t slots = 0;
      for (const auto& c : combos) slots += c.top;
      std::fprintf(stderr,
                   "pool %s: %" PRId64 " candidates of %" PRId64 "x%" PRId64
                   ", %zu with PSNR ≥ %s dB; %zu "
                   "combinations (block buffers of about %.1f MB)\n",
                   opt.pool.c_str(), pool.count(), h, w, static_cast<size_t>(admitted),
                   FormatTau(min_tau).c_str(), combos.size(),
                   static_cast<double>(slots) * 3.0 * h * w * 4 / 1e6);
    }

    // Stream the pool once; each candidate's residual W_m is computed once and shared.
    Progress progress("assemble", admitted, !common.quiet);
    int64_t done = 0;
    for (int64_t i = 0; i < pool.count(); ++i) {
      if (!(psnr[i] >= min_tau)) continue;  // below every τ: not even read
      auto frame = pool.Read(i);
      const auto candidate = torch::from_blob(frame.data(), {h, w, 3}, torch::kUInt8)
                                 .permute({2, 0, 1})
                                 .to(torch::kFloat32)
                                 .contiguous();
      const auto residual = Residual(candidate, ro);
      for (auto& c : combos) {
        if (psnr[i] < c.tau) continue;
        c.assembler->AddWithResidual(candidate, residual, iteration[i]);
        ++c.pool_size;
      }
      progress.Update(++done, "candidate " + std::to_string(i));
    }
    progress.Finish();

    // Outputs: one image per combination, then the table.
    const auto image8 = original.defined() ? original.round().clamp(0, 255) : torch::Tensor();
    const Scores before = original.defined() ? Score(image8, k_eval, sigma) : Scores{};
    nlohmann::json rows = nlohmann::json::array();
    int64_t skipped = 0;
    for (auto& c : combos) {
      nlohmann::json row = {{"block_size", c.block_size},
                            {"top", c.top},
                            {"psnr_min", c.tau},
                            {"pool_size", c.pool_size},
                            {"psnr", nullptr},
                            {"ncc_after", nullptr},
                            {"pce_after", nullptr},
                            {"ncc_before", before.ncc},
                            {"pce_before", before.pce},
                            {"output", nullptr}};
      if (c.pool_size == 0) {
        ++skipped;
        row["warning"] =
            "no candidate with PSNR >= " + FormatTau(c.tau) + " dB: nothing to assemble";
        std::fprintf(stderr,
                     "warning: B=%" PRId64 " L=%" PRId64
                     " τ=%s: no candidate with PSNR ≥ τ, skipped\n",
                     c.block_size, c.top, FormatTau(c.tau).c_str());
        rows.push_back(row);
        continue;
      }
      const auto result = c.assembler->Finish();
      c.assembler.reset();  // its L-image buffer is no longer needed
      const std::string out =
          (fs::path(opt.out_dir) / ("assembled_B" + std::to_string(c.block_size) + "_L" +
                                    std::to_string(c.top) + "_tau" + FormatTau(c.tau) + ".png"))
              .string();
      Image im;
      im.height = h;
      im.width = w;
      im.channels = 3;
      im.bit_depth = 8;
      const auto hwc = result.image.permute({1, 2, 0}).contiguous();
      im.data.assign(hwc.data_ptr<float>(), hwc.data_ptr<float>() + hwc.numel());
      WriteImage(out, im);
      if (original.defined()) row["psnr"] = NumberOrNull(Psnr8(result.image, image8));
      const Scores after = Score(result.image, k_eval, sigma);
      row["ncc_after"] = after.ncc;
      row["pce_after"] = after.pce;
      row["output"] = out;
      rows.push_back(row);
    }

    static const char* kColumns[] = {"block_size", "top",       "psnr_min",  "pool_size",
                                     "psnr",       "ncc_after", "pce_after", "ncc_before",
                                     "pce_before", "output"};
    std::ostringstream csv;
    for (size_t k = 0; k < std::size(kColumns); ++k) csv << (k ? "," : "") << kColumns[k];
    csv << "\n";
    for (const auto& row : rows) {
      for (size_t k = 0; k < std::size(kColumns); ++k)
        csv << (k ? "," : "") << CsvField(row[kColumns[k]]);
      csv << "\n";
    }
    const std::string csv_path = (fs::path(opt.out_dir) / "sweep.csv").string();
    const std::string json_path = (fs::path(opt.out_dir) / "sweep.json").string();
    WriteFileAtomic(csv_path, csv.str());
    WriteJson(json_path,
              {{"pool", opt.pool},
               {"image", image_path.empty() ? nlohmann::json(nullptr) : nlohmann::json(image_path)},
               {"mode", opt.blind ? "blind" : "aware"},
               {"prnu", opt.blind ? nlohmann::json(nullptr) : nlohmann::json(opt.prnu)},
               {"eval_prnu", opt.eval_prnu.empty()
                                 ? (opt.blind ? nlohmann::json(nullptr) : nlohmann::json(opt.prnu))
                                 : nlohmann::json(opt.eval_prnu)},
               {"sigma", sigma},
               {"crop", crop},
               {"size", {h, w}},
               {"pool_count", pool.count()},
               {"rows", rows}});
    if (!common.quiet) {
      std::fprintf(
          stderr, "wrote %zu images, %s and %s%s\n", combos.size() - static_cast<size_t>(skipped),
          csv_path.c_str(), json_path.c_str(),
          skipped
              ? (" (" + std::to_string(skipped) + " combinations skipped: empty pool at their τ)")
                    .c_str()
              : "");
    }
    return 0;
  });
}

}  // namespace dippas
