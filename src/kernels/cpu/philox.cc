#include "dippas/kernels/cpu/philox.h"

#include <atomic>
#include <cstring>
#include <stdexcept>
#include <string>

#include "dippas/kernels/cpu/dispatch.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif

namespace dippas {
namespace {

#define DIPPAS_INLINE inline __attribute__((always_inline))

DIPPAS_INLINE uint32_t FloatBits(float x) {
  uint32_t b;
  std::memcpy(&b, &x, sizeof b);
  return b;
}
DIPPAS_INLINE float BitsFloat(uint32_t b) {
  float x;
  std::memcpy(&x, &b, sizeof x);
  return x;
}

// One Philox4x32 round and key bump (Random123's constants).
constexpr uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u, kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;

DIPPAS_INLINE void Philox10(uint32_t& c0, uint32_t& c1, uint32_t& c2, uint32_t& c3, uint32_t k0,
                            uint32_t k1) {
#pragma GCC unroll 10
  for (int r = 0; r < 10; ++r) {
    const uint64_t p0 = static_cast<uint64_t>(kM0) * c0;
    const uint64_t p1 = static_cast<uint64_t>(kM1) * c2;
    const uint32_t n0 = static_cast<uint32_t>(p1 >> 32) ^ c1 ^ k0;
    const uint32_t n2 = static_cast<uint32_t>(p0 >> 32) ^ c3 ^ k1;
    c1 = static_cast<uint32_t>(p1);
    c3 = static_cast<uint32_t>(p0);
    c0 = n0;
    c2 = n2;
    k0 += kW0;
    k1 += kW1;
  }
}

// ln x for x in [2^-24, 1] (Cephes logf): x = m·2^e, m in [√½, √2), a degree-9 polynomial in m − 1.
DIPPAS_INLINE float Log(float x) {
  const uint32_t bits = FloatBits(x);
  int32_t e = static_cast<int32_t>(bits >> 23) - 126;
  float m = BitsFloat((bits & 0x007fffffu) | 0x3f000000u);  // [0.5, 1)
  const bool low = m < 0.707106781186547524f;
  e = low ? e - 1 : e;
  m = low ? (m + m) - 1.0f : m - 1.0f;
  const float z = m * m;
  float y = 7.0376836292E-2f;
  y = y * m - 1.1514610310E-1f;
  y = y * m + 1.1676998740E-1f;
  y = y * m - 1.2420140846E-1f;
  y = y * m + 1.4249322787E-1f;
  y = y * m - 1.6668057665E-1f;
  y = y * m + 2.0000714765E-1f;
  y = y * m - 2.4999993993E-1f;
  y = y * m + 3.3333331174E-1f;
  y = y * m * z;
  const float fe = static_cast<float>(e);
  y = y + -2.12194440E-4f * fe;
  y = y - 0.5f * z;
  return (m + y) + 0.693359375f * fe;
}

// (cos 2πu, sin 2πu) for u in [0, 1): 4u = q + f exactly, f in [−½, ½], then Cephes' sinf/cosf
// polynomials on θ = f·π/2 in [−π/4, π/4] and a quarter turn per unit of q.
DIPPAS_INLINE void SinCos2Pi(float u, float& c, float& s) {
  const float v = u * 4.0f;
  const int32_t q = static_cast<int32_t>(v + 0.5f);
  const float x = (v - static_cast<float>(q)) * 1.57079632679489661923f;
  const float z = x * x;
  const float sx = ((-1.9515295891E-4f * z + 8.3321608736E-3f) * z - 1.6666654611E-1f) * z * x + x;
  const float cx =
      ((2.443315711809948E-5f * z - 1.388731625493765E-3f) * z + 4.166664568298827E-2f) * z * z -
      0.5f * z + 1.0f;
  const bool swap = (q & 1) != 0;
  const float c0 = swap ? sx : cx;
  const float s0 = swap ? cx : sx;
  c = ((q + 1) & 2) ? -c0 : c0;  // quarters 1 and 2
  s = (q & 2) ? -s0 : s0;        // quarters 2 and 3
}

// Box–Muller on two 32-bit words: u1 = (⌊a/2⁸⌋ + 1)/2²⁴ in (0, 1], u2 = ⌊b/2⁸⌋/2²⁴ in [0, 1).
DIPPAS_INLINE void BoxMuller(uint32_t a, uint32_t b, float& n0, float& n1) {
  constexpr float kScale = 1.0f / 16777216.0f;
  const float u1 = static_cast<float>(static_cast<int32_t>((a >> 8) + 1)) * kScale;
  const float u2 = static_cast<float>(static_cast<int32_t>(b >> 8)) * kScale;
  float t = -2.0f * Log(u1);
  t = t > 0.0f ? t : 0.0f;  // ln 1 may come out a hair above 0
  const float r = __builtin_sqrtf(t);
  float c, s;
  SinCos2Pi(u2, c, s);
  n0 = r * c;
  n1 = r * s;
}

// The 32 normals of chunk `chunk`, in element order.
DIPPAS_INLINE void ChunkNormals(uint64_t key, int64_t chunk, float* n) {
  const uint32_t k0 = static_cast<uint32_t>(key), k1 = static_cast<uint32_t>(key >> 32);
  const uint64_t j0 = static_cast<uint64_t>(chunk) * 8;
  for (int l = 0; l < 8; ++l) {
    const uint64_t j = j0 + static_cast<uint64_t>(l);
    uint32_t c0 = static_cast<uint32_t>(j), c1 = static_cast<uint32_t>(j >> 32), c2 = 0, c3 = 0;
    Philox10(c0, c1, c2, c3, k0, k1);
    BoxMuller(c0, c1, n[l], n[8 + l]);
    BoxMuller(c2, c3, n[16 + l], n[24 + l]);
  }
}

DIPPAS_INLINE void Kernel(const float* z, float std, uint64_t key, float* out, int64_t begin,
                          int64_t end) {
  alignas(32) float n[kNoiseChunk];
  for (int64_t c = begin / kNoiseChunk; c * kNoiseChunk < end; ++c) {
    ChunkNormals(key, c, n);
    const int64_t i0 = c * kNoiseChunk;
    if (i0 + kNoiseChunk <= end) {
      for (int k = 0; k < kNoiseChunk; ++k) out[i0 + k] = z[i0 + k] + n[k] * std;
    } else {
      for (int64_t i = i0; i < end; ++i) out[i] = z[i] + n[i - i0] * std;
    }
  }
}

#if defined(__x86_64__) && defined(__GNUC__)
#define DIPPAS_NOISE_AVX2 1
#define DIPPAS_AVX2 __attribute__((target("avx2"), always_inline)) inline

// High and low 32 bits of a·m in each of 8 lanes (m broadcast). AVX2 has no 32×32→64 multiply
// across all lanes: the even and the odd lanes are multiplied apart and blended back. Written
// out because GCC's vectorization of the plain round spent most of its time in cross-lane
// shuffles: 4.0 ns per perturbed element on one core that way, 2.4 ns with this (Box–Muller
// and the add included; the same bits, input_noise_test compares them).
DIPPAS_AVX2 void MulHiLo(__m256i a, __m256i m, __m256i& hi, __m256i& lo) {
  const __m256i even = _mm256_mul_epu32(a, m);                        // lanes 0, 2, 4, 6
  const __m256i odd = _mm256_mul_epu32(_mm256_srli_epi64(a, 32), m);  // lanes 1, 3, 5, 7
  hi = _mm256_blend_epi32(_mm256_srli_epi64(even, 32), odd, 0xAA);
  lo = _mm256_blend_epi32(even, _mm256_slli_epi64(odd, 32), 0xAA);
}

// The 32 normals of chunk `chunk`: Philox for the eight counters at once, then Box–Muller lane
// by lane in the plain code (which GCC vectorizes; the same float operations, so the same bits).
DIPPAS_AVX2 void ChunkNormalsAvx2(const __m256i (&k0)[10], const __m256i (&k1)[10], int64_t chunk,
                                  float* n) {
  const uint64_t j0 = static_cast<uint64_t>(chunk) * 8;  // a multiple of 8: j0 + l never carries
  __m256i c0 = _mm256_add_epi32(_mm256_set1_epi32(static_cast<int>(static_cast<uint32_t>(j0))),
                                _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  __m256i c1 = _mm256_set1_epi32(static_cast<int>(static_cast<uint32_t>(j0 >> 32)));
  __m256i c2 = _mm256_setzero_si256(), c3 = _mm256_setzero_si256();
  const __m256i m0 = _mm256_set1_epi32(static_cast<int>(kM0));
  const __m256i m1 = _mm256_set1_epi32(static_cast<int>(kM1));
#pragma GCC unroll 10
  for (int r = 0; r < 10; ++r) {
    __m256i hi0, lo0, hi1, lo1;
    MulHiLo(c0, m0, hi0, lo0);
    MulHiLo(c2, m1, hi1, lo1);
    c0 = _mm256_xor_si256(_mm256_xor_si256(hi1, c1), k0[r]);
    c2 = _mm256_xor_si256(_mm256_xor_si256(hi0, c3), k1[r]);
    c1 = lo1;
    c3 = lo0;
  }
  alignas(32) uint32_t w[4][8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(w[0]), c0);
  _mm256_store_si256(reinterpret_cast<__m256i*>(w[1]), c1);
  _mm256_store_si256(reinterpret_cast<__m256i*>(w[2]), c2);
  _mm256_store_si256(reinterpret_cast<__m256i*>(w[3]), c3);
  for (int l = 0; l < 8; ++l) {
    BoxMuller(w[0][l], w[1][l], n[l], n[8 + l]);
    BoxMuller(w[2][l], w[3][l], n[16 + l], n[24 + l]);
  }
}

__attribute__((target("avx2"))) void KernelAvx2(const float* z, float std, uint64_t key, float* out,
                                                int64_t begin, int64_t end) {
  // Round r's key words, k + r·W, as in Philox10.
  __m256i k0[10], k1[10];
  uint32_t a = static_cast<uint32_t>(key), b = static_cast<uint32_t>(key >> 32);
  for (int r = 0; r < 10; ++r, a += kW0, b += kW1) {
    k0[r] = _mm256_set1_epi32(static_cast<int>(a));
    k1[r] = _mm256_set1_epi32(static_cast<int>(b));
  }
  alignas(32) float n[kNoiseChunk];
  for (int64_t c = begin / kNoiseChunk; c * kNoiseChunk < end; ++c) {
    ChunkNormalsAvx2(k0, k1, c, n);
    const int64_t i0 = c * kNoiseChunk;
    if (i0 + kNoiseChunk <= end) {
      for (int k = 0; k < kNoiseChunk; ++k) out[i0 + k] = z[i0 + k] + n[k] * std;
    } else {
      for (int64_t i = i0; i < end; ++i) out[i] = z[i] + n[i - i0] * std;
    }
  }
}

// GCC 12 takes the self-initialised _mm512_undefined_* inside its AVX-512 intrinsics for an
// uninitialised read (a false positive; the intrinsics' masks are all ones).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#define DIPPAS_AVX512 __attribute__((target("avx512f"), always_inline)) inline

// MulHiLo on 16 lanes.
DIPPAS_AVX512 void MulHiLo512(__m512i a, __m512i m, __m512i& hi, __m512i& lo) {
  const __m512i even = _mm512_mul_epu32(a, m);
  const __m512i odd = _mm512_mul_epu32(_mm512_srli_epi64(a, 32), m);
  hi = _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64(even, 32), odd);
  lo = _mm512_mask_blend_epi32(0xAAAA, even, _mm512_slli_epi64(odd, 32));
}

// a·b + c, rounded twice.
DIPPAS_AVX512 __m512 MulAdd512(__m512 a, __m512 b, float c) {
  return _mm512_add_ps(_mm512_mul_ps(a, b), _mm512_set1_ps(c));
}

// −x in the lanes of `mask` (the sign bit flipped, as the plain code's unary minus).
DIPPAS_AVX512 __m512 Negate512(__m512 x, __mmask16 mask) {
  const __m512i bits = _mm512_castps_si512(x);
  return _mm512_castsi512_ps(
      _mm512_mask_xor_epi32(bits, mask, bits, _mm512_set1_epi32(static_cast<int>(0x80000000u))));
}

// Log, SinCos2Pi and BoxMuller on 16 lanes: the same float operations in the same order (this
// unit is built without contraction, so no multiply-add is fused), hence the same bits.
DIPPAS_AVX512 __m512 Log512(__m512 x) {
  const __m512i bits = _mm512_castps_si512(x);
  __m512i e = _mm512_sub_epi32(_mm512_srli_epi32(bits, 23), _mm512_set1_epi32(126));
  __m512 m = _mm512_castsi512_ps(_mm512_or_si512(
      _mm512_and_si512(bits, _mm512_set1_epi32(0x007fffff)), _mm512_set1_epi32(0x3f000000)));
  const __mmask16 low = _mm512_cmp_ps_mask(m, _mm512_set1_ps(0.707106781186547524f), _CMP_LT_OQ);
  e = _mm512_mask_sub_epi32(e, low, e, _mm512_set1_epi32(1));
  const __m512 one = _mm512_set1_ps(1.0f);
  m = _mm512_mask_blend_ps(low, _mm512_sub_ps(m, one), _mm512_sub_ps(_mm512_add_ps(m, m), one));
  const __m512 z = _mm512_mul_ps(m, m);
  __m512 y = _mm512_set1_ps(7.0376836292E-2f);
  y = MulAdd512(y, m, -1.1514610310E-1f);
  y = MulAdd512(y, m, 1.1676998740E-1f);
  y = MulAdd512(y, m, -1.2420140846E-1f);
  y = MulAdd512(y, m, 1.4249322787E-1f);
  y = MulAdd512(y, m, -1.6668057665E-1f);
  y = MulAdd512(y, m, 2.0000714765E-1f);
  y = MulAdd512(y, m, -2.4999993993E-1f);
  y = MulAdd512(y, m, 3.3333331174E-1f);
  y = _mm512_mul_ps(_mm512_mul_ps(y, m), z);
  const __m512 fe = _mm512_cvtepi32_ps(e);
  y = _mm512_add_ps(y, _mm512_mul_ps(_mm512_set1_ps(-2.12194440E-4f), fe));
  y = _mm512_sub_ps(y, _mm512_mul_ps(_mm512_set1_ps(0.5f), z));
  return _mm512_add_ps(_mm512_add_ps(m, y), _mm512_mul_ps(_mm512_set1_ps(0.693359375f), fe));
}

DIPPAS_AVX512 void SinCos2Pi512(__m512 u, __m512& c, __m512& s) {
  const __m512 v = _mm512_mul_ps(u, _mm512_set1_ps(4.0f));
  const __m512i q = _mm512_cvttps_epi32(_mm512_add_ps(v, _mm512_set1_ps(0.5f)));
  const __m512 x = _mm512_mul_ps(_mm512_sub_ps(v, _mm512_cvtepi32_ps(q)),
                                 _mm512_set1_ps(1.57079632679489661923f));
  const __m512 z = _mm512_mul_ps(x, x);
  __m512 sx = MulAdd512(_mm512_set1_ps(-1.9515295891E-4f), z, 8.3321608736E-3f);
  sx = MulAdd512(sx, z, -1.6666654611E-1f);
  sx = _mm512_add_ps(_mm512_mul_ps(_mm512_mul_ps(sx, z), x), x);
  __m512 cx = MulAdd512(_mm512_set1_ps(2.443315711809948E-5f), z, -1.388731625493765E-3f);
  cx = MulAdd512(cx, z, 4.166664568298827E-2f);
  cx = _mm512_mul_ps(_mm512_mul_ps(cx, z), z);
  cx = _mm512_sub_ps(cx, _mm512_mul_ps(_mm512_set1_ps(0.5f), z));
  cx = _mm512_add_ps(cx, _mm512_set1_ps(1.0f));
  const __m512i one = _mm512_set1_epi32(1), two = _mm512_set1_epi32(2);
  const __mmask16 swap = _mm512_test_epi32_mask(q, one);
  const __m512 c0 = _mm512_mask_blend_ps(swap, cx, sx);
  const __m512 s0 = _mm512_mask_blend_ps(swap, sx, cx);
  c = Negate512(c0, _mm512_test_epi32_mask(_mm512_add_epi32(q, one), two));  // quarters 1 and 2
  s = Negate512(s0, _mm512_test_epi32_mask(q, two));                         // quarters 2 and 3
}

DIPPAS_AVX512 void BoxMuller512(__m512i a, __m512i b, __m512& n0, __m512& n1) {
  const __m512 scale = _mm512_set1_ps(1.0f / 16777216.0f);
  const __m512 u1 = _mm512_mul_ps(
      _mm512_cvtepi32_ps(_mm512_add_epi32(_mm512_srli_epi32(a, 8), _mm512_set1_epi32(1))), scale);
  const __m512 u2 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_srli_epi32(b, 8)), scale);
  __m512 t = _mm512_mul_ps(_mm512_set1_ps(-2.0f), Log512(u1));
  t = _mm512_max_ps(t, _mm512_setzero_ps());  // t > 0 ? t : +0, as in BoxMuller
  const __m512 r = _mm512_sqrt_ps(t);
  __m512 c, s;
  SinCos2Pi512(u2, c, s);
  n0 = _mm512_mul_ps(r, c);
  n1 = _mm512_mul_ps(r, s);
}

