// Memory a CPU run will need, checked against what the machine has before hours of work
// start: a run the kernel kills for memory halfway loses what it did since its last
// checkpoint, and one that swaps crawls. Plain C++.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "dippas/dip/options.h"
#include "dippas/pipeline/tiles.h"

namespace dippas {

// A rough peak resident memory of a DIP run on the CPU, fitted on measured peak RSS (one
// thread; 128² to 640², input_depth 128 and 512, whole photos of 3008×2000): within ~25 %.
struct MemoryEstimate {
  int64_t bytes = 0;               // the whole run's peak
  int64_t per_tile = 0;            // one tile's DIP, its context box (z, network, Adam, candidates)
  int64_t tiles_at_once = 1;       // concurrent_tiles, or 1
  int64_t tile_h = 0, tile_w = 0;  // the largest context box
  // For the suggestion of a tile side that fits:
  int64_t base = 0;               // bytes besides the DIP runs (libraries, the photo's buffers)
  int64_t bytes_per_pixel = 0;    // DipBytesPerPixel
  int64_t margin = 0, block = 0;  // tile margin and B, pixels
};

// Per pixel of a DIP run: z and its perturbed copy (2 floats per channel of z, input_depth),
// and the network's activations and gradients, which scale with its widths per level
// (Σ filters[l] / 4^l: level l has 4^l times fewer pixels).
int64_t DipBytesPerPixel(const DipOptions& dip);

// The run on an image of h×w cut by `grid`: the libraries, the photo's own buffers (image,
// output, its residual for scoring) and concurrent_tiles DIP runs on the largest context box.
MemoryEstimate EstimateCpuMemory(const DipOptions& dip, const TileGrid& grid, int64_t h, int64_t w);

// MemAvailable of a /proc/meminfo text, in bytes; nullopt when absent or unreadable.
std::optional<int64_t> ParseMemAvailable(const std::string& proc_meminfo);

// Bytes left under the memory limits of the cgroups a process is in (a Slurm job's --mem, a
// container's limit), given the text of its /proc/self/cgroup; the limit files are read under
// `sys_root` (normally /sys/fs/cgroup), from the process's group up to the root: cgroup v2's
// memory.max − memory.current, v1's memory.limit_in_bytes − memory.usage_in_bytes. nullopt
// when no group sets a limit.
std::optional<int64_t> CgroupHeadroom(const std::string& proc_self_cgroup,
                                      const std::string& sys_root);

// What this process can still take: the least of /proc/meminfo's MemAvailable (which does not
// know a cgroup's limit) and CgroupHeadroom; nullopt where neither is known (not Linux).
// `root` prefixes /proc and /sys (tests).
std::optional<int64_t> AvailableMemory(const std::string& root = "");

// A warning when the estimate exceeds `available`, saying what to lower; nullopt when it fits.
std::optional<std::string> MemoryWarning(const MemoryEstimate& need, int64_t available);

// `dippas batch`'s warning: `jobs` children at once, each needing up to `per_item` (the estimate
// for its largest image), against `available`. Says how many jobs fit, or, where one image alone
// does not, what MemoryWarning advises. nullopt when they fit. (Each child checks only itself,
// against memory its siblings are about to take.)
std::optional<std::string> BatchMemoryWarning(const MemoryEstimate& per_item, int jobs,
                                              int64_t available);

// "3.2 GB" (decimal gigabytes, one decimal; MB below 1 GB).
std::string BytesText(int64_t bytes);

}  // namespace dippas
