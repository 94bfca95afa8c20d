// The memory estimate against peak RSS measured on runs of dippas (not against itself), the
// MemAvailable parser on /proc/meminfo text, and the warning's advice checked by arithmetic.
#include "dippas/pipeline/memory_check.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>

namespace dippas {
namespace {

// Peak RSS in bytes of measured runs, and the estimate for the same run.
struct Measured {
  const char* what;
  int64_t h, w, tile_size, concurrent, input_depth;
  double peak_bytes;
};

TEST(MemoryCheck, EstimateWithinAQuarterOfMeasuredPeaks) {
  // GNU time's maximum RSS of `dippas anonymize --threads 1` (6 iterations: the loop's buffers
  // are all there after the first two), and the tiled runs of bench_concurrent_tiles.sh on a
  // 1024² crop of a full-size photo (tiles of 512 + 64: context boxes up to 640²).
  const Measured runs[] = {
      {"128², input_depth 512", 128, 128, 512, 1, 512, 386952.0 * 1024},
      {"256², input_depth 512", 256, 256, 512, 1, 512, 791564.0 * 1024},
      {"384², input_depth 512", 384, 384, 512, 1, 512, 1409288.0 * 1024},
      {"256², input_depth 128", 256, 256, 512, 1, 128, 594716.0 * 1024},
      {"384², input_depth 128", 384, 384, 512, 1, 128, 963540.0 * 1024},
      {"1024², tiles one at a time", 1024, 1024, 512, 1, 512, 3653.0 * 1048576},
      {"1024², two tiles at once", 1024, 1024, 512, 2, 512, 5358.0 * 1048576},
  };
  for (const auto& r : runs) {
    DipOptions dip;
    dip.input_depth = r.input_depth;
    dip.tile_size = r.tile_size;
    dip.concurrent_tiles = r.concurrent;
    const TileGrid grid = MakeTileGrid(r.h, r.w, dip.tile_size, dip.block_size, dip.tile_margin);
    const MemoryEstimate e = EstimateCpuMemory(dip, grid, r.h, r.w);
    EXPECT_LT(std::abs(static_cast<double>(e.bytes) / r.peak_bytes - 1.0), 0.25)
        << r.what << ": estimate " << e.bytes << " B, measured " << r.peak_bytes << " B";
  }
}

TEST(MemoryCheck, TheLargestContextBoxAndTheTilesAtOnce) {
  DipOptions dip;  // tiles of 512 + 64
  dip.concurrent_tiles = 3;
  const TileGrid grid = MakeTileGrid(2000, 3008, dip.tile_size, dip.block_size, dip.tile_margin);
  const MemoryEstimate e = EstimateCpuMemory(dip, grid, 2000, 3008);
  EXPECT_EQ(e.tile_h, 640);  // an inner tile: 512 + 2 × 64
  EXPECT_EQ(e.tile_w, 640);
  EXPECT_EQ(e.tiles_at_once, 3);
  EXPECT_EQ(e.bytes, e.base + 3 * e.per_tile);
  // An untiled image is one run on all of it, whatever concurrent_tiles says.
  const TileGrid one = MakeTileGrid(300, 200, dip.tile_size, dip.block_size, dip.tile_margin);
  const MemoryEstimate u = EstimateCpuMemory(dip, one, 300, 200);
  EXPECT_EQ(u.tiles_at_once, 1);
  EXPECT_EQ(u.tile_h, 300);
  EXPECT_EQ(u.tile_w, 200);
  // z's channels cost 2 floats per pixel each.
  DipOptions thin = dip;
  thin.input_depth = 32;
  EXPECT_EQ(DipBytesPerPixel(dip) - DipBytesPerPixel(thin), 8 * (512 - 32));
}

TEST(MemoryCheck, ParsesMemAvailable) {
  const std::string meminfo =
      "MemTotal:       24587400 kB\n"
      "MemFree:         1234567 kB\n"
      "MemAvailable:   20123456 kB\n"
      "Buffers:          123456 kB\n";
  ASSERT_TRUE(ParseMemAvailable(meminfo).has_value());
  EXPECT_EQ(*ParseMemAvailable(meminfo), int64_t{20123456} * 1024);
  EXPECT_FALSE(ParseMemAvailable("MemTotal: 100 kB\nMemFree: 50 kB\n").has_value());  // old kernels
  EXPECT_FALSE(ParseMemAvailable("MemAvailable: lots kB\n").has_value());
  EXPECT_FALSE(ParseMemAvailable("MemAvailable: 100 MB\n").has_value());
  EXPECT_FALSE(ParseMemAvailable("").has_value());
  // This machine's, where there is one: positive.
  if (const auto a = AvailableMemory()) {
    EXPECT_GT(*a, 0);
  }
}

// A fake /proc and /sys under a temporary folder.
class FakeRoot {
 public:
  FakeRoot() {
    root_ = std::filesystem::temp_directory_path() /
            ("dippas-memory-" + std::to_string(::getpid()) + "-" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(root_);
  }
  ~FakeRoot() { std::filesystem::remove_all(root_); }
  void Write(const std::string& path, const std::string& text) const {
    const auto p = root_ / path.substr(1);
    std::filesystem::create_directories(p.parent_path());
    std::ofstream(p) << text;
  }
  std::string str() const { return root_.string(); }

 private:
  std::filesystem::path root_;
};

constexpr int64_t kGiB = int64_t{1} << 30;

TEST(MemoryCheck, CgroupV2LimitsFromTheGroupUpToTheRoot) {
  FakeRoot r;
  const std::string sys = r.str() + "/sys/fs/cgroup";
  // A Slurm job's limit sits on the job's group, the process runs in a step below it.
  r.Write("/sys/fs/cgroup/memory.current", "123\n");  // the root has no memory.max
  r.Write("/sys/fs/cgroup/job_7/memory.max", std::to_string(4 * kGiB) + "\n");
  r.Write("/sys/fs/cgroup/job_7/memory.current", std::to_string(1 * kGiB) + "\n");
  r.Write("/sys/fs/cgroup/job_7/step_0/memory.max", "max\n");
  r.Write("/sys/fs/cgroup/job_7/step_0/memory.current", std::to_string(kGiB / 2) + "\n");
  auto left = CgroupHeadroom("0::/job_7/step_0\n", sys);
  ASSERT_TRUE(left.has_value());
  EXPECT_EQ(*left, 3 * kGiB);
  // Usage past the limit: nothing left, not a negative count.
  r.Write("/sys/fs/cgroup/job_7/memory.current", std::to_string(5 * kGiB) + "\n");
  EXPECT_EQ(CgroupHeadroom("0::/job_7/step_0\n", sys).value_or(-1), 0);
  // No limit anywhere.
  EXPECT_FALSE(CgroupHeadroom("0::/other\n", sys).has_value());
  EXPECT_FALSE(CgroupHeadroom("", sys).has_value());
}

TEST(MemoryCheck, CgroupV1MemoryController) {
  FakeRoot r;
  const std::string sys = r.str() + "/sys/fs/cgroup";
  r.Write("/sys/fs/cgroup/memory/memory.limit_in_bytes", "9223372036854771712\n");  // no limit
  r.Write("/sys/fs/cgroup/memory/memory.usage_in_bytes", "4153352192\n");
  r.Write("/sys/fs/cgroup/memory/box/memory.limit_in_bytes", std::to_string(8 * kGiB) + "\n");
  r.Write("/sys/fs/cgroup/memory/box/memory.usage_in_bytes", std::to_string(2 * kGiB) + "\n");
  const std::string groups = "9:name=systemd:/\n5:cpu,cpuacct:/box\n4:memory:/box\n0::/\n";
  EXPECT_EQ(CgroupHeadroom(groups, sys).value_or(-1), 6 * kGiB);
  EXPECT_FALSE(CgroupHeadroom("4:memory:/\n", sys).has_value());
}

TEST(MemoryCheck, AvailableIsTheLeastOfTheMachineAndTheGroup) {
  FakeRoot r;
  r.Write("/proc/meminfo", "MemTotal: 25165824 kB\nMemAvailable: 20971520 kB\n");  // 20 GiB
  r.Write("/proc/self/cgroup", "0::/job\n");
  EXPECT_EQ(AvailableMemory(r.str()).value_or(-1), 20 * kGiB);  // the group has no files
  r.Write("/sys/fs/cgroup/job/memory.max", std::to_string(6 * kGiB));
  r.Write("/sys/fs/cgroup/job/memory.current", std::to_string(kGiB));
  EXPECT_EQ(AvailableMemory(r.str()).value_or(-1), 5 * kGiB);
  r.Write("/sys/fs/cgroup/job/memory.max", std::to_string(64 * kGiB));
  EXPECT_EQ(AvailableMemory(r.str()).value_or(-1), 20 * kGiB);
  EXPECT_FALSE(AvailableMemory(r.str() + "/nothing").has_value());
}

TEST(MemoryCheck, WarnsOnlyWhenTheRunDoesNotFitAndSaysWhatWould) {
  DipOptions dip;
  dip.concurrent_tiles = 2;
  const TileGrid grid = MakeTileGrid(2000, 3008, dip.tile_size, dip.block_size, dip.tile_margin);
  const MemoryEstimate e = EstimateCpuMemory(dip, grid, 2000, 3008);
  EXPECT_FALSE(MemoryWarning(e, e.bytes).has_value());
  // Two tiles do not fit, one does: one at a time.
  auto w = MemoryWarning(e, e.base + e.per_tile + 1);
  ASSERT_TRUE(w.has_value());
  EXPECT_NE(w->find("--concurrent-tiles 1"), std::string::npos) << *w;
  EXPECT_NE(w->find("2 tiles of 640x640 at once"), std::string::npos) << *w;
  // Not even one: a tile side whose context box fits, and whose next multiple of B does not.
  const int64_t available = e.base + e.per_tile / 2;
  w = MemoryWarning(e, available);
  ASSERT_TRUE(w.has_value());
  const auto at = w->find("--tile-size ");
  ASSERT_NE(at, std::string::npos) << *w;
  const int64_t side = std::stoll(w->substr(at + 12));
  EXPECT_EQ(side % dip.block_size, 0);
  auto cost = [&](int64_t s) {
    const int64_t box = s + 2 * dip.tile_margin;
    return e.base + box * box * DipBytesPerPixel(dip);
  };
  EXPECT_LE(cost(side), available) << side;
  EXPECT_GT(cost(side + dip.block_size), available) << side;
  // Nothing fits: no tile size to suggest.
  w = MemoryWarning(e, e.base / 2);
  ASSERT_TRUE(w.has_value());
  EXPECT_EQ(w->find("--tile-size"), std::string::npos) << *w;
}

TEST(MemoryCheck, ABatchCountsItsChildrenTogetherAndSaysHowManyFit) {
  DipOptions dip;
  const TileGrid grid = MakeTileGrid(512, 512, dip.tile_size, dip.block_size, dip.tile_margin);
  const MemoryEstimate e = EstimateCpuMemory(dip, grid, 512, 512);
  EXPECT_FALSE(BatchMemoryWarning(e, 3, 3 * e.bytes).has_value());
  // Three do not fit, two do: --jobs 2 (the floor of what is available over one child's need).
  auto w = BatchMemoryWarning(e, 3, 3 * e.bytes - 1);
  ASSERT_TRUE(w.has_value());
  EXPECT_NE(w->find("3 images at once"), std::string::npos) << *w;
  EXPECT_NE(w->find("(--jobs 2)"), std::string::npos) << *w;
  w = BatchMemoryWarning(e, 8, e.bytes);
  ASSERT_TRUE(w.has_value());
  EXPECT_NE(w->find("(--jobs 1)"), std::string::npos) << *w;
  // Not even one: --jobs 1 and a tile size, as a config key (batch has no --tile-size).
  w = BatchMemoryWarning(e, 2, e.base + e.per_tile / 2);
  ASSERT_TRUE(w.has_value());
  EXPECT_NE(w->find("--jobs 1, and cut the photo into smaller tiles (--set tile_size="),
            std::string::npos)
      << *w;
  EXPECT_EQ(w->find("--tile-size"), std::string::npos) << *w;
}

TEST(MemoryCheck, BytesText) {
  EXPECT_EQ(BytesText(3'240'000'000), "3.2 GB");
  EXPECT_EQ(BytesText(512'000'000), "512 MB");
}

}  // namespace
}  // namespace dippas