// Two chunks, c and c + 1, at once: lane l < 8 runs counter 8c + l, lane 8 + l counter
// 8(c + 1) + l, so the 16 lanes are the consecutive counters 8c .. 8c + 15.
__attribute__((target("avx512f"))) void KernelAvx512(const float* z, float std, uint64_t key,
                                                     float* out, int64_t begin, int64_t end) {
  __m512i k0[10], k1[10];
  uint32_t a = static_cast<uint32_t>(key), b = static_cast<uint32_t>(key >> 32);
  for (int r = 0; r < 10; ++r, a += kW0, b += kW1) {
    k0[r] = _mm512_set1_epi32(static_cast<int>(a));
    k1[r] = _mm512_set1_epi32(static_cast<int>(b));
  }
  const __m512i m0 = _mm512_set1_epi32(static_cast<int>(kM0));
  const __m512i m1 = _mm512_set1_epi32(static_cast<int>(kM1));
  const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512 sd = _mm512_set1_ps(std);
  int64_t c = begin / kNoiseChunk;
  for (; (c + 2) * kNoiseChunk <= end; c += 2) {
    const uint64_t j0 = static_cast<uint64_t>(c) * 8;
    const __m512i lo = _mm512_set1_epi32(static_cast<int>(static_cast<uint32_t>(j0)));
    __m512i c0 = _mm512_add_epi32(lo, lane);
    __m512i c1 = _mm512_set1_epi32(static_cast<int>(static_cast<uint32_t>(j0 >> 32)));
    c1 = _mm512_mask_add_epi32(c1, _mm512_cmplt_epu32_mask(c0, lo), c1, _mm512_set1_epi32(1));
    __m512i c2 = _mm512_setzero_si512(), c3 = _mm512_setzero_si512();
#pragma GCC unroll 10
    for (int r = 0; r < 10; ++r) {
      __m512i hi0, lo0, hi1, lo1;
      MulHiLo512(c0, m0, hi0, lo0);
      MulHiLo512(c2, m1, hi1, lo1);
      c0 = _mm512_xor_si512(_mm512_xor_si512(hi1, c1), k0[r]);
      c2 = _mm512_xor_si512(_mm512_xor_si512(hi0, c3), k1[r]);
      c1 = lo1;
      c3 = lo0;
    }
    __m512 cos01, sin01, cos23, sin23;
    BoxMuller512(c0, c1, cos01, sin01);
    BoxMuller512(c2, c3, cos23, sin23);
    // Chunk c: cos01, sin01, cos23, sin23 of lanes 0–7; chunk c + 1: of lanes 8–15.
    const __m512 n[4] = {
        _mm512_shuffle_f32x4(cos01, sin01, 0x44), _mm512_shuffle_f32x4(cos23, sin23, 0x44),
        _mm512_shuffle_f32x4(cos01, sin01, 0xEE), _mm512_shuffle_f32x4(cos23, sin23, 0xEE)};
    const int64_t i0 = c * kNoiseChunk;
    for (int k = 0; k < 4; ++k) {
      const __m512 zk = _mm512_loadu_ps(z + i0 + 16 * k);
      _mm512_storeu_ps(out + i0 + 16 * k, _mm512_add_ps(zk, _mm512_mul_ps(n[k], sd)));
    }
  }
  if (c * kNoiseChunk < end) KernelAvx2(z, std, key, out, c * kNoiseChunk, end);
}
#pragma GCC diagnostic pop
#endif

