// libFuzzer target for the .npy parser (ParseNpy): any byte string either parses into a
// consistent (H,W) float32 array or is refused with IoError; nothing else may happen (no crash,
// no other exception, no sanitizer report, no huge allocation). What parses survives a
// round trip through SerializeNpy bit for bit. Built and run by scripts/fuzz.sh.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "dippas/io/npy.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  dippas::Array2D a;
  try {
    a = dippas::ParseNpy(bytes, "fuzz.npy");
  } catch (const dippas::IoError&) {
    return 0;  // refused with a message: the expected outcome for most inputs
  }
  if (a.rows < 0 || a.cols < 0 || a.data.size() != static_cast<size_t>(a.rows) * static_cast<size_t>(a.cols)) {
    __builtin_trap();  // a parsed array must be consistent
  }
  const dippas::Array2D b = dippas::ParseNpy(dippas::SerializeNpy(a), "round-trip.npy");
  if (b.rows != a.rows || b.cols != a.cols || b.data.size() != a.data.size() ||
      (!a.data.empty() && std::memcmp(a.data.data(), b.data.data(), a.data.size() * sizeof(float)) != 0)) {
    __builtin_trap();  // what we read, we write back unchanged
  }
  return 0;
}
