#include "dippas/util/parallel.h"

#include <dlfcn.h>

#include <algorithm>
#include <atomic>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace dippas {
namespace {

// libgomp's entry points, when the process has loaded it (LibTorch does): GOMP_parallel is the
// call GCC emits for `#pragma omp parallel`, a stable ABI since GCC 4.9.
struct Gomp {
  void (*parallel)(void (*)(void*), void*, unsigned, unsigned) = nullptr;
  int (*thread_num)() = nullptr;
  int (*num_threads)() = nullptr;
  void (*set_num_threads)(int) = nullptr;
};

// nullptr until libgomp is loaded: the plain commands never load it, and LibTorch's module may be
// loaded after a first ParallelFor, so only a find is kept.
const Gomp* FindGomp() {
  static std::mutex mutex;
  static Gomp gomp;
  static std::atomic<bool> found{false};
  if (found.load(std::memory_order_acquire)) return &gomp;
  std::lock_guard<std::mutex> lock(mutex);
  if (found.load(std::memory_order_relaxed)) return &gomp;
  // RTLD_NOLOAD: only a library the process has already loaded, never a new one.
  void* h = dlopen("libgomp.so.1", RTLD_NOW | RTLD_NOLOAD);
  if (h == nullptr) return nullptr;
  Gomp g;
  g.parallel = reinterpret_cast<decltype(g.parallel)>(dlsym(h, "GOMP_parallel"));
  g.thread_num = reinterpret_cast<decltype(g.thread_num)>(dlsym(h, "omp_get_thread_num"));
  g.num_threads = reinterpret_cast<decltype(g.num_threads)>(dlsym(h, "omp_get_num_threads"));
  g.set_num_threads =
      reinterpret_cast<decltype(g.set_num_threads)>(dlsym(h, "omp_set_num_threads"));
  if (!g.parallel || !g.thread_num || !g.num_threads || !g.set_num_threads) {
    dlclose(h);
    return nullptr;
  }
  gomp = g;
  found.store(true, std::memory_order_release);
  return &gomp;
}

struct Job {
  const std::function<void(int64_t)>* run;
  int64_t parts;
  const Gomp* gomp;
};

void GompBody(void* data) {
  const Job& job = *static_cast<const Job*>(data);
  // The team may be smaller than asked (nested regions): each member takes every T-th range.
  const int64_t t = job.gomp->thread_num(), team = job.gomp->num_threads();
  for (int64_t p = t; p < job.parts; p += team) (*job.run)(p);
}

}  // namespace

bool SetOpenMpThreadsOfThisThread(int threads) {
  const Gomp* g = FindGomp();
  if (g == nullptr) return false;
  g->set_num_threads(std::max(threads, 1));
  return true;
}

const char* ParallelBackend() { return FindGomp() != nullptr ? "openmp" : "threads"; }

void ParallelFor(int64_t begin, int64_t end, int64_t grain, int threads,
                 const std::function<void(int64_t, int64_t)>& fn) {
  const int64_t n = end - begin;
  if (n <= 0) return;
  const int64_t most = (n + std::max<int64_t>(grain, 1) - 1) / std::max<int64_t>(grain, 1);
  int64_t parts = std::clamp<int64_t>(std::min<int64_t>(threads, most), 1, n);
  if (parts == 1) return fn(begin, end);
  const int64_t size = (n + parts - 1) / parts;
  parts = (n + size - 1) / size;  // no empty range
  std::exception_ptr error;
  std::mutex error_mutex;
  const std::function<void(int64_t)> run = [&](int64_t p) {
    try {
      fn(begin + p * size, std::min(end, begin + (p + 1) * size));
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex);
      if (!error) error = std::current_exception();
    }
  };
  if (const Gomp* gomp = FindGomp()) {
    // LibTorch's own OpenMP threads: the operators that read what fn wrote then run on the
    // threads that wrote it (measured faster than fresh std::threads, see README's Speed).
    Job job{&run, parts, gomp};
    gomp->parallel(&GompBody, &job, static_cast<unsigned>(parts), 0);
  } else {
    std::vector<std::thread> workers;
    workers.reserve(static_cast<size_t>(parts - 1));
    for (int64_t p = 1; p < parts; ++p) workers.emplace_back(run, p);
    run(0);
    for (auto& t : workers) t.join();
  }
  if (error) std::rethrow_exception(error);
}

}  // namespace dippas
