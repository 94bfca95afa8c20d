// libFuzzer target for the pool reader (PoolReader: pool.json + pool.npy as `dippas anonymize
// --save-pool` writes them and `dippas assemble --pool` reads them). The input is split at the
// first NUL byte (or its end) into pool.json and pool.npy, written to a scratch folder; the
// reader must accept a consistent pool and read every frame, or refuse it with IoError naming
// one of the files. Built and run by scripts/fuzz.sh.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>

#include "dippas/io/npy.h"
#include "dippas/io/pool.h"

namespace {

const std::string& Dir() {
  static const std::string dir = [] {
    char tmpl[] = "/tmp/fuzz_pool_XXXXXX";
    if (!mkdtemp(tmpl)) std::abort();
    return std::string(tmpl);
  }();
  return dir;
}

void Put(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  const size_t cut = bytes.find('\0');
  const std::string json = bytes.substr(0, cut);
  const std::string npy = cut == std::string::npos ? "" : bytes.substr(cut + 1);
  Put(Dir() + "/pool.json", json);
  Put(Dir() + "/pool.npy", npy);
  try {
    dippas::PoolReader reader(Dir());
    if (reader.count() < 0 || reader.height() < 1 || reader.width() < 1) __builtin_trap();
    // The size was checked against the file: every frame is there (a few are read).
    const size_t frame = static_cast<size_t>(reader.height() * reader.width() * 3);
    if (frame * static_cast<size_t>(reader.count()) > npy.size()) __builtin_trap();
    for (int64_t i = 0; i < reader.count() && i < 4; ++i) {
      if (reader.Read(i).size() != frame) __builtin_trap();
    }
  } catch (const dippas::IoError& e) {
    const std::string what = e.what();
    if (what.find(Dir()) != 0) __builtin_trap();  // the message names the file
  }
  return 0;
}
