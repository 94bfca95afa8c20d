#include "eval/inputs.h"

#include <cmath>
#include <stdexcept>

#include "dippas/io/mat.h"

namespace dippas::detail {

torch::Tensor ImageChw(const Image& im) {
  return torch::from_blob(const_cast<float*>(im.data.data()), {im.height, im.width, im.channels},
                          torch::kFloat32)
      .permute({2, 0, 1})
      .contiguous()
      .clone();
}

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

torch::Tensor LoadFingerprint(const std::string& path, int64_t crop, int64_t expected_h,
                              int64_t expected_w, const std::string& image_path) {
  Array2D a = ReadFingerprintArray(path);
  auto t = torch::from_blob(a.data.data(), {a.rows, a.cols}, torch::kFloat32).clone();
  if (!torch::isfinite(t).all().item<bool>()) {
    throw std::invalid_argument(path + ": fingerprint contains NaN or Inf values");
  }
  if (crop > 0) {
    if (a.rows < crop || a.cols < crop) {
      throw std::invalid_argument(path + ": fingerprint is " + SizeText(a.rows, a.cols) +
                                  ", smaller than the crop " + std::to_string(crop));
    }
    t = t.slice(0, (a.rows - crop) / 2, (a.rows - crop) / 2 + crop)
            .slice(1, (a.cols - crop) / 2, (a.cols - crop) / 2 + crop)
            .contiguous();
  }
  if (expected_h > 0 && (t.size(0) != expected_h || t.size(1) != expected_w)) {
    throw std::invalid_argument(
        path + ": fingerprint is " + SizeText(t.size(0), t.size(1)) + " but image " + image_path +
        " is " + SizeText(expected_h, expected_w) + " (use --crop N to compare centre crops)");
  }
  if (t.abs().max().item<float>() == 0.0f)
    throw std::invalid_argument(path + ": fingerprint is all zeros");
  return t;
}

nlohmann::json NumberOrNull(double v) {
  return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr);
}

std::string SizeText(int64_t h, int64_t w) { return std::to_string(h) + "x" + std::to_string(w); }

}  // namespace dippas::detail
