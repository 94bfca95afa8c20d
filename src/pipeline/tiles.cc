#include "dippas/pipeline/tiles.h"

#include <algorithm>
#include <stdexcept>

namespace dippas {

std::vector<std::pair<int64_t, int64_t>> TileSpans(int64_t length, int64_t tile) {
  if (length < 1 || tile < 1) throw std::invalid_argument("TileSpans: sizes must be positive");
  std::vector<std::pair<int64_t, int64_t>> spans;
  for (int64_t start = 0; start < length; start += tile) {
    spans.emplace_back(start, std::min(tile, length - start));
  }
  if (spans.size() > 1 && spans.back().second < kMinTileSide) {
    const int64_t leftover = spans.back().second;
    spans.pop_back();
    spans.back().second += leftover;
  }
  return spans;
}

TileGrid MakeTileGrid(int64_t height, int64_t width, int64_t tile_size, int64_t block_size,
                      int64_t margin) {
  if (height < 1 || width < 1 || block_size < 1 || tile_size < 0 || margin < 0) {
    throw std::invalid_argument("MakeTileGrid: sizes must be positive");
  }
  TileGrid grid;
  const int64_t t = std::max(block_size, tile_size / block_size * block_size);
  if (tile_size == 0 || (height <= t && width <= t)) {
    grid.tiles.push_back({0, {0, 0, height, width}, {0, 0, height, width}});
    return grid;
  }
  grid.tile_size = t;
  grid.margin = (margin + block_size - 1) / block_size * block_size;
  const auto rows = TileSpans(height, t);
  const auto cols = TileSpans(width, t);
  grid.rows = static_cast<int64_t>(rows.size());
  grid.cols = static_cast<int64_t>(cols.size());
  for (const auto& [y, h] : rows) {
    for (const auto& [x, w] : cols) {
      Tile tile;
      tile.index = static_cast<int64_t>(grid.tiles.size());
      tile.core = {y, x, h, w};
      const int64_t y0 = std::max<int64_t>(0, y - grid.margin);
      const int64_t x0 = std::max<int64_t>(0, x - grid.margin);
      const int64_t y1 = std::min(height, y + h + grid.margin);
      const int64_t x1 = std::min(width, x + w + grid.margin);
      tile.context = {y0, x0, y1 - y0, x1 - x0};
      grid.tiles.push_back(tile);
    }
  }
  return grid;
}

int64_t TileSeed(int64_t seed, int64_t tile_index) {
  // A large odd stride keeps the tiles' seeds apart from those of nearby user seeds.
  // Unsigned arithmetic wraps instead of overflowing; the result stays a valid (≥ 0) seed.
  constexpr uint64_t kStride = 1000003;
  const uint64_t s = static_cast<uint64_t>(seed) + static_cast<uint64_t>(tile_index) * kStride;
  return static_cast<int64_t>(s & 0x3fffffffffffffffULL);
}

}  // namespace dippas
