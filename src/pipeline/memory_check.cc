#include "dippas/pipeline/memory_check.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <utility>

namespace dippas {
namespace {

// Fitted on peak RSS of `dippas anonymize` (one thread, Debian's LibTorch 1.13, 2026-12-07):
// the libraries and the first allocations; a photo's own buffers per pixel (its float copies,
// the wavelet residual that scores it); per pixel of a DIP run, per channel of z and per unit
// of Σ filters[l] / 4^l (31 for the paper's widths, giving ~4,000 B).
constexpr int64_t kBaseBytes = 260'000'000;
constexpr int64_t kPhotoBytesPerPixel = 260;
constexpr int64_t kBytesPerZChannel = 8;
constexpr double kBytesPerWidthUnit = 129.0;

}  // namespace

int64_t DipBytesPerPixel(const DipOptions& dip) {
  double widths = 0, scale = 1;
  for (const int64_t f : dip.filters) {
    widths += static_cast<double>(f) / scale;
    scale *= 4;
  }
  return kBytesPerZChannel * dip.input_depth + static_cast<int64_t>(kBytesPerWidthUnit * widths);
}

MemoryEstimate EstimateCpuMemory(const DipOptions& dip, const TileGrid& grid, int64_t h,
                                 int64_t w) {
  MemoryEstimate e;
  for (const Tile& t : grid.tiles) {
    if (t.context.h * t.context.w > e.tile_h * e.tile_w) {
      e.tile_h = t.context.h;
      e.tile_w = t.context.w;
    }
  }
  if (grid.tiles.empty()) e.tile_h = h, e.tile_w = w;
  e.bytes_per_pixel = DipBytesPerPixel(dip);
  e.per_tile = e.bytes_per_pixel * e.tile_h * e.tile_w;
  e.tiles_at_once = grid.tiled() ? std::clamp<int64_t>(dip.concurrent_tiles, 1,
                                                       static_cast<int64_t>(grid.tiles.size()))
                                 : 1;
  e.base = kBaseBytes + kPhotoBytesPerPixel * h * w;
  e.bytes = e.base + e.tiles_at_once * e.per_tile;
  // Kept for the suggestion of a tile side that fits, with this margin and B.
  e.margin = grid.tiled() ? grid.margin : dip.tile_margin;
  e.block = dip.block_size;
  return e;
}

std::optional<int64_t> ParseMemAvailable(const std::string& proc_meminfo) {
  std::istringstream in(proc_meminfo);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("MemAvailable:", 0) != 0) continue;
    std::istringstream fields(line.substr(13));
    long long value = -1;
    std::string unit;
    if (!(fields >> value) || value < 0) return std::nullopt;
    fields >> unit;
    if (unit.empty()) return static_cast<int64_t>(value);
    if (unit == "kB") return static_cast<int64_t>(value) * 1024;
    return std::nullopt;
  }
  return std::nullopt;
}

