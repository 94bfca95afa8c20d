#include "dippas/pipeline/anonymize.h"

#include <ATen/Parallel.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <sstream>

#include "dippas/assembly/assembly.h"
#include "dippas/baselines/baselines.h"
#include "dippas/dip/checkpoint.h"
#include "dippas/dip/config.h"
#include "dippas/dip/settings_hash.h"
#include "dippas/dip/stop_rules.h"
#include "dippas/eval/psnr.h"
#include "dippas/io/atomic_file.h"
#include "dippas/io/image.h"
#include "dippas/io/mat.h"
#include "dippas/io/paths.h"
#include "dippas/io/pool.h"
#include "dippas/pipeline/history.h"
#include "dippas/pipeline/inputs.h"
#include "dippas/pipeline/memory_check.h"
#include "dippas/pipeline/prnu_commands.h"
#include "dippas/pipeline/tile_json.h"
#include "dippas/pipeline/tiled_dip.h"
#include "dippas/pipeline/work_folder.h"
#include "dippas/prnu/detection.h"
#include "dippas/prnu/residual.h"
#include "dippas/util/runtime.h"

namespace dippas {

namespace fs = std::filesystem;

namespace {

nlohmann::json Num(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); }
nlohmann::json Num(const std::optional<double>& v) { return v ? Num(*v) : nlohmann::json(nullptr); }

// Output folders exist and are writable: found out now, not after hours of iterations
// (EROFS too, which root cannot bypass).
void CheckWritable(const std::string& path) {
  if (path.empty()) return;
  std::error_code ec;
  const fs::path dir = fs::path(path).has_parent_path() ? fs::path(path).parent_path() : fs::path(".");
  if (!fs::is_directory(dir, ec)) throw UsageError(path + ": folder '" + dir.string() + "' does not exist");
  if (access(dir.c_str(), W_OK) != 0) {
    throw UsageError(path + ": cannot write to folder '" + dir.string() + "': " + std::strerror(errno));
  }
}

// (C,H,W) float32 on 0..255 of a decoded image.
torch::Tensor ImageToChw(const Image& im) {
  return torch::from_blob(const_cast<float*>(im.data.data()), {im.height, im.width, im.channels},
                          torch::kFloat32)
      .permute({2, 0, 1})
      .clone();
}

}  // namespace

AttributionScores ScoreImage(const torch::Tensor& image, const torch::Tensor& k, double sigma) {
  if (!k.defined()) return {};
  ResidualOptions ro;
  ro.sigma = sigma;
  const auto w = Residual(image, ro);
  const auto g = ToGray(image);
  AttributionScores s;
  s.ncc = Ncc(w, g, k).item<double>();
  s.pce = Pce(w, g * k).pce;
  return s;
}