using PerturbFn = void (*)(const float*, float, uint64_t, float*, int64_t, int64_t);
struct Perturber {
  CpuLevel level;
  KernelId id;
  PerturbFn fn;
};
const Perturber kGenericPerturber{CpuLevel::kGeneric, KernelId::kPhiloxGeneric, Kernel};
#ifdef DIPPAS_NOISE_AVX2
const Perturber kAvx2Perturber{CpuLevel::kAvx2, KernelId::kPhiloxAvx2, KernelAvx2};
const Perturber kAvx512Perturber{CpuLevel::kAvx512, KernelId::kPhiloxAvx512, KernelAvx512};
#endif

const Perturber* OfLevel(CpuLevel level) {
#ifdef DIPPAS_NOISE_AVX2
  if (level == CpuLevel::kAvx512) return &kAvx512Perturber;
  if (level == CpuLevel::kAvx2) return &kAvx2Perturber;
#endif
  (void)level;
  return &kGenericPerturber;
}

// The dispatch level's kernel (DIPPAS_CPU_LEVEL caps it), unless SelectPhiloxKernel chose another.
std::atomic<const Perturber*>& CurrentPerturber() {
  static std::atomic<const Perturber*> current{OfLevel(CpuDispatchLevel())};
  return current;
}

// The kernels work in whole chunks from `begin` on and write [begin, end) of `out`.
void Require(const float* z, const float* out, int64_t begin, int64_t end, const char* what) {
  if (z == nullptr || out == nullptr) throw std::invalid_argument(std::string(what) + ": null array");
  if (begin < 0 || end < begin || begin % kNoiseChunk != 0) {
    throw std::invalid_argument(std::string(what) + ": range [" + std::to_string(begin) + ", " +
                                std::to_string(end) + ") must start at a multiple of " +
                                std::to_string(kNoiseChunk) + " and not end before it starts");
  }
}

}  // namespace