namespace {

// Not io's ReadFileBytes: /proc and cgroup files report a size of 0 and may be absent, which is
// an answer here, not an error.
std::optional<std::string> ReadText(const std::string& path) {
  std::ifstream f(path);
  if (!f) return std::nullopt;
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

// A limit or usage file: a byte count; "max" and v1's "no limit" (≥ 2^62) are none.
std::optional<int64_t> ReadBytes(const std::string& path) {
  const auto text = ReadText(path);
  if (!text) return std::nullopt;
  std::istringstream in(*text);
  long long v = -1;
  if (!(in >> v) || v < 0 || v >= (1LL << 62)) return std::nullopt;
  return static_cast<int64_t>(v);
}

// The least headroom from `group` (a path under `dir`) up to `dir` itself.
std::optional<int64_t> Headroom(const std::string& dir, std::string group, const char* limit_file,
                                const char* usage_file) {
  std::optional<int64_t> least;
  while (true) {
    const std::string d = dir + (group == "/" ? "" : group);
    const auto limit = ReadBytes(d + "/" + limit_file);
    const auto usage = ReadBytes(d + "/" + usage_file);
    if (limit && usage) {
      const int64_t left = std::max<int64_t>(0, *limit - *usage);
      least = least ? std::min(*least, left) : left;
    }
    if (group.empty() || group == "/") break;
    const auto slash = group.find_last_of('/');
    group = slash == 0 || slash == std::string::npos ? "/" : group.substr(0, slash);
  }
  return least;
}

}  // namespace

std::optional<int64_t> CgroupHeadroom(const std::string& proc_self_cgroup,
                                      const std::string& sys_root) {
  std::optional<int64_t> least;
  auto take = [&](std::optional<int64_t> v) {
    if (v) least = least ? std::min(*least, *v) : *v;
  };
  std::istringstream in(proc_self_cgroup);
  std::string line;
  while (std::getline(in, line)) {
    // "hierarchy-ID:controllers:path"; v2 is "0::path".
    const auto a = line.find(':');
    const auto b = a == std::string::npos ? a : line.find(':', a + 1);
    if (b == std::string::npos) continue;
    const std::string controllers = line.substr(a + 1, b - a - 1), path = line.substr(b + 1);
    if (path.empty() || path[0] != '/') continue;
    if (line.compare(0, a, "0") == 0 && controllers.empty()) {
      take(Headroom(sys_root, path, "memory.max", "memory.current"));
      take(Headroom(sys_root + "/unified", path, "memory.max", "memory.current"));
    } else {
      std::istringstream names(controllers);
      std::string name;
      while (std::getline(names, name, ',')) {
        if (name == "memory")
          take(Headroom(sys_root + "/memory", path, "memory.limit_in_bytes",
                        "memory.usage_in_bytes"));
      }
    }
  }
  return least;
}

std::optional<int64_t> AvailableMemory(const std::string& root_in) {
  // DIPPAS_TEST_MEMORY_ROOT: end-to-end tests give whole commands a fake /proc and /sys.
  const char* test_root = root_in.empty() ? std::getenv("DIPPAS_TEST_MEMORY_ROOT") : nullptr;
  const std::string root = test_root ? test_root : root_in;
  std::optional<int64_t> available;
  if (const auto meminfo = ReadText(root + "/proc/meminfo"))
    available = ParseMemAvailable(*meminfo);
  if (const auto groups = ReadText(root + "/proc/self/cgroup")) {
    if (const auto left = CgroupHeadroom(*groups, root + "/sys/fs/cgroup"))
      available = available ? std::min(*available, *left) : *left;
  }
  return available;
}

std::string BytesText(int64_t bytes) {
  char s[32];
  if (bytes >= 1'000'000'000)
    std::snprintf(s, sizeof(s), "%.1f GB", static_cast<double>(bytes) / 1e9);
  else
    std::snprintf(s, sizeof(s), "%.0f MB", static_cast<double>(bytes) / 1e6);
  return s;
}

std::optional<std::string> MemoryWarning(const MemoryEstimate& need, int64_t available) {
  if (need.bytes <= available) return std::nullopt;
  const std::string box = std::to_string(need.tile_h) + "x" + std::to_string(need.tile_w);
  std::string what = need.tiles_at_once > 1
                         ? std::to_string(need.tiles_at_once) + " tiles of " + box + " at once"
                         : "a network on " + box + " pixels";
  std::string m = "warning: this run needs about " + BytesText(need.bytes) + " of memory (" + what +
                  ") and " + BytesText(available) + " are available: it may swap or be killed. ";
  if (need.tiles_at_once > 1 && need.base + need.per_tile <= available) {
    m += "Run one tile at a time (--concurrent-tiles 1)";
    return m;
  }
  // The largest tile side (a multiple of B) whose context box (side + 2 margins) fits.
  const double room = static_cast<double>(available - need.base);
  int64_t side = 0;
  if (room > 0 && need.bytes_per_pixel > 0 && need.block > 0) {
    const double fit = std::sqrt(room / static_cast<double>(need.bytes_per_pixel)) -
                       2.0 * static_cast<double>(need.margin);
    side = static_cast<int64_t>(fit / static_cast<double>(need.block)) * need.block;
  }
  if (side >= need.block) {
    m += "Cut the photo into smaller tiles (--tile-size " + std::to_string(side) +
         (need.tiles_at_once > 1 ? " --concurrent-tiles 1)" : ")");
  } else {
    m += "Free memory, or give the run more (a larger machine, a higher limit for the job)";
  }
  return m;
}

std::optional<std::string> BatchMemoryWarning(const MemoryEstimate& per_item, int jobs,
                                              int64_t available) {
  if (jobs < 1 || per_item.bytes <= 0 || per_item.bytes * jobs <= available) return std::nullopt;
  std::string m = "warning: " + std::to_string(jobs) + " images at once need about " +
                  BytesText(per_item.bytes * jobs) + " of memory (up to " +
                  BytesText(per_item.bytes) + " each, the largest image) and " +
                  BytesText(available) + " are available: they may swap or be killed. ";
  const int64_t fit = available / per_item.bytes;
  if (fit >= 1) return m + "Run fewer at once (--jobs " + std::to_string(fit) + ")";
  // MemoryWarning's advice, in the batch's words (config keys: batch has no tile options).
  const auto one = MemoryWarning(per_item, available);
  std::string advice = one ? one->substr(one->find(". ") + 2) : "";
  for (const auto& [from, to] :
       {std::pair<std::string, std::string>{"--tile-size ", "--set tile_size="},
        {"--concurrent-tiles 1", "--set concurrent_tiles=1"}}) {
    const auto at = advice.find(from);
    if (at != std::string::npos) advice.replace(at, from.size(), to);
  }
  if (!advice.empty())
    advice[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(advice[0])));
  return m + "One image alone does not fit: --jobs 1" + (advice.empty() ? "" : ", and " + advice);
}

}  // namespace dippas