AnonymizeOutcome Anonymize(const AnonymizeOptions& opt, const AnonymizeCallbacks& callbacks) {
  opt.Check();
  const DipOptions& dip = opt.dip;
  const auto t_start = std::chrono::steady_clock::now();
  std::map<std::string, double> timings;
  auto lap = [&, last = t_start](const std::string& stage) mutable {
    const auto now = std::chrono::steady_clock::now();
    timings[stage] += std::chrono::duration<double>(now - last).count();
    last = now;
  };
  auto say = [&](const std::string& m) {
    if (callbacks.on_message) callbacks.on_message(m);
  };
  auto notice = [&](const std::string& m) {
    if (callbacks.on_notice) callbacks.on_notice(m);
  };
  const bool is_dip = opt.method == "dip";
  const std::string out = opt.OutputPath();
  const std::string metrics_path = opt.MetricsPath();

  // No output may replace an input, nor another output.
  std::vector<NamedPath> inputs = {{"--image", opt.image}, {"--prnu", opt.prnu}, {"--eval-prnu", opt.eval_prnu}};
  for (const auto& c : opt.config) inputs.push_back({"--config", c});
  std::vector<NamedPath> named_outputs = {{"--out", out}, {"--metrics", metrics_path}, {"--history", opt.history}};
  if (is_dip && !opt.history.empty())
    named_outputs.push_back({"--history", LiveHistory::PartPath(opt.history)});
  if (!opt.save_pool.empty()) {
    named_outputs.push_back({"--save-pool", (fs::path(opt.save_pool) / "pool.npy").string()});
    named_outputs.push_back({"--save-pool", (fs::path(opt.save_pool) / "pool.json").string()});
  }
  try {
    CheckOutputsNotInputs(named_outputs, inputs);
  } catch (const OutputClashError& e) {
    throw UsageError(e.what());
  }
  for (const auto& o : named_outputs) {
    if (o.role != "--save-pool") CheckWritable(o.path);
  }
  if (is_dip && !opt.history.empty()) LiveHistory::CheckPart(opt.history);

  // Inputs.
  const LoadedImage img = LoadImage(opt.image, opt.crop);
  auto chw = img.chw;
  if (img.image.channels == 1) chw = chw.expand({3, -1, -1}).contiguous();  // gray: processed as RGB
  const int64_t h = chw.size(1), w = chw.size(2);
  if (h < 32 || w < 32) {
    throw UsageError(opt.image + ": image is " + std::to_string(h) + "x" + std::to_string(w) +
                     ", the DIP needs at least 32x32 pixels");
  }
  const TileGrid grid = is_dip ? MakeTileGrid(h, w, dip.tile_size, dip.block_size, dip.tile_margin)
                               : MakeTileGrid(h, w, 0, 1, 0);
  if (grid.tiled() && !opt.save_pool.empty()) {
    throw UsageError("--save-pool keeps whole-image candidates: it needs an image no larger than tile_size (" +
                     std::to_string(dip.tile_size) + "), or --set tile_size=0");
  }
  if (is_dip && opt.device == "cpu") {
    // Before hours of work: a run killed for memory halfway loses what it did.
    const auto available = AvailableMemory();
    if (available) {
      if (auto m = MemoryWarning(EstimateCpuMemory(dip, grid, h, w), *available)) notice(*m);
    }
  }
  torch::Tensor pattern;
  std::optional<FingerprintQuality> fingerprint_quality;  // from `dippas fingerprint`, if known
  ResidualOptions ro;
  ro.sigma = dip.sigma;
  if (!opt.prnu.empty()) {
    pattern = LoadPattern(opt.prnu, opt.crop, h, w, opt.image);
    fingerprint_quality = ReadFingerprintQuality(opt.prnu);
    if (is_dip && fingerprint_quality && fingerprint_quality->true_corr < kWeakFingerprint) {
      char m[480];
      std::snprintf(m, sizeof(m),
                    "warning: %s is a weak fingerprint (%lld flat-fields, estimated correlation "
                    "with the camera's pattern ρ ≈ %.2f): the output keeps what it misses of the "
                    "camera, which an analyst with a better fingerprint may still find%s",
                    opt.prnu.c_str(), static_cast<long long>(fingerprint_quality->images),
                    fingerprint_quality->true_corr,
                    dip.select_residual > 0
                        ? ""
                        : "; ranking the blocks by the photo's own residual as well leaves less "
                          "(--set select_residual=1, or --config configs/robust.yaml)");
      notice(m);
    }
  } else if (is_dip) {
    pattern = Residual(chw, ro);  // blind: P = the whole image's residual, cropped per tile
  }
  const bool aware = !opt.prnu.empty();
  torch::Tensor k_eval;
  const std::string eval_path = !opt.eval_prnu.empty() ? opt.eval_prnu : opt.prnu;
  if (!eval_path.empty()) {
    k_eval = eval_path == opt.prnu ? pattern : LoadPattern(eval_path, opt.crop, h, w, opt.image);
  }
  const auto image8 = chw.round().clamp(0, 255);
  const AttributionScores before = ScoreImage(image8, k_eval, dip.sigma);
  // Every input is read here, before the loop: a file moved or replaced while it runs changes
  // neither the result nor its metrics (the settings hash covers the fingerprint's bytes).
  const std::string result_settings_hash =
      SettingsHash({opt.method, aware ? "aware" : "blind", opt.crop, dip, opt.prnu, MatVariable()});
  lap("load");

  AnonymizeOutcome outcome;
  torch::Tensor result_image;
  std::optional<double> alpha;  // subtract: the α found
  std::vector<TileOutcome> tiles;
  std::unique_ptr<PoolWriter> pool;
  std::map<int64_t, std::string> history;  // per tile: CSV rows
  std::unique_ptr<LiveHistory> live;       // the same rows as they come
  std::unique_ptr<TileWorkFolder> work;
  std::string checkpoint_note;  // where an interrupted run's loop state was kept
  if (!is_dip) {
    if (opt.method == "subtract") {
      SubtractOptions so;
      so.sigma = dip.sigma;
      const SubtractResult sub = SubtractFingerprint(chw, pattern, so);
      result_image = sub.image;
      alpha = sub.alpha;
    } else {
      result_image = DenoiseBaseline(chw, dip.sigma);
    }
    lap("baseline");
  } else {
    if (!opt.save_pool.empty()) {
      pool = std::make_unique<PoolWriter>(
          opt.save_pool, h, w,
          nlohmann::json{{"image", opt.image},
                         {"mode", opt.blind ? "blind" : "aware"},
                         {"prnu", opt.blind ? nlohmann::json(nullptr) : nlohmann::json(opt.prnu)},
                         {"sigma", dip.sigma},
                         {"select_residual", dip.select_residual},
                         {"crop", opt.crop}},
          opt.checkpoint.empty() ? PoolSpool::kTemporary : PoolSpool::kResumable);
    }
    const bool checkpointing = !opt.checkpoint.empty();
    std::string settings_hash;
    if (grid.tiled() || checkpointing) {
      // What makes the pixels: the settings (not when checkpoints are taken) and the inputs' bytes.
      DipOptions method_settings = dip;
      method_settings.checkpoint_every = DipOptions{}.checkpoint_every;
      method_settings.checkpoint_seconds = DipOptions{}.checkpoint_seconds;
      method_settings.concurrent_tiles = DipOptions{}.concurrent_tiles;  // how, not what
      const nlohmann::json settings = {{"image", opt.image},
                                       {"prnu", opt.prnu},
                                       {"mode", aware ? "aware" : "blind"},
                                       {"crop", opt.crop},
                                       {"config", DipOptionsToJson(method_settings)},
                                       {"device", opt.device},
                                       {"mat_var", MatVariable()}};
      settings_hash = HashInputs(settings.dump(), {opt.image, opt.prnu});
      const auto other = !checkpointing ? TileWorkFolder::OtherRun::kDiscard
                         : opt.restart  ? TileWorkFolder::OtherRun::kDiscardOurs
                                        : TileWorkFolder::OtherRun::kRefuse;
      work = std::make_unique<TileWorkFolder>(opt.WorkFolder(), settings_hash, settings, other);
      if (work->restarted()) say(work->dir() + ": made with other inputs or settings; starting over");
    }
    if (!opt.history.empty()) {
      live = std::make_unique<LiveHistory>(opt.history, grid.tiled());
      if (!live->Rewrite(history) && callbacks.on_notice) callbacks.on_notice(live->error());
    }
    DipRunOptions run;
    run.dip = dip;
    run.device = opt.device;
    run.ncc_every_iteration = opt.history_ncc;
    run.checkpoint_key = settings_hash;
    if (aware && dip.select_residual > 0)
      run.selection_pattern = SelectionPattern(pattern, Residual(chw, ro), dip.select_residual);
    TiledDipCallbacks cb;
    const bool hooked = std::getenv("DIPPAS_TEST_SIGNAL_AT") != nullptr;
    int64_t iterations_run = 0;  // by this process, over all tiles: the test hook's count
    std::map<int64_t, StopProjection> projections;  // per tile: tiles may run at once
    double finished_seconds = 0;
    int64_t finished_tiles = 0;
    cb.on_iteration = [&](const Tile& tile, int64_t done, const IterationRecord& r,
                          int64_t pool_size) {
      ++iterations_run;
      auto& projection = projections.try_emplace(tile.index, dip).first->second;
      projection.Observe(r.iteration, r.psnr, pool_size);
      if (hooked) TestSignalPoint(("iteration-" + std::to_string(iterations_run)).c_str());
      if (live) {
        const std::string row =
            (grid.tiled() ? std::to_string(tile.index) + "," : "") + HistoryRow(r);
        history[tile.index] += row;
        if (!live->Append(row) && callbacks.on_notice) callbacks.on_notice(live->error());
      }
      if (callbacks.on_iteration) {
        AnonymizeProgress p;
        p.tile = &tile;
        p.tiles = static_cast<int64_t>(grid.tiles.size());
        p.tiles_done = done;
        p.record = &r;
        p.pool_size = pool_size;
        p.iterations_left = projection.IterationsLeft();
        p.tiles_running = grid.tiled() ? std::max<int64_t>(
                                             1, std::min<int64_t>(dip.concurrent_tiles,
                                                                  p.tiles - p.tiles_done))
                                       : 1;
        p.finished_seconds = finished_seconds;
        p.finished_tiles = finished_tiles;
        callbacks.on_iteration(p);
      }
    };
    if (pool) {
      cb.on_candidate = [&](const Tile&, const torch::Tensor& cand, const IterationRecord& r) {
        const auto hwc = cand.permute({1, 2, 0}).contiguous();
        pool->Append(hwc.data_ptr<uint8_t>(),
                     {{"iteration", r.iteration}, {"psnr", r.psnr}, {"loss", r.loss}, {"gamma", r.gamma}});
      };
    }
    cb.stop_requested = callbacks.stop_requested;
    auto tile_name = [&](const Tile& tile) {
      return grid.tiled() ? " of tile " + std::to_string(tile.index + 1) + "/" +
                                std::to_string(grid.tiles.size())
                          : std::string();
    };
    cb.on_restart = [&](const Tile& tile, int64_t, double best, int64_t n, int64_t seed) {
      char m[200];
      std::snprintf(
          m, sizeof(m),
          "no candidate reached τ = %.1f dB in %lld iterations%s (best %.2f dB): starting again "
          "with seed %lld",
          dip.psnr_min, static_cast<long long>(n), tile_name(tile).c_str(), best,
          static_cast<long long>(seed));
      notice(m);
    };
    if (checkpointing) {
      cb.checkpoint_file = [&](const Tile& tile) { return work->CheckpointPath(tile.index); };
      // The history rows so far; with --save-pool, {"history", "pool"} (rows never start with '{').
      cb.checkpoint_blob = [&](const Tile& tile) {
        if (!pool) return history[tile.index];
        return nlohmann::json{{"history", history[tile.index]}, {"pool", pool->ResumeState()}}
            .dump();
      };
      cb.on_resume = [&](const Tile& tile, int64_t n, const std::string& blob) {
        const bool with_pool = !blob.empty() && blob[0] == '{';
        const nlohmann::json saved = with_pool ? nlohmann::json::parse(blob) : nlohmann::json();
        const std::string start_over = "remove " + work->dir() + " to start over";
        if (pool && !with_pool) {
          throw IoError(work->dir() +
                        ": saved by a run without --save-pool (its candidates before iteration " +
                        std::to_string(n) + " were not kept): rerun without --save-pool, or " +
                        start_over);
        }
        try {
          if (pool) pool->ResumeFrom(saved.at("pool"));
        } catch (const IoError& e) {
          throw IoError(std::string(e.what()) + " (give its --save-pool folder, or " + start_over +
                        ")");
        }
        history[tile.index] = with_pool ? saved.at("history").get<std::string>() : blob;
        if (live && !live->Rewrite(history)) notice(live->error());
        notice("resumed from iteration " + std::to_string(n) + tile_name(tile) + " (checkpoint " +
               work->dir() + ")");
      };
    }
    if (work && dip.warm_start != 0 && grid.tiled()) {
      // The network each finished tile ended with, for the next (the two latest kept: a crash
      // between saving a tile and its network never leaves a tile without the one before).
      cb.save_network = [&](const Tile& tile, const std::map<std::string, torch::Tensor>& net) {
        TensorMap t(net.begin(), net.end());
        std::string names;
        for (const auto& [name, v] : net) names += name + "\n";
        t["names"] = StringTensor(names);
        SaveTensorMap(work->NetworkPath(tile.index), t);
        if (tile.index >= 2) std::filesystem::remove(work->NetworkPath(tile.index - 2));
      };
      cb.load_network = [&](const Tile& tile) -> std::shared_ptr<const std::map<std::string, torch::Tensor>> {
        const std::string path = work->NetworkPath(tile.index);
        if (!std::filesystem::exists(path)) return nullptr;
        std::vector<std::string> names;
        std::istringstream in(TensorString(LoadTensorMap(path, {"names"}).at("names")));
        for (std::string line; std::getline(in, line);) names.push_back(line);
        auto t = LoadTensorMap(path, names);
        t.erase("names");
        return std::make_shared<const std::map<std::string, torch::Tensor>>(t.begin(), t.end());
      };
    }
    if (work) {
      int64_t reused = 0, finished = 0;
      cb.load_finished = [&](const Tile& tile) -> std::optional<std::pair<torch::Tensor, TileOutcome>> {
        auto saved = work->Load(tile.index, tile.core);
        if (!saved) return std::nullopt;
        ++reused;
        history[tile.index] = saved->history;
        if (live && !live->Append(saved->history)) notice(live->error());
        auto px = torch::from_blob(saved->rgb.data(), {tile.core.h, tile.core.w, 3}, torch::kUInt8)
                      .permute({2, 0, 1})
                      .clone();
        return std::make_pair(px, TileFromJson(saved->record, tile));
      };
      cb.on_tile_done = [&](const torch::Tensor& px, const TileOutcome& t) {
        finished_seconds += t.seconds;
        ++finished_tiles;
        const auto hwc = px.permute({1, 2, 0}).contiguous();
        std::vector<uint8_t> rgb(hwc.data_ptr<uint8_t>(), hwc.data_ptr<uint8_t>() + hwc.numel());
        work->Save(t.tile.index, t.tile.core, rgb, TileJson(t), history[t.tile.index]);
        if (checkpointing) {  // the tile's result stands
          std::filesystem::remove(work->CheckpointPath(t.tile.index));
          for (size_t k = 1; k < t.attempts.size(); ++k)
            std::filesystem::remove(
                RestartCheckpointPath(work->CheckpointPath(t.tile.index), static_cast<int64_t>(k)));
        }
        TestSignalPoint(("tiles-done-" + std::to_string(++finished)).c_str());
      };
      TestSignalPoint("before-loop");
      TiledDipResult r = RunTiledDip(chw, pattern, grid, run, cb);
      if (reused > 0 && grid.tiled()) {
        say("resumed: " + std::to_string(reused) + " of " + std::to_string(grid.tiles.size()) +
            " tiles taken from " + work->dir());
      }
      tiles = r.tiles;
      result_image = r.image;
      outcome.interrupted = r.interrupted;
      if (r.checkpoint_iteration >= 0) {
        checkpoint_note =
            "checkpoint saved at iteration " + std::to_string(r.checkpoint_iteration) +
            tile_name(grid.tiles.at(static_cast<size_t>(r.checkpoint_tile))) + " in " + work->dir();
      }
    } else {
      TestSignalPoint("before-loop");
      TiledDipResult r = RunTiledDip(chw, pattern, grid, run, cb);
      tiles = r.tiles;
      result_image = r.image;
      outcome.interrupted = r.interrupted;
    }
    lap("dip");  // the loop, with the online assembly of every admitted candidate
    if (!outcome.interrupted) TestSignalPoint("after-loop");
  }

  if (!result_image.defined() || outcome.interrupted) {
    // An interrupted run never looks finished: nothing under the final names (--out, --metrics,
    // --history, --save-pool), tiled or not; H.part keeps the rows run so far, the work folder
    // the finished tiles and the checkpoint the loop state.
    outcome.interrupted = true;
    if (live && history.empty()) live->Remove();
    outcome.resumable = work != nullptr && (!tiles.empty() || !checkpoint_note.empty());
    int64_t done = 0;
    for (const auto& t : tiles) done += t.iterations;
    if (!checkpoint_note.empty()) {
      outcome.summary = "interrupted: " + checkpoint_note +
                        "; nothing written (rerun the same command to resume)";
    } else if (work && grid.tiled() && !tiles.empty()) {
      outcome.summary = "interrupted: " + std::to_string(tiles.size()) + " of " +
                        std::to_string(grid.tiles.size()) + " tiles done, kept in " + work->dir() +
                        "; nothing written (rerun the same command to resume)";
    } else if (done > 0) {
      outcome.summary = "interrupted after " + std::to_string(done) +
                        " iterations: nothing written (rerun the same command to start again; "
                        "with --checkpoint DIR a run can be resumed)";
    } else {
      outcome.summary = "interrupted before the first iteration: nothing written";
    }
    return outcome;
  }

  // Outputs: image, pool, history, metrics, staged then committed in one step. The image keeps
  // the input's channels (gray in, gray out) and its bit depth where the format holds it; the
  // scores are those of the written file, decoded again (a JPEG's compression changes them).
  const ImageFormat format = OutputFormat(out);
  OutputSet outputs;
  Image out_img;
  out_img.height = h;
  out_img.width = w;
  out_img.channels = img.image.channels;
  out_img.bit_depth = Holds16Bit(format) ? img.image.bit_depth : 8;
  // A gray input went through the network as three equal channels: their mean is the gray
  // closest to all three.
  const auto planes = img.image.channels == 1 ? result_image.mean(0, /*keepdim=*/true) : result_image;
  const auto hwc = planes.round().clamp(0, 255).permute({1, 2, 0}).contiguous().to(torch::kFloat32);
  out_img.data.assign(hwc.data_ptr<float>(), hwc.data_ptr<float>() + hwc.numel());
  EncodeOptions encode;
  if (opt.jpeg_quality > 0) encode.jpeg_quality = opt.jpeg_quality;
  const std::string bytes = EncodeImage(out, out_img, encode);
  outputs.Stage(out, bytes);
  if (img.image.bit_depth == 16 && !Holds16Bit(format)) {
    notice(out + ": " + FormatName(format) + " holds 8 bits per channel: written with 8 (the input had 16)");
  } else if (img.image.bit_depth == 16) {
    say(out + ": 16 bits per channel like the input; the method works on 8-bit values, which it holds");
  }
  if (format == ImageFormat::kJpeg) {
    notice("warning: " + out + ": JPEG compression (quality " + std::to_string(encode.jpeg_quality) +
           ") changes the noise residual the anonymization has just shaped; the NCC and PCE in the "
           "metrics are those of the decoded JPEG. PNG or TIFF keeps it as made");
  }
  const Image written = DecodeImage(bytes, out);
  auto written_chw = ImageToChw(written);
  if (written.channels == 1) written_chw = written_chw.expand({3, -1, -1}).contiguous();
  const double psnr = Psnr8(written_chw, image8);
  const int64_t stuck = is_dip ? StuckPixels(written_chw, image8) : 0;
  if (stuck > 0 && dip.sigmoid_floor == 0) {
    notice(out + ": " + std::to_string(stuck) +
           " pixels stuck at 0 or 255 where the photo is not (the network's output saturated "
           "there); they lower the PSNR and can keep a run from its PSNR targets for thousands of "
           "iterations: --set sigmoid_floor=0.05 frees them");
  }
  AttributionScores after;
  std::string scoring_error;
  try {
    after = ScoreImage(written_chw, k_eval, dip.sigma);
  } catch (const std::exception& e) {
    // The image is what hours went into: it is written even when it cannot be scored.
    scoring_error = e.what();
    notice("warning: the anonymized image could not be scored (" + scoring_error +
           "): ncc_after and pce_after are null in the metrics");
  }
  if (pool) pool->StageInto(outputs);
  if (!opt.history.empty()) {
    std::string csv = HistoryHeader(grid.tiled());
    for (const auto& [index, rows] : history) csv += rows;
    outputs.Stage(opt.history, csv);
  }
  lap("write");

  nlohmann::json m;
  m["image"] = opt.image;
  m["prnu"] = aware ? nlohmann::json(opt.prnu) : nlohmann::json(nullptr);
  m["eval_prnu"] = eval_path.empty() ? nlohmann::json(nullptr) : nlohmann::json(eval_path);
  m["output"] = out;
  m["mode"] = aware ? "aware" : "blind";
  m["method"] = opt.method;
  if (alpha) m["alpha"] = Num(alpha);
  m["size"] = {h, w};
  m["crop"] = opt.crop;
  m["config"] = DipOptionsToJson(dip);
  m["settings_hash"] = result_settings_hash;
  m["seed"] = dip.seed;
  m["device"] = opt.device;
  m["threads"] = at::get_num_threads();
  int64_t iterations = 0, pool_size = 0, restarts = 0;
  bool fallback = false;
  double best = NAN;
  for (const auto& t : tiles) {
    iterations += t.iterations;
    restarts += t.restarts();
    pool_size += t.pool_size;
    fallback = fallback || t.fallback;
    if (!(t.best_candidate_psnr <= best)) best = t.best_candidate_psnr;
  }
  m["iterations"] = iterations;
  m["restarts"] = restarts;
  if (!is_dip) {
    m["stop_reason"] = "completed";
  } else if (outcome.interrupted) {
    m["stop_reason"] = "interrupted";
  } else {
    m["stop_reason"] = grid.tiled() ? "completed" : tiles.at(0).stop_reason;
  }
  m["gamma"] = is_dip && !grid.tiled() ? Num(tiles.at(0).gamma) : nlohmann::json(nullptr);
  m["pool_size"] = pool_size;
  m["fallback_no_pool"] = fallback;
  m["best_candidate_psnr"] = Num(best);
  m["output_format"] = FormatName(format);
  m["output_bit_depth"] = out_img.bit_depth;
  m["output_channels"] = out_img.channels;
  m["jpeg_quality"] =
      format == ImageFormat::kJpeg ? nlohmann::json(encode.jpeg_quality) : nlohmann::json(nullptr);
  if (!scoring_error.empty()) m["scoring_error"] = scoring_error;
  m["fingerprint_quality"] =
      fingerprint_quality
          ? nlohmann::json{{"images", fingerprint_quality->images},
                           {"halves_corr", Num(fingerprint_quality->halves_corr)},
                           {"true_corr_estimate", Num(fingerprint_quality->true_corr)}}
          : nlohmann::json(nullptr);
  m["psnr"] = Num(psnr);
  m["stuck_pixels"] = stuck;
  m["ncc_before"] = Num(before.ncc);
  m["ncc_after"] = Num(after.ncc);
  m["pce_before"] = Num(before.pce);
  m["pce_after"] = Num(after.pce);
  if (is_dip) {
    m["tile_size"] = grid.tile_size;
    m["tile_margin"] = grid.margin;
    nlohmann::json tj = nlohmann::json::array();
    for (const auto& t : tiles) tj.push_back(TileJson(t));
    m["tiles"] = tj;
  }
  m["timings_s"] = timings;
  m["versions"] = {{"dippas", Version()}, {"torch", TorchVersion()}, {"opencv", DIPPAS_OPENCV_VERSION}};
  outputs.Stage(metrics_path, m.dump(2) + "\n");
  outputs.Commit();
  if (live) live->Remove();
  outcome.written = true;
  outcome.metrics = m;
  if (work && !opt.keep_tiles) work->Remove();

  std::ostringstream line;
  line.precision(4);
  line << "wrote " << out << " and " << metrics_path << ": ";
  if (!is_dip) {
    line << opt.method;
    if (alpha) line << " (α = " << *alpha << ")";
  } else if (grid.tiled()) {
    line << tiles.size() << " tiles of " << grid.tile_size << ", " << iterations << " iterations";
  } else {
    line << iterations << " iterations (" << m["stop_reason"].get<std::string>() << "), pool " << pool_size;
  }
  char tail[160];
  std::snprintf(tail, sizeof(tail), ", PSNR %.2f dB, NCC %s → %s", psnr, m["ncc_before"].dump().c_str(),
                m["ncc_after"].dump().c_str());
  line << tail;
  if (fallback) {
    char warn[120];
    std::snprintf(warn, sizeof(warn), "\nwarning: no candidate reached τ = %.1f dB%s; the best candidate was written",
                  dip.psnr_min, grid.tiled() ? " in some tiles" : "");
    line << warn;
  }
  outcome.summary = line.str();
  return outcome;
}

}  // namespace dippas
