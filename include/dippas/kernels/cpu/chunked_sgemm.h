// Single-precision matrix products for the CPU whose long dimension is cut into fixed chunks,
// each chunk one single-threaded OpenBLAS call on dippas's own threads.
//
// Why: the first MultiRes block's taps product (61 × 512 times 512 × H·W, dip/network.h) scales
// badly over threads in one OpenBLAS call: at 512² on two cores, median of 7, 255 ms forward and
// 295 ms for the weights' gradient, against ~160 and ~165 ms in chunks on two threads. OpenBLAS's
// own thread count is ignored by LibTorch's --threads, too. The chunks are fixed, not one per
// thread, so the result does not depend on the thread count. OpenBLAS is found at run time among
// the libraries already loaded (LibTorch's BLAS on Debian); without it HaveChunkedSgemm() is
// false and callers use their usual product.
#pragma once

#include <cstdint>

namespace dippas {

// Columns per chunk of the long dimension: small enough that a 128² plane still gives two
// threads work, large enough for BLAS's blocking (8192 and 32768 time alike at 512²).
inline constexpr int64_t kGemmChunk = 8192;

// True when OpenBLAS is loaded in this process, so the two functions below can run.
bool HaveChunkedSgemm();

// C (m×n) = A (m×k) · B (k×n); row-major, contiguous. The columns of B and C in chunks of
// kGemmChunk, over `threads` threads.
void ChunkedSgemmNN(int64_t m, int64_t n, int64_t k, const float* a, const float* b, float* c,
                    int threads);

// C (m×k) = A (m×n) · Bᵀ, B (k×n); row-major, contiguous. The shared dimension n in chunks of
// kGemmChunk; the chunks' partial products are summed in chunk order.
void ChunkedSgemmNT(int64_t m, int64_t n, int64_t k, const float* a, const float* b, float* c,
                    int threads);

// C (k×n) = Aᵀ · B, A (m×k), B (m×n); row-major, contiguous. The columns of B and C in chunks of
// kGemmChunk.
void ChunkedSgemmTN(int64_t m, int64_t n, int64_t k, const float* a, const float* b, float* c,
                    int threads);

// OpenBLAS's thread count (one setting for the process): sets it, returns the one before; −1 and
// nothing set when the process has not loaded OpenBLAS. While it is 1, chunked products run
// without taking the lock that serialises them (runs at once on several threads set it to 1).
int SetBlasThreads(int threads);

}  // namespace dippas
