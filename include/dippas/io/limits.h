// Bounds on what the tool reads, so that a hostile or mistaken input fails with an error naming
// the file instead of blocking, exhausting memory or overflowing a size computation.
#pragma once

#include <cstdint>

namespace dippas {

// Files read whole (images, fingerprints, configs, manifests, pool.json): regular files only (a
// FIFO, device or socket is refused: it could block forever or never end) of at most 2 GiB − 1
// bytes, which also keeps every size handed to OpenCV within an int.
constexpr int64_t kMaxInputFileBytes = (int64_t{1} << 31) - 1;

// Pixels per image (H·W), checked from the file's header before decoding where the format is
// known (PNG, JPEG, TIFF, BMP) and after decoding otherwise; also the largest pool frame.
constexpr int64_t kMaxImagePixels = int64_t{256} << 20;  // 256 megapixels

}  // namespace dippas
