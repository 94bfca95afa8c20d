// FNV-1a 64: the one content hash of the project (work folders, settings hashes, checkpoint
// checksums, batch shards). Not cryptographic: it tells runs apart, it does not authenticate.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

namespace dippas {

inline constexpr uint64_t kFnvOffset = 1469598103934665603ULL;

// Continues hash `h` over `n` bytes (start from kFnvOffset).
inline uint64_t Fnv1a(uint64_t h, const char* data, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    h ^= static_cast<unsigned char>(data[i]);
    h *= 1099511628211ULL;
  }
  return h;
}
inline uint64_t Fnv1a(std::string_view s) { return Fnv1a(kFnvOffset, s.data(), s.size()); }

// 16 lower-case hex digits.
inline std::string FnvHex(uint64_t h) {
  char hex[17];
  std::snprintf(hex, sizeof(hex), "%016llx", static_cast<unsigned long long>(h));
  return hex;
}

}  // namespace dippas
