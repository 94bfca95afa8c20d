// libFuzzer target for the manifest CSV of `dippas evaluate --manifest` (ReadManifest: lines,
// RFC 4180 quoting, header columns, relative paths, one fingerprint per device). The input is
// the manifest, written to a scratch folder that holds a few files it may name (a.png, b.png,
// K.npy, L.npy, sub/c.png); the parser must return items whose files exist, or refuse the
// manifest with an error naming it. Built and run by scripts/fuzz.sh.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>

#include "dippas/eval/dataset.h"
#include "dippas/io/npy.h"

namespace {

namespace fs = std::filesystem;

const std::string& Dir() {
  static const std::string dir = [] {
    char tmpl[] = "/tmp/fuzz_manifest_XXXXXX";
    if (!mkdtemp(tmpl)) std::abort();
    const std::string d(tmpl);
    fs::create_directory(d + "/sub");
    for (const char* name : {"a.png", "b.png", "K.npy", "L.npy", "sub/c.png"}) {
      std::ofstream(d + "/" + name) << "x";
    }
    return d;
  }();
  return dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = Dir() + "/manifest.csv";
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  const bool allow_missing = size > 0 && (data[0] & 1);
  const std::string fingerprints = size > 0 && (data[size - 1] & 1) ? Dir() : "";
  try {
    const dippas::Dataset ds = dippas::ReadManifest(path, fingerprints, allow_missing);
    if (ds.items.empty()) __builtin_trap();  // "no images to score" is an error
    for (const auto& item : ds.items) {
      std::error_code ec;
      if (!fs::is_regular_file(item.original, ec) || item.device.empty()) __builtin_trap();
      if (!ds.fingerprints.count(item.device)) __builtin_trap();
    }
  } catch (const std::runtime_error& e) {                         // IoError is one
    if (std::string(e.what()).find(path) != 0) __builtin_trap();  // the message names the manifest
  }
  return 0;
}
