#include "io/inputs_plain.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "dippas/io/mat.h"

namespace dippas::detail {

Image LoadImageChecked(const std::string& path, int64_t crop) {
  Image im = ReadImage(path);
  if (crop > 0) im = CenterCrop(im, crop, path);
  // The residual subtracts the row and column means of each 2×2 phase of the image: with
  // fewer than 3 pixels on a side nothing is left of it, and the Wiener step would divide 0 by 0.
  if (im.height < 3 || im.width < 3) {
    throw std::invalid_argument(path + ": image is " + SizeText(im.height, im.width) +
                                ", too small for a noise residual (at least 3x3 pixels)");
  }
  return im;
}

Array2D LoadFingerprintArray(const std::string& path, int64_t crop, int64_t expected_h,
                             int64_t expected_w, const std::string& image_path) {
  Array2D a = ReadFingerprintArray(path);
  if (!std::all_of(a.data.begin(), a.data.end(), [](float v) { return std::isfinite(v); })) {
    throw std::invalid_argument(path + ": fingerprint contains NaN or Inf values");
  }
  if (crop > 0) {
    if (a.rows < crop || a.cols < crop) {
      throw std::invalid_argument(path + ": fingerprint is " + SizeText(a.rows, a.cols) +
                                  ", smaller than the crop " + std::to_string(crop));
    }
    Array2D c;
    c.rows = c.cols = crop;
    c.data.resize(static_cast<size_t>(crop * crop));
    const int64_t r0 = (a.rows - crop) / 2, c0 = (a.cols - crop) / 2;
    for (int64_t r = 0; r < crop; ++r) {
      const float* src = a.data.data() + (r0 + r) * a.cols + c0;
      std::copy(src, src + crop, c.data.begin() + r * crop);
    }
    a = std::move(c);
  }
  if (expected_h > 0 && (a.rows != expected_h || a.cols != expected_w)) {
    throw std::invalid_argument(
        path + ": fingerprint is " + SizeText(a.rows, a.cols) + " but image " + image_path +
        " is " + SizeText(expected_h, expected_w) + " (use --crop N to compare centre crops)");
  }
  if (std::all_of(a.data.begin(), a.data.end(), [](float v) { return v == 0.0f; }))
    throw std::invalid_argument(path + ": fingerprint is all zeros");
  return a;
}

nlohmann::json NumberOrNull(double v) {
  return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr);
}

std::string SizeText(int64_t h, int64_t w) { return std::to_string(h) + "x" + std::to_string(w); }

}  // namespace dippas::detail
