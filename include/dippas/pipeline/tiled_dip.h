// The DIPPAS method over a tile grid: every tile is a whole run of RunDip on its context box
// (its own network, z, optimizer, stop rule, pool and online top-L assembly against its crop
// of P, seeded from (seed, tile index)); the core boxes are stitched into Î. One tile holds
// the network at a time, so memory does not grow with the photo beyond the image-sized arrays.
#pragma once

#include <torch/types.h>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "dippas/dip/loop.h"
#include "dippas/pipeline/tiles.h"

namespace dippas {

// What one tile's run gave.
struct TileOutcome {
  Tile tile;
  int64_t iterations = 0;
  std::string stop_reason;  // as RunDip's; "reused" never appears here (see `reused`)
  double psnr = 0;          // PSNR of the tile's core in Î against I, dB
  int64_t pool_size = 0;
  double gamma = 0;
  double best_candidate_psnr = 0;
  bool fallback = false;  // no candidate reached τ: the best one stands in
  double seconds = 0;
  bool reused = false;  // taken from the work folder of an earlier run
  int64_t resumed_from = 0;  // iterations taken from a checkpoint of the tile's loop
  // The loop's attempts (DipOptions::restarts): one without a restart; `kept` indexes the one
  // whose candidates make the tile.
  std::vector<DipAttempt> attempts;
  int64_t kept = 0;
  // Restarts the tile's loop made (none for a tile reused from an older version's work folder).
  int64_t restarts() const {
    return attempts.empty() ? 0 : static_cast<int64_t>(attempts.size()) - 1;
  }
};

struct TiledDipCallbacks {
  // After every iteration of a tile; `tiles_done` counts the tiles finished before it.
  std::function<void(const Tile&, int64_t tiles_done, const IterationRecord&, int64_t pool_size)> on_iteration;
  // Every admitted candidate of a tile (3,h,w) uint8 CPU, over its context box.
  std::function<void(const Tile&, const torch::Tensor&, const IterationRecord&)> on_candidate;
  // Polled every iteration; true stops the current tile ("interrupted").
  std::function<bool()> stop_requested;
  // A finished tile from an earlier run: its core pixels (3,h,w) uint8 and outcome, if any.
  std::function<std::optional<std::pair<torch::Tensor, TileOutcome>>(const Tile&)> load_finished;
  // A tile just finished: its core pixels (3,h,w) uint8 CPU and outcome.
  std::function<void(const torch::Tensor&, const TileOutcome&)> on_tile_done;
  // Checkpoints of a tile's loop (see DipRunOptions::checkpoint): the file ("" = none; the key
  // is the options' key plus the tile index), the caller's blob to save with it, and notices.
  std::function<std::string(const Tile&)> checkpoint_file;
  std::function<std::string(const Tile&)> checkpoint_blob;
  std::function<void(const Tile&, int64_t iterations, const std::string& blob)> on_resume;
  std::function<void(const Tile&, int64_t iterations)> on_checkpoint;
  // DipOptions::warm_start: a finished tile's network, for the tile after it (kept by the
  // caller: a resumed run needs the network of the last tile it reuses), and reading it back
  // (null when there is none). Without them a resumed warm run cannot start its first new tile.
  std::function<void(const Tile&, const std::map<std::string, torch::Tensor>&)> save_network;
  std::function<std::shared_ptr<const std::map<std::string, torch::Tensor>>(const Tile&)>
      load_network;
  // A tile's loop starts again (see LoopCallbacks::on_restart).
  std::function<void(const Tile&, int64_t attempt, double best_psnr, int64_t iterations,
                     int64_t next_seed)>
      on_restart;
};

struct TiledDipResult {
  torch::Tensor image;  // Î (3,H,W) float, integer values 0..255, CPU; undefined unless complete
  std::vector<TileOutcome> tiles;  // the finished ones, in grid order
  bool complete = false;           // every tile finished (an untiled run interrupted is complete)
  bool interrupted = false;        // the stop was requested
  // Interrupted with checkpoints: the tile whose loop state was kept, and its iterations.
  int64_t checkpoint_tile = -1, checkpoint_iteration = -1;
};

// image: I (3,H,W) on 0..255; pattern: P (H,W); grid: MakeTileGrid of the same size.
// An untiled grid (one tile) is exactly RunDip on the image; interrupted, it returns the
// assembly of what its pool holds — unless it checkpoints: then, like a tiled run, no image. A
// tiled run interrupted returns complete = false and no image: a half-anonymized photo must never
// look finished.
TiledDipResult RunTiledDip(const torch::Tensor& image, const torch::Tensor& pattern, const TileGrid& grid,
                           const DipRunOptions& options, const TiledDipCallbacks& callbacks = {});

}  // namespace dippas
