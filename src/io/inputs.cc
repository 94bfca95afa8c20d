#include "io/inputs.h"

namespace dippas::detail {

torch::Tensor ImageChw(const Image& im) {
  return torch::from_blob(const_cast<float*>(im.data.data()), {im.height, im.width, im.channels},
                          torch::kFloat32)
      .permute({2, 0, 1})
      .contiguous()
      .clone();
}

torch::Tensor LoadFingerprint(const std::string& path, int64_t crop, int64_t expected_h,
                              int64_t expected_w, const std::string& image_path) {
  Array2D a = LoadFingerprintArray(path, crop, expected_h, expected_w, image_path);
  return torch::from_blob(a.data.data(), {a.rows, a.cols}, torch::kFloat32).clone();
}

}  // namespace dippas::detail
