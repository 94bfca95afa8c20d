// libFuzzer target for the image loader (DecodeImage: format check, header size peek, JPEG end
// check, OpenCV's PNG/JPEG/TIFF/BMP decoders, channel conversion): any byte string either
// decodes into a consistent RGB or gray image on 0..255 or is refused with IoError; nothing else
// may happen. Inputs announcing more than 4 megapixels are left out, so that the fuzzer spends
// its time on parsing rather than on allocating (limits_tests checks the 256-megapixel limit).
// Built and run by scripts/fuzz.sh.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>

#include "dippas/io/image.h"
#include "dippas/io/npy.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  int64_t h = 0, w = 0;
  if (dippas::PeekImageSize(bytes, &h, &w) && h > 0 && w > (int64_t{4} << 20) / h) return 0;
  dippas::Image img;
  try {
    img = dippas::DecodeImage(bytes, "fuzz.img");
  } catch (const dippas::IoError&) {
    return 0;  // refused with a message
  }
  if (img.height < 1 || img.width < 1 || (img.channels != 1 && img.channels != 3) ||
      img.data.size() != static_cast<size_t>(img.height * img.width * img.channels)) {
    __builtin_trap();  // a decoded image must be consistent
  }
  for (const float v : img.data) {
    if (!(v >= 0.0f && v <= 255.0f)) __builtin_trap();  // on the 0..255 scale
  }
  return 0;
}
