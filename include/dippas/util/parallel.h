// A parallel loop that runs in parallel whatever the unit's compile flags.
#pragma once

#include <cstdint>
#include <functional>

namespace dippas {

// fn(b, e) over [begin, end) split into at most `threads` contiguous ranges of at least `grain`
// items each, one per thread (the calling thread takes the first range); returns when all are
// done and rethrows the first exception one of them threw. The threads are libgomp's OpenMP
// team when the process has loaded libgomp (LibTorch does), else std::threads. Why not
// at::parallel_for: LibTorch's is an inline OpenMP loop, and in a unit compiled without -fopenmp
// (all of dippas's) it runs the whole range on the calling thread.
void ParallelFor(int64_t begin, int64_t end, int64_t grain, int threads,
                 const std::function<void(int64_t, int64_t)>& fn);

// The calling thread's OpenMP team size (omp_set_num_threads: a setting of each thread), when
// the process has loaded libgomp; false when it has not.
bool SetOpenMpThreadsOfThisThread(int threads);

// "openmp" or "threads": which threads ParallelFor uses now (openmp from when libgomp is loaded).
const char* ParallelBackend();

}  // namespace dippas
