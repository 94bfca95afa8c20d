#include "dippas/pipeline/tiled_dip.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <exception>
#include <mutex>
#include <chrono>
#include <thread>
#include <stdexcept>
#include <string>

#include "dippas/eval/psnr.h"
#include "dippas/kernels/cpu/chunked_sgemm.h"
#include "dippas/util/runtime.h"

namespace dippas {

namespace {

torch::Tensor Crop(const torch::Tensor& t, const Box& b) {
  return t.slice(-2, b.y, b.y + b.h).slice(-1, b.x, b.x + b.w);
}

// One tile's run: its options (seed, block size, PSNR box, warm start), the caller's callbacks
// bound to the tile, RunDip on its context box. `guard` wraps every callback (runs at once
// share the caller's callbacks: one at a time).
DipResult RunTile(const torch::Tensor& image, const torch::Tensor& pattern, const TileGrid& grid,
                  const Tile& tile, const DipRunOptions& options,
                  const TiledDipCallbacks& callbacks, const std::function<int64_t()>& done,
                  std::shared_ptr<const std::map<std::string, torch::Tensor>> initial,
                  bool export_network, std::mutex* guard) {
  auto locked = [guard](auto&& fn) {
    if (guard == nullptr) return fn();
    std::lock_guard<std::mutex> lock(*guard);
    return fn();
  };
  DipRunOptions run = options;
  run.dip.seed = TileSeed(options.dip.seed, tile.index);
  // An edge tile narrower than B has one block across: the same block the grid of B gives
  // there. (Untiled, B larger than the image stays the user's error, reported by RunDip.)
  if (grid.tiled()) {
    run.dip.block_size = std::min(options.dip.block_size, std::max(tile.context.h, tile.context.w));
  }
  run.initial_network = std::move(initial);
  run.export_network = export_network;
  // Admission, stop and plateau judge the pixels the tile keeps: its core, not the margin.
  run.psnr_box = {tile.core.y - tile.context.y, tile.core.x - tile.context.x, tile.core.h,
                  tile.core.w};
  LoopCallbacks cb;
  if (callbacks.on_iteration) {
    cb.on_iteration = [&](const IterationRecord& r, int64_t pool, std::optional<double>) {
      locked([&] { callbacks.on_iteration(tile, done(), r, pool); });
    };
  }
  if (callbacks.on_candidate) {
    cb.on_candidate = [&](const torch::Tensor& c, const IterationRecord& r) {
      locked([&] { callbacks.on_candidate(tile, c, r); });
    };
  }
  if (callbacks.stop_requested)
    cb.stop_requested = [&] { return locked([&] { return callbacks.stop_requested(); }); };
  if (callbacks.checkpoint_file) {
    run.checkpoint = locked([&] { return callbacks.checkpoint_file(tile); });
    run.checkpoint_key = options.checkpoint_key + "/tile " + std::to_string(tile.index);
  }
  if (callbacks.checkpoint_blob)
    cb.checkpoint_blob = [&] { return locked([&] { return callbacks.checkpoint_blob(tile); }); };
  if (callbacks.on_resume) {
    cb.on_resume = [&](int64_t n, const std::string& blob) {
      locked([&] { callbacks.on_resume(tile, n, blob); });
    };
  }
  if (callbacks.on_checkpoint) {
    cb.on_checkpoint = [&](int64_t n) { locked([&] { callbacks.on_checkpoint(tile, n); }); };
  }
  if (callbacks.on_restart) {
    cb.on_restart = [&](int64_t k, double best, int64_t n, int64_t seed) {
      locked([&] { callbacks.on_restart(tile, k, best, n, seed); });
    };
  }
  if (options.selection_pattern.defined())
    run.selection_pattern = Crop(options.selection_pattern, tile.context).contiguous();
  return RunDip(Crop(image, tile.context).contiguous(), Crop(pattern, tile.context).contiguous(),
                run, cb);
}

// A finished tile's core pixels and outcome.
std::pair<torch::Tensor, TileOutcome> Outcome(const DipResult& r, const Tile& tile,
                                               const torch::Tensor& image8, double seconds) {
  const Box local{tile.core.y - tile.context.y, tile.core.x - tile.context.x, tile.core.h,
                  tile.core.w};
  auto core = Crop(r.image, local).to(torch::kFloat32);
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
  o.seconds = seconds;
  return {core, o};
}

double Since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// DipOptions::concurrent_tiles > 1: the tiles not reused run on `jobs` threads, each with
// threads/jobs of LibTorch's intra-op threads and OpenBLAS on one thread per call, so that each
// tile computes what it computes alone with that share.
TiledDipResult RunConcurrentTiles(const torch::Tensor& image, const torch::Tensor& pattern,
                                  const TileGrid& grid, const DipRunOptions& options,
                                  const TiledDipCallbacks& callbacks, int64_t jobs) {
  const int64_t h = image.size(1), w = image.size(2);
  const auto image8 = image.to(torch::kFloat32).round().clamp(0, 255);
  torch::Tensor out = torch::zeros({3, h, w}, torch::kFloat32);
  const size_t n = grid.tiles.size();
  std::vector<std::optional<TileOutcome>> outcomes(n);
  std::vector<const Tile*> queue;
  for (const Tile& tile : grid.tiles) {
    if (callbacks.load_finished) {
      if (auto saved = callbacks.load_finished(tile)) {
        Crop(out, tile.core).copy_(saved->first.to(torch::kFloat32));
        saved->second.reused = true;
        outcomes[static_cast<size_t>(tile.index)] = saved->second;
        continue;
      }
    }
    queue.push_back(&tile);
  }
  TiledDipResult result;
  std::mutex guard;                 // the caller's callbacks, `out`, `outcomes`, `result`
  std::atomic<size_t> next{0};      // the next tile of `queue` to start
  std::atomic<int64_t> done{static_cast<int64_t>(n - queue.size())};
  std::atomic<bool> stop{false};    // an interruption or an error: start no more tiles
  std::exception_ptr error;
  jobs = std::min<int64_t>(jobs, static_cast<int64_t>(queue.size()));
  const int per_tile = std::max(1, at::get_num_threads() / static_cast<int>(std::max<int64_t>(jobs, 1)));
  TiledDipCallbacks cb = callbacks;
  cb.stop_requested = [&] {
    return stop.load() || (callbacks.stop_requested && callbacks.stop_requested());
  };
  auto worker = [&] {
    try {
      SetThisThreadThreads(per_tile);
      for (size_t q = next++; q < queue.size() && !stop.load(); q = next++) {
        const Tile& tile = *queue[q];
        const auto t0 = std::chrono::steady_clock::now();
        const DipResult r = RunTile(image, pattern, grid, tile, options, cb,
                                    [&] { return done.load(); }, nullptr, false, &guard);
        std::lock_guard<std::mutex> lock(guard);
        if (r.stop_reason == "interrupted") {
          stop = true;
          result.interrupted = true;
          if (r.checkpoint_iteration >= 0 &&
              (result.checkpoint_tile < 0 || tile.index < result.checkpoint_tile)) {
            result.checkpoint_tile = tile.index;
            result.checkpoint_iteration = r.checkpoint_iteration;
          }
          break;
        }
        auto [core, o] = Outcome(r, tile, image8, Since(t0));
        Crop(out, tile.core).copy_(core);
        outcomes[static_cast<size_t>(tile.index)] = o;
        ++done;
        if (callbacks.on_tile_done) callbacks.on_tile_done(core.to(torch::kUInt8).contiguous(), o);
      }
    } catch (...) {
      std::lock_guard<std::mutex> lock(guard);
      if (!error) error = std::current_exception();
      stop = true;
    }
  };
  const int blas_before = SetBlasThreads(1);
  std::vector<std::thread> threads;
  for (int64_t j = 0; j < jobs; ++j) threads.emplace_back(worker);
  for (auto& t : threads) t.join();
  if (blas_before > 0) SetBlasThreads(blas_before);
  if (error) std::rethrow_exception(error);
  for (const auto& o : outcomes)
    if (o) result.tiles.push_back(*o);
  if (callbacks.stop_requested && !result.interrupted && result.tiles.size() < n)
    result.interrupted = true;  // asked to stop before the last tiles started
  if (result.interrupted) return result;
  result.complete = true;
  result.image = out;
  return result;
}

}  // namespace

TiledDipResult RunTiledDip(const torch::Tensor& image, const torch::Tensor& pattern, const TileGrid& grid,
                           const DipRunOptions& options, const TiledDipCallbacks& callbacks) {
  if (grid.tiled() && options.dip.concurrent_tiles > 1) {
    if (options.device != "cpu")
      throw std::invalid_argument("concurrent_tiles > 1 runs on the CPU only (device " +
                                  options.device + ")");
    if (options.dip.warm_start != 0)
      throw std::invalid_argument("concurrent_tiles > 1 needs warm_start 0");
    return RunConcurrentTiles(image, pattern, grid, options, callbacks,
                              options.dip.concurrent_tiles);
  }
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
    std::shared_ptr<const std::map<std::string, torch::Tensor>> initial;
    if (warm && tile.index > 0) {
      if (!previous && callbacks.load_network)
        previous = callbacks.load_network(grid.tiles[static_cast<size_t>(tile.index - 1)]);
      if (!previous) {
        throw std::runtime_error("warm_start: the network of tile " + std::to_string(tile.index) +
                                 " (the one before tile " + std::to_string(tile.index + 1) +
                                 ") is not kept: start the run over");
      }
      initial = previous;
    }
    const int64_t done = static_cast<int64_t>(result.tiles.size());
    const DipResult r = RunTile(image, pattern, grid, tile, options, callbacks,
                                [done] { return done; }, initial, warm, nullptr);
    if (r.stop_reason == "interrupted") {
      const bool checkpointed =
          callbacks.checkpoint_file && !callbacks.checkpoint_file(tile).empty();
      result.interrupted = true;
      result.checkpoint_tile = r.checkpoint_iteration >= 0 ? tile.index : -1;
      result.checkpoint_iteration = r.checkpoint_iteration;
      // Tiled: the interrupted tile is discarded (and resumed from its checkpoint, if any).
      // Untiled: its pool's assembly is the output, unless the run will resume instead.
      if (grid.tiled() || !r.image.defined() || checkpointed) return result;
    }
    auto [core, o] = Outcome(r, tile, image8, Since(t0));
    Crop(out, tile.core).copy_(core);
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