std::array<uint32_t, 4> Philox4x32(std::array<uint32_t, 4> counter, std::array<uint32_t, 2> key) {
  Philox10(counter[0], counter[1], counter[2], counter[3], key[0], key[1]);
  return counter;
}

float PhiloxNormal(uint64_t key, int64_t index) {
  float n[kNoiseChunk];
  ChunkNormals(key, index / kNoiseChunk, n);
  return n[index % kNoiseChunk];
}

void PhiloxPerturbGeneric(const float* z, float std, uint64_t key, float* out, int64_t begin,
                          int64_t end) {
  Require(z, out, begin, end, "PhiloxPerturbGeneric");
  Kernel(z, std, key, out, begin, end);
}

void PhiloxPerturb(const float* z, float std, uint64_t key, float* out, int64_t begin,
                   int64_t end) {
  Require(z, out, begin, end, "PhiloxPerturb");
  const Perturber* p = CurrentPerturber().load();
  CountKernel(p->id);
  p->fn(z, std, key, out, begin, end);
}

const char* PhiloxKernel() { return CpuLevelName(CurrentPerturber().load()->level); }

bool SelectPhiloxKernel(const std::string& name) {
  const auto level = ParseCpuLevel(name);
  if (!level || !CpuHas(*level) || OfLevel(*level)->level != *level) return false;
  CurrentPerturber().store(OfLevel(*level));
  return true;
}

}  // namespace dippas
