// dippas anonymize: the DIPPAS pipeline on one image (SPEC §5–8).
#include <ATen/Parallel.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <limits>
#include <map>
#include <sstream>
#include <unistd.h>

#include "commands.h"
#include "common.h"
#include "dippas/baselines/baselines.h"
#include "dippas/dip/config.h"
#include "dippas/dip/loop.h"
#include "dippas/eval/psnr.h"
#include "dippas/io/atomic_file.h"
#include "dippas/io/pool.h"
#include "dippas/prnu/detection.h"
#include "dippas/prnu/residual.h"
#include "dippas/util/progress.h"
#include "dippas/util/runtime.h"

namespace dippas {
namespace {

namespace fs = std::filesystem;

std::atomic<int> g_signals{0};

// First SIGINT/SIGTERM: finish the iteration, assemble what the pool holds,
// write the outputs (stop reason "interrupted"). Second: leave at once, deleting
// the temporary files in flight (pool, outputs being written): nothing partial remains.
void OnSignal(int) {
  if (g_signals.fetch_add(1) >= 1) {
    RemoveTemporaryFiles();
    _exit(130);
  }
}

struct Scores {
  std::optional<double> ncc;
  std::optional<double> pce;
};

Scores Score(const torch::Tensor& img, const torch::Tensor& k, double sigma) {
  if (!k.defined()) return {};
  ResidualOptions ro;
  ro.sigma = sigma;
  const auto w = Residual(img, ro);
  const auto g = ToGray(img);
  Scores s;
  s.ncc = Ncc(w, g, k).item<double>();
  s.pce = Pce(w, g * k).pce;
  return s;
}

std::string DefaultOutput(const std::string& image) {
  const fs::path p(image);
  return (p.parent_path() / (p.stem().string() + ".anon.png")).string();
}

}  // namespace

int RunAnonymize(int argc, char** argv) {
  struct Options {
    std::string image;                 // input photograph
    std::string prnu;                  // P = K (PRNU-aware)
    bool blind = false;                // P = residual of the image (PRNU-blind)
    std::string eval_prnu;             // fingerprint for the metrics' NCC/PCE (default: --prnu)
    std::vector<std::string> config;   // YAML/JSON configs (SPEC §8 keys), applied in order
    std::vector<std::string> set;      // key=value overrides
    int64_t crop = 0;                  // centre crop side, 0 = none
    std::string device = "auto";       // auto | cpu | cuda
    std::string out;                   // anonymized PNG
    std::string metrics;               // metrics JSON
    std::string history;               // per-iteration CSV
    bool history_ncc = false;          // NCC of every candidate in the history
    std::string save_pool;             // folder for the admitted candidates
    bool describe = false;             // print the network and exit
    std::string method = "dip";        // dip | subtract | denoise (baselines)
  } opt;
  CommonOptions common;
  // Overrides of config keys, applied after --config.
  std::optional<int64_t> seed, max_iterations, block_size, top;
  std::optional<double> psnr_min, psnr_stop, sigma, lr;

  CLI::App app{"Anonymize a photograph: regenerate it with a deep image prior while a learned γ·P is injected, then "
               "assemble per block the candidates least correlated with the fingerprint (DIPPAS)",
               "dippas anonymize"};
  app.add_option("--image", opt.image, "Input image (PNG, JPEG, TIFF, BMP)");
  auto* prnu = app.add_option("--prnu", opt.prnu, "Camera fingerprint K (.npy): PRNU-aware mode, P = K");
  auto* blind = app.add_flag("--blind", opt.blind, "PRNU-blind mode: P = the image's own noise residual");
  prnu->excludes(blind);
  app.add_option("--eval-prnu", opt.eval_prnu,
                 "Fingerprint for the NCC/PCE before/after in the metrics (default: --prnu; none in blind mode)");
  app.add_option("--config", opt.config,
                 "Config file (YAML or JSON) with the keys of SPEC §8; repeatable (later files override earlier "
                 "ones); the options below override them")
      ->allow_extra_args(false);
  app.add_option("--set", opt.set, "Override any config key, e.g. --set filters=8,16,32,64,128 (repeatable)")
      ->allow_extra_args(false);
  app.add_option("--crop", opt.crop, "Anonymize the centre N×N crop (image and fingerprint)")->check(CLI::NonNegativeNumber);
  app.add_option("--device", opt.device, "auto (CUDA when available), cpu or cuda")
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}));
  app.add_option("--seed", seed, "Seed of every random draw (default 0)");
  app.add_option("--max-iterations", max_iterations, "Iteration budget (default 10000)");
  app.add_option("--psnr-min", psnr_min, "τ: PSNR for a candidate to join the pool, dB (default 38)");
  app.add_option("--psnr-stop", psnr_stop, "Stop once PSNR exceeds this, dB (default 39)");
  app.add_option("--block-size", block_size, "B: assembly block side (default 64)");
  app.add_option("--top", top, "L: candidates averaged per block (default 10)");
  app.add_option("--sigma", sigma, "Residual σ (default 3)");
  app.add_option("--lr", lr, "Adam learning rate (default 0.001)");
  app.add_option("--out", opt.out, "Anonymized PNG (default: <image>.anon.png beside the input)");
  app.add_option("--metrics", opt.metrics, "Metrics JSON (default: the output path with .json)");
  app.add_option("--history", opt.history, "Per-iteration CSV: iteration, loss, PSNR, γ, admitted, NCC");
  app.add_flag("--history-ncc", opt.history_ncc, "Compute the NCC of every candidate for the history (slower)");
  app.add_option("--save-pool", opt.save_pool, "Keep the admitted candidates in this folder (for dippas assemble)");
  app.add_flag("--describe", opt.describe, "Print the network (parameter count, widths) and exit");
  app.add_option("--method", opt.method,
                 "dip (DIPPAS), or a baseline: subtract (Î = I·(1 − α·K), α bisected to NCC ≈ 0; "
                 "needs --prnu) or denoise (Î = I − wavelet noise)")
      ->check(CLI::IsMember({"dip", "subtract", "denoise"}));
  common.Add(app);
  CLI11_PARSE(app, argc, argv);

  return Guard("anonymize", [&]() -> int {
    const auto t_start = std::chrono::steady_clock::now();
    std::map<std::string, double> timings;
    auto lap = [&, last = t_start](const std::string& stage) mutable {
      const auto now = std::chrono::steady_clock::now();
      timings[stage] += std::chrono::duration<double>(now - last).count();
      last = now;
    };

    // Options: defaults ← config file ← command line.
    DipOptions dip;
    for (const auto& path : opt.config) dip = LoadDipConfig(path, dip);
    for (const auto& kv : opt.set) {
      const auto eq = kv.find('=');
      if (eq == std::string::npos) throw UsageError("--set " + kv + ": expected key=value");
      SetDipOption(dip, kv.substr(0, eq), kv.substr(eq + 1));
    }
    if (seed) dip.seed = *seed;
    if (max_iterations) dip.max_iterations = *max_iterations;
    if (psnr_min) dip.psnr_min = *psnr_min;
    if (psnr_stop) dip.psnr_stop = *psnr_stop;
    if (block_size) dip.block_size = *block_size;
    if (top) dip.top = *top;
    if (sigma) dip.sigma = *sigma;
    if (lr) dip.lr = *lr;
    try {
      dip.Check();
    } catch (const std::invalid_argument& e) {
      throw UsageError(std::string("invalid option ") + e.what());
    }
    if (opt.describe) {
      std::cout << DescribeNetwork(dip);
      return 0;
    }
    if (opt.image.empty()) throw UsageError("--image is required (or --describe)");
    const bool is_dip = opt.method == "dip";
    if (opt.method == "subtract" && opt.prnu.empty()) {
      throw UsageError("--method subtract needs --prnu");
    }
    // Denoising ignores P: it runs with or without a fingerprint.
    if (opt.prnu.empty() && !opt.blind && opt.method != "denoise") {
      throw UsageError("give --prnu K.npy (PRNU-aware) or --blind");
    }
    if (!is_dip && (!opt.history.empty() || !opt.save_pool.empty() || opt.history_ncc)) {
      throw UsageError("--history, --history-ncc and --save-pool apply to --method dip only");
    }
    const std::string device = ResolveDevice(opt.device);
    common.Apply();
    const std::string out = opt.out.empty() ? DefaultOutput(opt.image) : opt.out;
    const std::string metrics_path =
        opt.metrics.empty() ? (fs::path(out).parent_path() / (fs::path(out).stem().string() + ".json")).string()
                            : opt.metrics;
    std::error_code ec;
    if (fs::exists(out, ec) && fs::equivalent(out, opt.image, ec)) {
      throw UsageError(out + ": refusing to overwrite the input image");
    }
    for (const auto& path : {out, metrics_path, opt.history}) {
      if (path.empty()) continue;
      const fs::path dir = fs::path(path).has_parent_path() ? fs::path(path).parent_path() : fs::path(".");
      if (!fs::is_directory(dir, ec)) throw UsageError(path + ": folder '" + dir.string() + "' does not exist");
      // Found out now, not after hours of DIP iterations (EROFS too, which root cannot bypass).
      if (access(dir.c_str(), W_OK) != 0) {
        throw UsageError(path + ": cannot write to folder '" + dir.string() + "': " + std::strerror(errno));
      }
    }

    // Inputs.
    auto img = LoadImage(opt.image, opt.crop);
    auto chw = img.chw;
    if (img.image.channels == 1) chw = chw.expand({3, -1, -1}).contiguous();  // gray: processed as RGB
    const int64_t h = chw.size(1), w = chw.size(2);
    if (h < 32 || w < 32) {
      throw UsageError(opt.image + ": image is " + std::to_string(h) + "x" + std::to_string(w) +
                       ", the DIP needs at least 32x32 pixels");
    }
    torch::Tensor pattern;
    ResidualOptions ro;
    ro.sigma = dip.sigma;
    if (!opt.prnu.empty()) {
      pattern = LoadPattern(opt.prnu, opt.crop, h, w, opt.image);
    } else if (is_dip) {
      pattern = Residual(chw, ro);  // blind: P = the image's own residual
    }
    const bool aware = !opt.prnu.empty();
    torch::Tensor k_eval;
    const std::string eval_path = !opt.eval_prnu.empty() ? opt.eval_prnu : opt.prnu;
    if (!eval_path.empty()) k_eval = eval_path == opt.prnu ? pattern : LoadPattern(eval_path, opt.crop, h, w, opt.image);
    const auto image8 = chw.round().clamp(0, 255);
    const Scores before = Score(image8, k_eval, dip.sigma);
    lap("load");

    // A baseline finishes in seconds: a first signal lets it write complete outputs.
    g_signals = 0;
    std::signal(SIGINT, OnSignal);
    std::signal(SIGTERM, OnSignal);
    DipResult res;
    std::optional<double> alpha;  // subtract: the α found
    std::unique_ptr<PoolWriter> pool;
    std::vector<IterationRecord> history;
    if (!is_dip) {
      if (opt.method == "subtract") {
        SubtractOptions so;
        so.sigma = dip.sigma;
        SubtractResult sub = SubtractFingerprint(chw, pattern, so);
        res.image = sub.image;
        alpha = sub.alpha;
      } else {
        res.image = DenoiseBaseline(chw, dip.sigma);
      }
      res.stop_reason = "completed";
      res.gamma = std::numeric_limits<double>::quiet_NaN();      // no γ: null
      res.best_psnr = std::numeric_limits<double>::quiet_NaN();  // no candidates: null
      lap("baseline");
    } else {
      // The loop, with progress, history, pool saving and interruption.
      if (!opt.save_pool.empty()) {
        pool = std::make_unique<PoolWriter>(opt.save_pool, h, w,
                                            nlohmann::json{{"image", opt.image},
                                                           {"mode", opt.blind ? "blind" : "aware"},
                                                           {"prnu", opt.blind ? nlohmann::json(nullptr) : nlohmann::json(opt.prnu)},
                                                           {"sigma", dip.sigma},
                                                           {"crop", opt.crop}});
      }
      Progress progress("anonymize", dip.max_iterations, !common.quiet);
      LoopCallbacks cb;
      cb.on_iteration = [&](const IterationRecord& r, int64_t pool_size, std::optional<double> best) {
        if (!opt.history.empty()) history.push_back(r);
        char status[160];
        std::snprintf(status, sizeof(status), "PSNR %.2f dB  γ %.4f  pool %lld  best NCC %s", r.psnr, r.gamma,
                      static_cast<long long>(pool_size), best ? std::to_string(*best).c_str() : "-");
        progress.Update(r.iteration, status);
      };
      if (pool) {
        cb.on_candidate = [&](const torch::Tensor& cand, const IterationRecord& r) {
          const auto hwc = cand.permute({1, 2, 0}).contiguous();
          pool->Append(hwc.data_ptr<uint8_t>(),
                       {{"iteration", r.iteration}, {"psnr", r.psnr}, {"loss", r.loss}, {"gamma", r.gamma}});
        };
      }
      cb.stop_requested = [] { return g_signals.load() > 0; };
      DipRunOptions run;
      run.dip = dip;
      run.device = device;
      run.ncc_every_iteration = opt.history_ncc;
      res = RunDip(chw, pattern, run, cb);
      progress.Finish();
      lap("dip");  // the loop, with the online assembly of every admitted candidate
    }

    // Outputs: image, pool, history, metrics — each complete or not at all.
    const Scores after = Score(res.image, k_eval, dip.sigma);
    const double psnr = Psnr8(res.image, image8);
    Image out_img;
    out_img.height = h;
    out_img.width = w;
    out_img.channels = 3;
    const auto hwc = res.image.permute({1, 2, 0}).contiguous().to(torch::kFloat32);
    out_img.data.assign(hwc.data_ptr<float>(), hwc.data_ptr<float>() + hwc.numel());
    WriteImage(out, out_img);
    if (pool) pool->Close();
    if (!opt.history.empty()) {
      std::ostringstream csv;
      csv << "iteration,loss,psnr,gamma,admitted,ncc\n";
      for (const auto& r : history) {
        csv << r.iteration << "," << r.loss << "," << r.psnr << "," << r.gamma << "," << (r.admitted ? 1 : 0) << ",";
        if (r.ncc && std::isfinite(*r.ncc)) csv << *r.ncc;
        csv << "\n";
      }
      WriteFileAtomic(opt.history, csv.str());
    }
    lap("write");
    nlohmann::json m;
    m["image"] = opt.image;
    m["prnu"] = aware ? nlohmann::json(opt.prnu) : nlohmann::json(nullptr);
    m["eval_prnu"] = eval_path.empty() ? nlohmann::json(nullptr) : nlohmann::json(eval_path);
    m["output"] = out;
    m["mode"] = aware ? "aware" : "blind";
    m["method"] = opt.method;
    if (alpha) m["alpha"] = NumberOrNull(alpha);
    m["size"] = {h, w};
    m["crop"] = opt.crop;
    m["config"] = DipOptionsToJson(dip);
    m["seed"] = dip.seed;
    m["device"] = device;
    m["threads"] = at::get_num_threads();
    m["iterations"] = res.iterations;
    m["stop_reason"] = res.stop_reason;
    m["gamma"] = NumberOrNull(res.gamma);
    m["pool_size"] = res.pool_size;
    m["fallback_no_pool"] = res.fallback;
    m["best_candidate_psnr"] = NumberOrNull(res.best_psnr);
    m["psnr"] = NumberOrNull(psnr);
    m["ncc_before"] = NumberOrNull(before.ncc);
    m["ncc_after"] = NumberOrNull(after.ncc);
    m["pce_before"] = NumberOrNull(before.pce);
    m["pce_after"] = NumberOrNull(after.pce);
    m["timings_s"] = timings;
    m["versions"] = {{"dippas", Version()}, {"torch", TorchVersion()}, {"opencv", DIPPAS_OPENCV_VERSION}};
    WriteJson(metrics_path, m);
    if (!common.quiet && !is_dip) {
      char detail[64] = "";
      if (alpha) std::snprintf(detail, sizeof(detail), " (α = %g)", *alpha);
      std::fprintf(stderr, "wrote %s and %s: %s%s, PSNR %.2f dB, NCC %s → %s\n", out.c_str(),
                   metrics_path.c_str(), opt.method.c_str(), detail, psnr,
                   m["ncc_before"].dump().c_str(), m["ncc_after"].dump().c_str());
    } else if (!common.quiet) {
      std::fprintf(stderr, "wrote %s and %s: %lld iterations (%s), pool %lld, PSNR %.2f dB, NCC %s → %s\n", out.c_str(),
                   metrics_path.c_str(), static_cast<long long>(res.iterations), res.stop_reason.c_str(),
                   static_cast<long long>(res.pool_size), psnr, m["ncc_before"].dump().c_str(),
                   m["ncc_after"].dump().c_str());
      if (res.fallback) std::fprintf(stderr, "warning: no candidate reached τ = %.1f dB; the best candidate was written\n", dip.psnr_min);
    }
    return res.stop_reason == "interrupted" ? 3 : 0;
  });
}

}  // namespace dippas
