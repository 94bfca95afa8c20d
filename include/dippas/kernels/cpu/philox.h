// The DIP input's per-iteration perturbation on the CPU: z + std·n with n ~ N(0, 1) drawn by a
// counter-based generator, so that the draw of every element is a pure function of (key, index):
// any split over threads gives the same numbers, and it runs in parallel and vectorized.
//
// Generator: Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", 2011;
// the generator of cuRAND and of PyTorch on CUDA), 128-bit counter, 64-bit key. Normals: the
// Box–Muller transform of two 24-bit uniforms, u1 in (0, 1] and u2 in [0, 1), as torch's CPU
// normal_ does; log, cos and sin by fixed polynomials (Cephes' single-precision ones), all in
// float without fused multiply-adds, so the vector and the plain builds give the same bits.
//
// Layout: elements come in chunks of 32. Chunk c runs the counters j = 8c + l, l = 0..7; counter
// j gives words w0..w3; (w0, w1) gives element 32c + l (r·cos θ) and 32c + 8 + l (r·sin θ),
// (w2, w3) gives 32c + 16 + l and 32c + 24 + l. Eight lanes side by side: one AVX2 vector; two
// chunks side by side: one AVX-512 vector.
#pragma once

#include <array>
#include <cstdint>
#include <string>

namespace dippas {

// Elements per chunk; ranges handed to PhiloxPerturb start at a multiple of it.
inline constexpr int64_t kNoiseChunk = 32;

// Philox4x32-10 of counter {c0, c1, c2, c3} under key {k0, k1}.
std::array<uint32_t, 4> Philox4x32(std::array<uint32_t, 4> counter, std::array<uint32_t, 2> key);

// The normal draw of element `index` for `key` (the reference the vector kernel must equal).
float PhiloxNormal(uint64_t key, int64_t index);

// out[i] = z[i] + std·n_i for i in [begin, end), n_i = PhiloxNormal(key, i); two roundings as
// torch's z + std·randn_like(z): n·std, then + z. `begin` must be a multiple of kNoiseChunk
// (std::invalid_argument otherwise, or for a null array or end < begin); `out` may be `z`. Vectorized with AVX-512 or AVX2 where the CPU has them (same bits
// either way).
void PhiloxPerturb(const float* z, float std, uint64_t key, float* out, int64_t begin, int64_t end);

// Which kernel PhiloxPerturb runs: "avx512", "avx2" or "generic" (the best this CPU has, capped by
// DIPPAS_CPU_LEVEL (kernels/cpu/dispatch.h), unless SelectPhiloxKernel chose another).
const char* PhiloxKernel();

// Makes PhiloxPerturb run kernel `name` from now on, for tests and benchmarks; false (and no
// change) where the name is unknown or this CPU cannot run it.
bool SelectPhiloxKernel(const std::string& name);

// The generic kernel alone, for tests that compare it with the vector one bit for bit.
void PhiloxPerturbGeneric(const float* z, float std, uint64_t key, float* out, int64_t begin,
                          int64_t end);

}  // namespace dippas
