#include "dippas/pipeline/tiled_dip.h"

#include <algorithm>
#include <chrono>
#include <stdexcept>
#include <string>

#include "dippas/eval/psnr.h"

namespace dippas {

namespace {

torch::Tensor Crop(const torch::Tensor& t, const Box& b) {
  return t.slice(-2, b.y, b.y + b.h).slice(-1, b.x, b.x + b.w);
}

}  // namespace

TiledDipResult RunTiledDip(const torch::Tensor& image, const torch::Tensor& pattern, const TileGrid& grid,
                           const DipRunOptions& options, const TiledDipCallbacks& callbacks) {
  const int64_t h = image.size(1), w = image.size(2);
  TiledDipResult result;
  const auto image8 = image.to(torch::kFloat32).round().clamp(0, 255);
  torch::Tensor out = torch::zeros({3, h, w}, torch::kFloat32);
  const bool warm = options.dip.warm_start != 0 && grid.tiled();
  std::shared_ptr<const std::map<std::string, torch::Tensor>> previous;  // the tile before's net
  for (const Tile& tile : grid.tiles) {
    const auto t0 = std::chrono::steady_clock::now();
    if (callbacks.load_finished) {
      if (auto saved = callbacks.load_finished(tile)) {
        Crop(out, tile.core).copy_(saved->first.to(torch::kFloat32));
        saved->second.reused = true;
        result.tiles.push_back(saved->second);
        previous.reset();  // a reused tile's network is in the caller's keeping
        continue;
      }
    }
    if (callbacks.stop_requested && callbacks.stop_requested() && grid.tiled()) {
      result.interrupted = true;
      return result;
    }
    DipRunOptions run = options;
    run.dip.seed = TileSeed(options.dip.seed, tile.index);
    // An edge tile narrower than B has one block across: the same block the grid of B gives
    // there. (Untiled, B larger than the image stays the user's error, reported by RunDip.)
    if (grid.tiled()) {
      run.dip.block_size = std::min(options.dip.block_size, std::max(tile.context.h, tile.context.w));
    }
    if (warm && tile.index > 0) {
      if (!previous && callbacks.load_network)
        previous = callbacks.load_network(grid.tiles[static_cast<size_t>(tile.index - 1)]);
      if (!previous) {
        throw std::runtime_error("warm_start: the network of tile " + std::to_string(tile.index) +
                                 " (the one before tile " + std::to_string(tile.index + 1) +
                                 ") is not kept: start the run over");
      }
      run.initial_network = previous;
    }
    run.export_network = warm;
    // Admission, stop and plateau judge the pixels the tile keeps: its core, not the margin.
    run.psnr_box = {tile.core.y - tile.context.y, tile.core.x - tile.context.x, tile.core.h,
                    tile.core.w};
    LoopCallbacks cb;
    const int64_t done = static_cast<int64_t>(result.tiles.size());
    if (callbacks.on_iteration) {
      cb.on_iteration = [&](const IterationRecord& r, int64_t pool, std::optional<double>) {
        callbacks.on_iteration(tile, done, r, pool);
      };
    }
    if (callbacks.on_candidate) {
      cb.on_candidate = [&](const torch::Tensor& c, const IterationRecord& r) { callbacks.on_candidate(tile, c, r); };
    }
    cb.stop_requested = callbacks.stop_requested;
    if (callbacks.checkpoint_file) {
      run.checkpoint = callbacks.checkpoint_file(tile);
      run.checkpoint_key = options.checkpoint_key + "/tile " + std::to_string(tile.index);
    }
    if (callbacks.checkpoint_blob)
      cb.checkpoint_blob = [&] { return callbacks.checkpoint_blob(tile); };
    if (callbacks.on_resume) {
      cb.on_resume = [&](int64_t n, const std::string& blob) {
        callbacks.on_resume(tile, n, blob);
      };
    }
    if (callbacks.on_checkpoint)
      cb.on_checkpoint = [&](int64_t n) { callbacks.on_checkpoint(tile, n); };
    if (callbacks.on_restart) {
      cb.on_restart = [&](int64_t k, double best, int64_t n, int64_t seed) {
        callbacks.on_restart(tile, k, best, n, seed);
      };
    }
    const DipResult r = RunDip(Crop(image, tile.context).contiguous(), Crop(pattern, tile.context).contiguous(), run, cb);
    if (r.stop_reason == "interrupted") {
      result.interrupted = true;
      result.checkpoint_tile = r.checkpoint_iteration >= 0 ? tile.index : -1;
      result.checkpoint_iteration = r.checkpoint_iteration;
      // Tiled: the interrupted tile is discarded (and resumed from its checkpoint, if any).
      // Untiled: its pool's assembly is the output, unless the run will resume instead.
      if (grid.tiled() || !r.image.defined() || !run.checkpoint.empty()) return result;
    }
    const Box local{tile.core.y - tile.context.y, tile.core.x - tile.context.x, tile.core.h, tile.core.w};
    const auto core = Crop(r.image, local).to(torch::kFloat32);
    Crop(out, tile.core).copy_(core);
    TileOutcome o;
    o.tile = tile;
    o.iterations = r.iterations;
    o.stop_reason = r.stop_reason;
    o.psnr = Psnr8(core, Crop(image8, tile.core));
    o.pool_size = r.pool_size;
    o.gamma = r.gamma;
    o.best_candidate_psnr = r.best_psnr;
    o.fallback = r.fallback;
    o.resumed_from = r.resumed_from;
    o.attempts = r.attempts;
    o.kept = r.kept;
    o.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    result.tiles.push_back(o);
    if (warm) {  // the network before the tile: a crash between the two redoes the tile
      previous = r.network;
      if (callbacks.save_network && previous) callbacks.save_network(tile, *previous);
    }
    if (callbacks.on_tile_done) callbacks.on_tile_done(core.to(torch::kUInt8).contiguous(), o);
  }
  result.complete = true;
  result.image = out;
  return result;
}

}  // namespace dippas
