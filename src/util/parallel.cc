#include "dippas/util/parallel.h"

#include <algorithm>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace dippas {

void ParallelFor(int64_t begin, int64_t end, int64_t grain, int threads,
                 const std::function<void(int64_t, int64_t)>& fn) {
  const int64_t n = end - begin;
  if (n <= 0) return;
  const int64_t most = (n + std::max<int64_t>(grain, 1) - 1) / std::max<int64_t>(grain, 1);
  const int64_t parts = std::clamp<int64_t>(std::min<int64_t>(threads, most), 1, n);
  if (parts == 1) return fn(begin, end);
  const int64_t size = (n + parts - 1) / parts;
  std::exception_ptr error;
  std::mutex error_mutex;
  auto run = [&](int64_t b) {
    try {
      fn(b, std::min(end, b + size));
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex);
      if (!error) error = std::current_exception();
    }
  };
  std::vector<std::thread> workers;
  workers.reserve(static_cast<size_t>(parts - 1));
  for (int64_t p = 1; p < parts && begin + p * size < end; ++p)
    workers.emplace_back(run, begin + p * size);
  run(begin);
  for (auto& t : workers) t.join();
  if (error) std::rethrow_exception(error);
}

}  // namespace dippas
