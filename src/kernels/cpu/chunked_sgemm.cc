#include "dippas/kernels/cpu/chunked_sgemm.h"

#include <dlfcn.h>

#include <algorithm>
#include <mutex>
#include <stdexcept>
#include <vector>

#include "dippas/kernels/cpu/dispatch.h"
#include "dippas/util/parallel.h"

namespace dippas {
namespace {

// cblas_sgemm's enums (cblas.h): row-major 101, no transpose 111, transpose 112.
constexpr int kRowMajor = 101, kNoTrans = 111, kTrans = 112;
using SgemmFn = void (*)(int, int, int, int, int, int, float, const float*, int, const float*, int,
                         float, float*, int);
using SetThreadsFn = void (*)(int);
using GetThreadsFn = int (*)();

struct OpenBlas {
  SgemmFn sgemm = nullptr;
  SetThreadsFn set_threads = nullptr;
  GetThreadsFn get_threads = nullptr;
};

const OpenBlas& Find() {
  static const OpenBlas blas = [] {
    OpenBlas b;
    // RTLD_NOLOAD: only a library the process has already loaded (LibTorch's), never a new one.
    void* h = dlopen("libopenblas.so.0", RTLD_NOW | RTLD_NOLOAD);
    if (h == nullptr) return b;
    b.sgemm = reinterpret_cast<SgemmFn>(dlsym(h, "cblas_sgemm"));
    b.set_threads = reinterpret_cast<SetThreadsFn>(dlsym(h, "openblas_set_num_threads"));
    b.get_threads = reinterpret_cast<GetThreadsFn>(dlsym(h, "openblas_get_num_threads"));
    if (!b.sgemm || !b.set_threads || !b.get_threads) b = OpenBlas{};
    return b;
  }();
  return blas;
}

// OpenBLAS's thread count is one global setting: one chunked product at a time sets it to 1
// (each chunk then runs on the calling thread) and puts it back.
std::mutex blas_mutex;

template <typename ChunkFn>
void RunChunks(int64_t chunks, int threads, const ChunkFn& fn) {
  const OpenBlas& b = Find();
  if (!b.sgemm) throw std::logic_error("ChunkedSgemm: OpenBLAS is not loaded");
  CountKernel(KernelId::kChunkedSgemm);
  auto run = [&] {
    ParallelFor(0, chunks, 1, std::max(threads, 1), [&](int64_t begin, int64_t end) {
      for (int64_t c = begin; c < end; ++c) fn(c);
    });
  };
  if (b.get_threads() == 1) return run();  // already one thread per call (runs at once)
  std::lock_guard<std::mutex> lock(blas_mutex);
  const int before = b.get_threads();
  b.set_threads(1);
  try {
    run();
  } catch (...) {
    b.set_threads(before);
    throw;
  }
  b.set_threads(before);
}

// Sizes ≥ 0, and an array behind every matrix that has elements (a_elems, … its sizes' product).
void Require(int64_t m, int64_t n, int64_t k, int64_t a_elems, int64_t b_elems, int64_t c_elems,
             const float* a, const float* b, const float* c) {
  if (m < 0 || n < 0 || k < 0) throw std::invalid_argument("ChunkedSgemm: negative size");
  if ((a_elems > 0 && a == nullptr) || (b_elems > 0 && b == nullptr) ||
      (c_elems > 0 && c == nullptr)) {
    throw std::invalid_argument("ChunkedSgemm: null array");
  }
}

int Int(int64_t v) {
  if (v < 0 || v > (int64_t{1} << 31) - 1)
    throw std::invalid_argument("ChunkedSgemm: size too large");
  return static_cast<int>(v);
}

// C (rows×n) = op(A) · B, B (inner×n), A (rows×inner) or, transposed, (inner×rows): the columns
// of B and C in chunks of kGemmChunk.
void ColumnChunks(int trans_a, int64_t rows, int64_t n, int64_t inner, const float* a,
                  const float* b, float* c, int threads) {
  const SgemmFn sgemm = Find().sgemm;
  const int64_t chunks = (n + kGemmChunk - 1) / kGemmChunk;
  const int lda = Int(trans_a == kNoTrans ? inner : rows);
  RunChunks(chunks, threads, [&](int64_t i) {
    const int64_t j0 = i * kGemmChunk, w = std::min(kGemmChunk, n - j0);
    sgemm(kRowMajor, trans_a, kNoTrans, Int(rows), Int(w), Int(inner), 1.0f, a, lda, b + j0, Int(n),
          0.0f, c + j0, Int(n));
  });
}

}  // namespace

int SetBlasThreads(int threads) {
  const OpenBlas& b = Find();
  if (!b.sgemm) return -1;
  std::lock_guard<std::mutex> lock(blas_mutex);
  const int before = b.get_threads();
  b.set_threads(std::max(threads, 1));
  return before;
}

bool HaveChunkedSgemm() { return Find().sgemm != nullptr; }

void ChunkedSgemmNN(int64_t m, int64_t n, int64_t k, const float* a, const float* b, float* c,
                    int threads) {
  Require(m, n, k, m * k, k * n, m * n, a, b, c);  // A m×k, B k×n, C m×n
  ColumnChunks(kNoTrans, m, n, k, a, b, c, threads);
}

void ChunkedSgemmTN(int64_t m, int64_t n, int64_t k, const float* a, const float* b, float* c,
                    int threads) {
  Require(m, n, k, m * k, m * n, k * n, a, b, c);  // A m×k, B m×n, C k×n
  ColumnChunks(kTrans, k, n, m, a, b, c, threads);
}

void ChunkedSgemmNT(int64_t m, int64_t n, int64_t k, const float* a, const float* b, float* c,
                    int threads) {
  Require(m, n, k, m * n, k * n, m * k, a, b, c);  // A m×n, B k×n, C m×k
  const SgemmFn sgemm = Find().sgemm;
  if (n == 0) {  // no chunk to call (a BLAS may leave C untouched for an empty sum)
    std::fill(c, c + m * k, 0.0f);
    return;
  }
  const int64_t chunks = (n + kGemmChunk - 1) / kGemmChunk;
  // Chunk 0 writes C itself, the others their own buffers, summed below in chunk order.
  std::vector<float> parts(static_cast<size_t>((chunks - 1) * m * k));
  RunChunks(chunks, threads, [&](int64_t i) {
    const int64_t j0 = i * kGemmChunk, w = std::min(kGemmChunk, n - j0);
    float* out = i == 0 ? c : parts.data() + (i - 1) * m * k;
    sgemm(kRowMajor, kNoTrans, kTrans, Int(m), Int(k), Int(w), 1.0f, a + j0, Int(n), b + j0, Int(n),
          0.0f, out, Int(k));
  });
  for (int64_t i = 1; i < chunks; ++i) {
    const float* p = parts.data() + (i - 1) * m * k;
    for (int64_t e = 0; e < m * k; ++e) c[e] += p[e];
  }
}

}  // namespace dippas
