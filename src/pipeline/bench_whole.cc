#include "dippas/pipeline/bench_whole.h"

#include <torch/cuda.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <stdexcept>
#include <string>

#include "dippas/eval/psnr.h"
#include "dippas/io/npy.h"
#include "dippas/pipeline/tiled_dip.h"
#include "dippas/pipeline/tiles.h"
#include "dippas/prnu/detection.h"
#include "dippas/prnu/residual.h"
#include "dippas/util/bench.h"

namespace dippas {
namespace {

torch::Tensor LoadArray(const std::string& path) {
  Array2D a = ReadNpy(path);
  return torch::from_blob(a.data.data(), {a.rows, a.cols}, torch::kFloat32).clone();
}

std::string JsonString(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

std::string JsonList(const std::vector<double>& v) {
  std::string out = "[";
  char buf[32];
  for (size_t i = 0; i < v.size(); ++i) {
    std::snprintf(buf, sizeof buf, "%s%.8g", i ? ", " : "", v[i]);
    out += buf;
  }
  return out + "]";
}

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

}  // namespace

void WholeBenchOptions::Check() const {
  if (image.empty()) throw std::invalid_argument("--image is required");
  if (device != "cpu" && device != "cuda")
    throw std::invalid_argument("device must be cpu or cuda");
  dip.Check();
}

void BenchWhole(const WholeBenchOptions& o) {
  o.Check();
  const auto t0 = std::chrono::steady_clock::now();
  const auto planes = LoadArray(o.image);
  if (planes.size(0) % 3 != 0) {
    throw IoError(o.image + ": expected the R, G, B planes stacked, (3H, W); got " +
                  std::to_string(planes.size(0)) + " rows");
  }
  const int64_t h = planes.size(0) / 3, w = planes.size(1);
  const auto chw = planes.view({3, h, w}).round().clamp(0, 255);
  auto load_fit = [&](const std::string& path) {
    auto k = LoadArray(path);
    if (k.size(0) != h || k.size(1) != w) {
      throw IoError(path + ": fingerprint is " + std::to_string(k.size(0)) + "x" +
                    std::to_string(k.size(1)) + ", the image " + std::to_string(h) + "x" +
                    std::to_string(w));
    }
    // As `dippas anonymize` and `detect`: a NaN, Inf or all-zero K would make every NCC NaN.
    if (!torch::isfinite(k).all().item<bool>())
      throw IoError(path + ": fingerprint contains NaN or Inf values");
    if (k.abs().max().item<float>() == 0.0f) throw IoError(path + ": fingerprint is all zeros");
    return k;
  };
  ResidualOptions ro;
  ro.sigma = o.dip.sigma;
  // Aware: P = K; blind: P = the whole image's residual (cropped per tile by RunTiledDip).
  const torch::Tensor pattern = o.prnu.empty() ? Residual(chw, ro) : load_fit(o.prnu);
  std::vector<torch::Tensor> judges;
  for (const auto& j : o.judges) judges.push_back(load_fit(j));
  auto score = [&](const torch::Tensor& im) {
    const auto r = Residual(im, ro);
    const auto g = ToGray(im);
    std::vector<double> ncc;
    for (const auto& k : judges) ncc.push_back(Ncc(r, g, k).item<double>());
    return ncc;
  };
  const auto ncc_before = score(chw);
  const double t_load = Seconds(t0);

  ResetPeakMemory(o.device);
  const TileGrid grid = MakeTileGrid(h, w, o.dip.tile_size, o.dip.block_size, o.dip.tile_margin);
  DipRunOptions run;
  run.dip = o.dip;
  run.device = o.device;
  const auto t1 = std::chrono::steady_clock::now();
  const TiledDipResult r = RunTiledDip(chw, pattern, grid, run);
  if (o.device == "cuda") torch::cuda::synchronize();
  const double t_dip = Seconds(t1);
  if (!r.complete || !r.image.defined())
    throw std::runtime_error(o.image + ": the run did not complete");

  const auto t2 = std::chrono::steady_clock::now();
  const auto ncc_after = score(r.image);
  const double psnr = Psnr8(r.image, chw);
  const double t_score = Seconds(t2);

  char psnr_buf[32] = "null";  // +inf (unchanged) is not JSON
  if (std::isfinite(psnr)) std::snprintf(psnr_buf, sizeof psnr_buf, "%.4f", psnr);
  const std::string psnr_text = psnr_buf;
  int64_t iterations = 0, pool = 0, restarts = 0;
  std::string reasons;
  std::vector<double> gammas;
  for (const auto& t : r.tiles) {
    iterations += t.iterations;
    restarts += t.restarts();
    pool += t.pool_size;
    gammas.push_back(t.gamma);
    if (reasons.find(t.stop_reason) == std::string::npos)
      reasons += (reasons.empty() ? "" : ",") + t.stop_reason;
  }
  const double peak_mib = PeakMemoryMiB(o.device);
  const std::string peak_kind = PeakIsGpu(o.device) ? "gpu_allocated" : "process_rss";
  std::printf(
      "{\"image\": %s, \"mode\": \"%s\", \"device\": \"%s\", \"height\": %lld, \"width\": %lld, "
      "\"prnu_weight\": %g, \"prnu_block\": %lld, \"lr\": %g, \"seed\": %lld, \"tiles\": %zu, "
      "\"iterations\": "
      "%lld, \"restarts\": %lld, "
      "\"stop_reason\": \"%s\", \"pool_size\": %lld, \"gamma\": %s, \"psnr\": %s, \"ncc_before\": "
      "%s, "
      "\"ncc_after\": %s, \"seconds_load\": %.3f, \"seconds_dip\": %.3f, \"seconds_score\": %.3f, "
      "\"seconds_total\": %.3f, \"iterations_per_second\": %.2f, \"peak_mib\": %.1f, "
      "\"peak_kind\": \"%s\"}\n",
      JsonString(o.image).c_str(), o.prnu.empty() ? "blind" : "aware", o.device.c_str(),
      static_cast<long long>(h), static_cast<long long>(w), o.dip.prnu_weight,
      static_cast<long long>(o.dip.prnu_block), o.dip.lr, static_cast<long long>(o.dip.seed),
      r.tiles.size(), static_cast<long long>(iterations), static_cast<long long>(restarts),
      reasons.c_str(), static_cast<long long>(pool), JsonList(gammas).c_str(), psnr_text.c_str(),
      JsonList(ncc_before).c_str(), JsonList(ncc_after).c_str(), t_load, t_dip, t_score,
      Seconds(t0), t_dip > 0 ? static_cast<double>(iterations) / t_dip : 0.0, peak_mib,
      peak_kind.c_str());
  std::fflush(stdout);
}

}  // namespace dippas
