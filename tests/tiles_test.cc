// Tiles of a full-size photo: the grid's geometry against independently derived spans, the
// stitched output against each tile's own run, and the work folder.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <torch/torch.h>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <numeric>

#include "dippas/pipeline/tiled_dip.h"
#include "dippas/pipeline/tiles.h"
#include "dippas/pipeline/work_folder.h"
#include "dippas/util/runtime.h"
#include "fs_util.h"

namespace dippas {
namespace {

namespace fs = std::filesystem;

// Every pixel of the image in exactly one core box; every core starting on the B grid;
// contexts containing their cores and clipped to the image.
void ExpectPartition(const TileGrid& g, int64_t h, int64_t w, int64_t b) {
  std::vector<int> covered(static_cast<size_t>(h * w), 0);
  for (const auto& t : g.tiles) {
    EXPECT_EQ(t.core.y % b, 0);
    EXPECT_EQ(t.core.x % b, 0);
    EXPECT_GE(t.core.h, std::min<int64_t>(h, kMinTileSide));
    EXPECT_GE(t.core.w, std::min<int64_t>(w, kMinTileSide));
    EXPECT_LE(t.context.y, t.core.y);
    EXPECT_LE(t.context.x, t.core.x);
    EXPECT_GE(t.context.y + t.context.h, t.core.y + t.core.h);
    EXPECT_GE(t.context.x + t.context.w, t.core.x + t.core.w);
    EXPECT_LE(t.context.y + t.context.h, h);
    EXPECT_LE(t.context.x + t.context.w, w);
    EXPECT_EQ(t.context.y % b, 0);
    EXPECT_EQ(t.context.x % b, 0);
    for (int64_t y = t.core.y; y < t.core.y + t.core.h; ++y)
      for (int64_t x = t.core.x; x < t.core.x + t.core.w; ++x) ++covered[static_cast<size_t>(y * w + x)];
  }
  EXPECT_TRUE(std::all_of(covered.begin(), covered.end(), [](int c) { return c == 1; }));
}

using Spans = std::vector<std::pair<int64_t, int64_t>>;

TEST(TileGrid, FullSizeDresdenPhoto) {
  // 2000 = 3·512 + 464 and 3008 = 5·512 + 448: both leftovers are tiles of their own.
  const auto g = MakeTileGrid(2000, 3008, 512, 64, 0);
  EXPECT_EQ(g.rows, 4);
  EXPECT_EQ(g.cols, 6);
  ASSERT_EQ(g.tiles.size(), 24u);
  EXPECT_EQ(TileSpans(2000, 512), (Spans{{0, 512}, {512, 512}, {1024, 512}, {1536, 464}}));
  EXPECT_EQ(TileSpans(3008, 512), (Spans{{0, 512}, {512, 512}, {1024, 512}, {1536, 512}, {2048, 512}, {2560, 448}}));
  EXPECT_EQ(g.tiles[23].core, (Box{1536, 2560, 464, 448}));
  ExpectPartition(g, 2000, 3008, 64);
}

TEST(TileGrid, SmallLeftoverJoinsItsNeighbour) {
  // 401 = 3·128 + 17: the 17-pixel strip joins the third tile; 333 = 2·128 + 77 stays.
  const auto g = MakeTileGrid(333, 401, 128, 32, 0);
  EXPECT_EQ(TileSpans(401, 128), (Spans{{0, 128}, {128, 128}, {256, 145}}));
  EXPECT_EQ(TileSpans(333, 128), (Spans{{0, 128}, {128, 128}, {256, 77}}));
  EXPECT_EQ(g.tiles.size(), 9u);
  ExpectPartition(g, 333, 401, 32);
  // At the default tile size it is one tile: the whole image.
  const auto one = MakeTileGrid(333, 401, 512, 64, 0);
  ASSERT_EQ(one.tiles.size(), 1u);
  EXPECT_FALSE(one.tiled());
  EXPECT_EQ(one.tiles[0].core, (Box{0, 0, 333, 401}));
}

TEST(TileGrid, ThinStrip) {
  const auto g = MakeTileGrid(40, 1000, 512, 64, 0);
  ASSERT_EQ(g.tiles.size(), 2u);
  EXPECT_EQ(g.tiles[0].core, (Box{0, 0, 40, 512}));
  EXPECT_EQ(g.tiles[1].core, (Box{0, 512, 40, 488}));
  ExpectPartition(g, 40, 1000, 64);
}

TEST(TileGrid, TileSizeRoundedToBlocksAndMarginClipped) {
  const auto g = MakeTileGrid(700, 700, 500, 64, 40);  // tile 448, margin 64
  EXPECT_EQ(g.tile_size, 448);
  EXPECT_EQ(g.margin, 64);
  ASSERT_EQ(g.tiles.size(), 4u);
  EXPECT_EQ(g.tiles[0].context, (Box{0, 0, 512, 512}));
  EXPECT_EQ(g.tiles[3].context, (Box{384, 384, 316, 316}));
  ExpectPartition(g, 700, 700, 64);
  EXPECT_EQ(MakeTileGrid(3000, 4000, 0, 64, 0).tiles.size(), 1u);  // 0 = never tile
  EXPECT_THROW(MakeTileGrid(0, 10, 512, 64, 0), std::invalid_argument);
}

TEST(TileGrid, Seeds) {
  EXPECT_EQ(TileSeed(7, 0), 7);
  EXPECT_NE(TileSeed(7, 1), TileSeed(7, 2));
  EXPECT_GE(TileSeed(std::numeric_limits<int64_t>::max(), 5), 0);
}

DipRunOptions Tiny() {
  DipRunOptions r;
  r.dip.input_depth = 4;
  r.dip.filters = {4, 8};
  r.dip.skips = {4};
  r.dip.max_iterations = 4;
  r.dip.psnr_min = 5;  // every candidate joins the pool
  r.dip.psnr_stop = 99;
  r.dip.block_size = 32;
  r.dip.top = 2;
  r.dip.lr = 0.01;
  r.dip.seed = 3;
  return r;
}

torch::Tensor Scene(int64_t h, int64_t w) {
  torch::manual_seed(11);
  auto img = torch::rand({3, h / 8 + 1, w / 8 + 1});
  img = torch::upsample_bilinear2d(img.unsqueeze(0), {h, w}, false)[0] * 200 + 20;
  return img.round();
}

// The tiled tests' setup: a scene, a pattern, and the grid of 64-pixel tiles (B = 32).
struct TiledCase {
  torch::Tensor image, pattern;
  TileGrid grid;
};

TiledCase Case(int64_t h, int64_t w, int64_t margin = 0) {
  auto image = Scene(h, w);  // seeds the generator: the pattern is drawn after it
  auto pattern = torch::randn({h, w});
  return {image, pattern, MakeTileGrid(h, w, 64, 32, margin)};
}

// Box b of a (C,H,W) image or an (H,W) pattern.
torch::Tensor Cut(const torch::Tensor& t, const Box& b) {
  const int64_t d = t.dim() - 2;
  return t.slice(d, b.y, b.y + b.h).slice(d + 1, b.x, b.x + b.w).contiguous();
}

// A margin-free tile run by itself with `own`, given the seed the tiled run gives it.
DipResult RunAlone(const TiledCase& c, const Tile& t, DipRunOptions own) {
  own.dip.seed = TileSeed(own.dip.seed, t.index);
  return RunDip(Cut(c.image, t.core), Cut(c.pattern, t.core), own);
}

TEST(TiledDip, StitchedEqualsEachTilesOwnRun) {
  const auto c = Case(96, 160);  // 2 × 3 tiles, the last ones 32 wide/high
  const auto run = Tiny();
  ASSERT_EQ(c.grid.tiles.size(), 6u);
  const auto r = RunTiledDip(c.image, c.pattern, c.grid, run);
  ASSERT_TRUE(r.complete);
  ASSERT_EQ(r.tiles.size(), 6u);
  for (const auto& t : c.grid.tiles) {
    EXPECT_TRUE(torch::equal(Cut(r.image, t.core), RunAlone(c, t, run).image))
        << "tile " << t.index;
  }
  // Same seed, same bytes.
  EXPECT_TRUE(torch::equal(RunTiledDip(c.image, c.pattern, c.grid, run).image, r.image));
}

TEST(TiledDip, UntiledIsPlainRunDip) {
  const auto image = Scene(64, 64);
  const auto pattern = torch::randn({64, 64});
  const auto run = Tiny();
  const auto r = RunTiledDip(image, pattern, MakeTileGrid(64, 64, 512, 32, 0), run);
  EXPECT_TRUE(torch::equal(r.image, RunDip(image, pattern, run).image));
}

TEST(TiledDip, MarginIsCutAway) {
  const auto c = Case(64, 128, /*margin=*/32);
  const auto& image = c.image;
  const auto& pattern = c.pattern;
  const auto& grid = c.grid;
  ASSERT_EQ(grid.tiles.size(), 2u);
  EXPECT_EQ(grid.tiles[0].context, (Box{0, 0, 64, 96}));
  // Each record's PSNR is its tile's core's (what the tile keeps), not its context's.
  TiledDipCallbacks cb;
  int64_t checked = 0;
  cb.on_candidate = [&](const Tile& t, const torch::Tensor& c, const IterationRecord& rec) {
    const Box& k = t.core;
    const Box local{k.y - t.context.y, k.x - t.context.x, k.h, k.w};
    const auto d = c.to(torch::kFloat64).slice(1, local.y, local.y + k.h).slice(2, local.x, local.x + k.w) -
                   image.slice(1, k.y, k.y + k.h).slice(2, k.x, k.x + k.w).to(torch::kFloat64);
    EXPECT_NEAR(rec.psnr, 10 * std::log10(255.0 * 255.0 / d.square().mean().item<double>()), 1e-3);
    ++checked;
  };
  const auto r = RunTiledDip(image, pattern, grid, Tiny(), cb);
  EXPECT_GT(checked, 0);
  DipRunOptions own = Tiny();
  own.dip.seed = TileSeed(own.dip.seed, 1);
  own.psnr_box = {0, 32, 64, 64};  // the core within the context
  const auto alone = RunDip(image.slice(2, 32, 128).contiguous(), pattern.slice(1, 32, 128).contiguous(), own);
  EXPECT_TRUE(torch::equal(r.image.slice(2, 64, 128), alone.image.slice(2, 32, 96)));
}

// warm_start: each tile after the first starts from the network the tile before ended with —
// the same as running the tiles one by one, each given the last one's exported network; without
// the network of the tile before a reused one (a resumed run), the run refuses to go on.
TEST(TiledDip, WarmStartChainsTheTiles) {
  const auto c = Case(64, 128);
  const auto& image = c.image;
  const auto& pattern = c.pattern;
  const auto& grid = c.grid;
  ASSERT_EQ(grid.tiles.size(), 2u);
  DipRunOptions run = Tiny();
  run.dip.warm_start = 1;
  std::map<int64_t, std::shared_ptr<const std::map<std::string, torch::Tensor>>> kept;
  TiledDipCallbacks cb;
  cb.save_network = [&](const Tile& t, const std::map<std::string, torch::Tensor>& n) {
    kept[t.index] = std::make_shared<const std::map<std::string, torch::Tensor>>(n);
  };
  const auto r = RunTiledDip(image, pattern, grid, run, cb);
  ASSERT_EQ(kept.size(), 2u);
  std::shared_ptr<const std::map<std::string, torch::Tensor>> before;
  for (const auto& t : grid.tiles) {
    DipRunOptions own = run;
    own.initial_network = before;
    own.export_network = true;
    const auto alone = RunAlone(c, t, own);
    EXPECT_TRUE(torch::equal(Cut(r.image, t.core), alone.image)) << "tile " << t.index;
    for (const auto& [name, v] : *alone.network) {
      EXPECT_TRUE(torch::equal(v, kept[t.index]->at(name))) << "tile " << t.index << " " << name;
    }
    before = alone.network;
  }
  // Tile 0 taken from an earlier run: tile 1 needs tile 0's network, read back — or refused.
  cb.load_finished = [&](const Tile& t) -> std::optional<std::pair<torch::Tensor, TileOutcome>> {
    if (t.index != 0) return std::nullopt;
    TileOutcome o;
    o.tile = t;
    return std::make_pair(r.image.slice(2, 0, 64).to(torch::kUInt8).contiguous(), o);
  };
  cb.load_network = [&](const Tile& t) { return kept.at(t.index); };
  EXPECT_TRUE(torch::equal(RunTiledDip(image, pattern, grid, run, cb).image, r.image));
  cb.load_network = nullptr;
  EXPECT_THROW(RunTiledDip(image, pattern, grid, run, cb), std::runtime_error);
}

// concurrent_tiles: the tiles run at once on their own threads, each with its share of the
// threads, and each gives exactly what it gives run alone with that share (1 thread here): its
// own seed's draws although another run seeds the generators meanwhile, LibTorch's, oneDNN's and
// OpenBLAS's thread counts of its share. A network large enough that the thread count changes
// its bits on some machines (the smoke test's).
TEST(TiledDip, ConcurrentTilesEachAsItsSerialRun) {
  const auto c = Case(128, 128);
  const auto& image = c.image;
  const auto& pattern = c.pattern;
  const auto& grid = c.grid;
  ASSERT_EQ(grid.tiles.size(), 4u);
  DipRunOptions run = Tiny();
  run.dip.input_depth = 32;
  run.dip.filters = {8, 16, 32, 64, 128};
  run.dip.skips = {8, 16, 32, 64};
  run.dip.max_iterations = 12;
  const int threads_before = at::get_num_threads();
  SetThreads(1);
  const auto serial = RunTiledDip(image, pattern, grid, run);
  SetThreads(2);
  run.dip.concurrent_tiles = 2;
  std::mutex mutex;
  std::map<int64_t, int64_t> iterations;  // per tile, as the callbacks saw them
  std::vector<int64_t> running, done_order;
  bool overlapped = false, one_at_a_time = true;
  int inside = 0;
  TiledDipCallbacks cb;
  cb.on_iteration = [&](const Tile& t, int64_t, const IterationRecord& r, int64_t) {
    one_at_a_time = one_at_a_time && ++inside == 1;  // the callbacks never run at once
    if (r.iteration == 1) running.push_back(t.index);
    if (running.size() - done_order.size() > 1) overlapped = true;
    ++iterations[t.index];
    --inside;
  };
  cb.on_tile_done = [&](const torch::Tensor&, const TileOutcome& o) {
    std::lock_guard<std::mutex> lock(mutex);
    done_order.push_back(o.tile.index);
  };
  const auto concurrent = RunTiledDip(image, pattern, grid, run, cb);
  SetThreads(threads_before);
  ASSERT_TRUE(concurrent.complete);
  EXPECT_TRUE(overlapped) << "no two tiles ran at once";
  EXPECT_TRUE(one_at_a_time);
  EXPECT_EQ(done_order.size(), 4u);
  ASSERT_EQ(concurrent.tiles.size(), 4u);
  EXPECT_TRUE(torch::equal(concurrent.image, serial.image));
  for (size_t k = 0; k < 4; ++k) {
    EXPECT_EQ(concurrent.tiles[k].tile.index, static_cast<int64_t>(k));  // grid order
    EXPECT_EQ(concurrent.tiles[k].iterations, serial.tiles[k].iterations);
    EXPECT_EQ(concurrent.tiles[k].psnr, serial.tiles[k].psnr);
    EXPECT_EQ(iterations[static_cast<int64_t>(k)], serial.tiles[k].iterations);
  }
  // The process's thread count is as it was: only the workers had one.
  EXPECT_EQ(at::get_num_threads(), threads_before);
}

TEST(TiledDip, ConcurrentTilesStopTogetherAndRefuseWhatTheyCannotDo) {
  const auto c = Case(64, 192);
  const auto& image = c.image;
  const auto& pattern = c.pattern;
  const auto& grid = c.grid;
  ASSERT_EQ(grid.tiles.size(), 3u);
  DipRunOptions run = Tiny();
  run.dip.max_iterations = 200;
  run.dip.concurrent_tiles = 2;
  std::atomic<int64_t> seen{0};
  TiledDipCallbacks cb;
  cb.on_iteration = [&](const Tile&, int64_t, const IterationRecord&, int64_t) { ++seen; };
  cb.stop_requested = [&] { return seen.load() >= 6; };
  const auto r = RunTiledDip(image, pattern, grid, run, cb);
  EXPECT_TRUE(r.interrupted);
  EXPECT_FALSE(r.complete);
  EXPECT_FALSE(r.image.defined());
  EXPECT_TRUE(r.tiles.empty());  // none had finished: the two running stopped, the third never began
  EXPECT_LT(seen.load(), 12);
  // A warm tile waits for the one before it; CUDA runs them one by one.
  run.dip.warm_start = 1;
  EXPECT_THROW(run.dip.Check(), std::invalid_argument);
  EXPECT_THROW(RunTiledDip(image, pattern, grid, run), std::invalid_argument);
  run.dip.warm_start = 0;
  run.device = "cuda";
  EXPECT_THROW(RunTiledDip(image, pattern, grid, run), std::invalid_argument);
}

TEST(TiledDip, InterruptedTiledRunHasNoImage) {
  const auto c = Case(64, 128);
  TiledDipCallbacks cb;
  int64_t done = 0;
  cb.on_tile_done = [&](const torch::Tensor&, const TileOutcome&) { ++done; };
  cb.stop_requested = [&] { return done >= 1; };
  const auto r = RunTiledDip(c.image, c.pattern, c.grid, Tiny(), cb);
  EXPECT_FALSE(r.complete);
  EXPECT_TRUE(r.interrupted);
  EXPECT_FALSE(r.image.defined());
  EXPECT_EQ(r.tiles.size(), 1u);
}

TEST(WorkFolder, SavesReloadsAndStartsOverOnOtherSettings) {
  const fs::path dir = fs::temp_directory_path() / ("dippas_wf_" + std::to_string(getpid()));
  fs::remove_all(dir);
  const Box core{0, 32, 2, 3};
  std::vector<uint8_t> rgb(18);
  std::iota(rgb.begin(), rgb.end(), uint8_t{7});
  {
    TileWorkFolder wf(dir.string(), "aaaa", {{"k", 1}});
    EXPECT_FALSE(wf.restarted());
    struct stat st {};
    ASSERT_EQ(stat(dir.c_str(), &st), 0);
    if (test::ModesKept(fs::temp_directory_path().string())) {
      EXPECT_EQ(st.st_mode & 0777, 0700u);
    }
    EXPECT_FALSE(wf.Load(0, core));
    wf.Save(0, core, rgb, {{"iterations", 5}}, "1,2\n");
  }
  {
    TileWorkFolder wf(dir.string(), "aaaa", {{"k", 1}});
    EXPECT_FALSE(wf.restarted());
    const auto t = wf.Load(0, core);
    ASSERT_TRUE(t);
    EXPECT_EQ(t->rgb, rgb);
    EXPECT_EQ(t->record.at("iterations"), 5);
    EXPECT_EQ(t->history, "1,2\n");
    EXPECT_FALSE(wf.Load(0, Box{0, 0, 2, 3}));  // another box: not this tile
  }
  {
    TileWorkFolder wf(dir.string(), "bbbb", {{"k", 2}});
    EXPECT_TRUE(wf.restarted());
    EXPECT_FALSE(wf.Load(0, core));
    wf.Remove();
  }
  EXPECT_FALSE(fs::exists(dir));
}

TEST(WorkFolder, HashSeesContents) {
  const fs::path f = fs::temp_directory_path() / ("dippas_hash_" + std::to_string(getpid()));
  std::ofstream(f) << "abc";
  const auto h1 = HashInputs("s", {f.string()});
  std::ofstream(f) << "abd";
  EXPECT_NE(HashInputs("s", {f.string()}), h1);
  EXPECT_NE(HashInputs("t", {f.string()}), HashInputs("s", {f.string()}));
  fs::remove(f);
  EXPECT_THROW(HashInputs("s", {f.string()}), std::exception);
}

}  // namespace
}  // namespace dippas
