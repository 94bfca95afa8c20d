// Tiles of a full-size photo: each tile is anonymized by a whole run of the method (its
// own network, z, optimizer, stop rule, pool and assembly), then the tiles are stitched.
// Tiles are whole assembly blocks (B), so no block straddles two tiles. Plain C++.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace dippas {

// A rectangle of the image, in pixels.
struct Box {
  int64_t y = 0, x = 0;  // top-left corner
  int64_t h = 0, w = 0;  // size
  bool operator==(const Box& o) const { return y == o.y && x == o.x && h == o.h && w == o.w; }
};

struct Tile {
  int64_t index = 0;  // row-major position in the grid, 0-based
  Box core;           // the pixels this tile contributes to the output
  Box context;        // what its network sees: core plus the margin, clipped to the image
};

struct TileGrid {
  int64_t tile_size = 0;  // effective side: a multiple of B (0 = the image is one tile)
  int64_t margin = 0;     // effective margin: a multiple of B
  int64_t rows = 1, cols = 1;
  std::vector<Tile> tiles;
  bool tiled() const { return tiles.size() > 1; }
};

// The smallest leftover strip a tile may have; a narrower one joins its neighbour.
constexpr int64_t kMinTileSide = 32;

// Starts and lengths of the spans cutting [0, length) into pieces of `tile` (the last one
// takes the leftover; a leftover under kMinTileSide joins the previous piece).
std::vector<std::pair<int64_t, int64_t>> TileSpans(int64_t length, int64_t tile);

// The tile grid of an H×W image: tile_size rounded down to a multiple of block_size,
// margin rounded up to one. tile_size == 0, or an image no larger than the tile on both
// sides, gives one tile covering the image (core == context). Throws std::invalid_argument
// for non-positive sizes.
TileGrid MakeTileGrid(int64_t height, int64_t width, int64_t tile_size, int64_t block_size,
                      int64_t margin);

// Seed of tile i: the run's seed for tile 0 (so an untiled image keeps its seed), distinct
// per tile otherwise.
int64_t TileSeed(int64_t seed, int64_t tile_index);

}  // namespace dippas
