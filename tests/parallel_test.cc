// ParallelFor: every index once, at most `threads` threads, exceptions reach the caller; on
// std::threads, then on libgomp's team once the process has loaded libgomp.
#include "dippas/util/parallel.h"

#include <dlfcn.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

namespace dippas {
namespace {

void ExpectEveryIndexOnceOnAtMostTheThreadsAsked() {
  for (const int threads : {1, 2, 3, 8}) {
    for (const int64_t n : {int64_t{0}, int64_t{1}, int64_t{7}, int64_t{1000}}) {
      std::vector<std::atomic<int>> hits(static_cast<size_t>(n) + 5);
      std::mutex m;
      std::set<std::thread::id> ids;
      int ranges = 0;
      ParallelFor(5, 5 + n, 10, threads, [&](int64_t b, int64_t e) {
        EXPECT_LT(b, e);
        for (int64_t i = b; i < e; ++i) hits[static_cast<size_t>(i)]++;
        std::lock_guard<std::mutex> lock(m);
        ids.insert(std::this_thread::get_id());
        ++ranges;
      });
      for (int64_t i = 0; i < 5; ++i) EXPECT_EQ(hits[static_cast<size_t>(i)], 0);
      for (int64_t i = 5; i < 5 + n; ++i) EXPECT_EQ(hits[static_cast<size_t>(i)], 1) << i;
      // Ranges of at least the grain (10), one per thread.
      const int64_t most = std::min<int64_t>(threads, (n + 9) / 10);
      EXPECT_LE(ranges, std::max<int64_t>(most, n > 0 ? 1 : 0)) << threads << " " << n;
      EXPECT_EQ(static_cast<int64_t>(ids.size()), ranges);
      if (n == 1000 && threads > 1) {
        EXPECT_EQ(ranges, threads);  // really parallel
      }
    }
  }
}

void ExpectWorkersExceptionsRethrown() {
  EXPECT_THROW(ParallelFor(0, 100, 1, 4,
                           [](int64_t b, int64_t) {
                             if (b > 0) throw std::runtime_error("worker");
                           }),
               std::runtime_error);
  EXPECT_THROW(
      ParallelFor(0, 100, 1, 1, [](int64_t, int64_t) { throw std::logic_error("caller"); }),
      std::logic_error);
}

// Declared first, so it runs before anything loads libgomp.
TEST(ParallelFor, OnStdThreads) {
  if (dlopen("libgomp.so.1", RTLD_NOW | RTLD_NOLOAD) != nullptr)
    GTEST_SKIP() << "libgomp is already loaded in this process";
  EXPECT_STREQ(ParallelBackend(), "threads");
  ExpectEveryIndexOnceOnAtMostTheThreadsAsked();
  ExpectWorkersExceptionsRethrown();
}

TEST(ParallelFor, OnLibgompsTeamOnceLoaded) {
  // A user's OMP_THREAD_LIMIT or OMP_DYNAMIC would give smaller teams than asked (every index still
  // runs once, on fewer threads); libgomp reads them when it loads, which is next.
  const bool loaded = dlopen("libgomp.so.1", RTLD_NOW | RTLD_NOLOAD) != nullptr;
  if (!loaded) {
    unsetenv("OMP_THREAD_LIMIT");
    unsetenv("OMP_DYNAMIC");
  } else if (std::getenv("OMP_THREAD_LIMIT") != nullptr || std::getenv("OMP_DYNAMIC") != nullptr) {
    GTEST_SKIP() << "libgomp was loaded under OMP_THREAD_LIMIT or OMP_DYNAMIC: its teams may be smaller";
  }
  void* gomp = dlopen("libgomp.so.1", RTLD_NOW);
  if (gomp == nullptr) GTEST_SKIP() << "no libgomp.so.1 on this system";
  EXPECT_STREQ(ParallelBackend(), "openmp");
  ExpectEveryIndexOnceOnAtMostTheThreadsAsked();
  ExpectWorkersExceptionsRethrown();
  // The ranges run on the team: OpenMP thread numbers 0..parts−1, 0 being the caller.
  auto thread_num = reinterpret_cast<int (*)()>(dlsym(gomp, "omp_get_thread_num"));
  ASSERT_NE(thread_num, nullptr);
  std::mutex m;
  std::set<int> numbers;
  std::set<std::thread::id> ids;
  ParallelFor(0, 3000, 1, 3, [&](int64_t, int64_t) {
    std::lock_guard<std::mutex> lock(m);
    numbers.insert(thread_num());
    ids.insert(std::this_thread::get_id());
  });
  EXPECT_EQ(numbers, (std::set<int>{0, 1, 2}));
  EXPECT_EQ(ids.size(), 3u);
  EXPECT_EQ(ids.count(std::this_thread::get_id()), 1u);
}

}  // namespace
}  // namespace dippas
