#include "dippas/pipeline/inputs.h"


#include "dippas/io/npy.h"

namespace dippas {

LoadedImage LoadImage(const std::string& path, int64_t crop) {
  LoadedImage out;
  out.path = path;
  out.image = ReadImage(path);
  if (crop > 0) out.image = CenterCrop(out.image, crop, path);
  const auto& im = out.image;
  // The residual subtracts the row and column means of each 2×2 phase of the image: with
  // fewer than 3 pixels on a side nothing is left of it, and the Wiener step would divide 0 by 0.
  if (im.height < 3 || im.width < 3) {
    throw UsageError(path + ": image is " + std::to_string(im.height) + "x" + std::to_string(im.width) +
                     ", too small for a noise residual (at least 3x3 pixels)");
  }
  out.chw = torch::from_blob(const_cast<float*>(im.data.data()), {im.height, im.width, im.channels}, torch::kFloat32)
                .permute({2, 0, 1})
                .contiguous()
                .clone();
  return out;
}

torch::Tensor LoadPattern(const std::string& path, int64_t crop, int64_t expected_h, int64_t expected_w,
                          const std::string& image_path) {
  Array2D a = ReadNpy(path);
  auto t = torch::from_blob(a.data.data(), {a.rows, a.cols}, torch::kFloat32).clone();
  if (!torch::isfinite(t).all().item<bool>()) {
    throw UsageError(path + ": fingerprint contains NaN or Inf values");
  }
  if (crop > 0) {
    if (a.rows < crop || a.cols < crop) {
      throw UsageError(path + ": fingerprint is " + std::to_string(a.rows) + "x" + std::to_string(a.cols) +
                       ", smaller than the crop " + std::to_string(crop));
    }
    t = t.slice(0, (a.rows - crop) / 2, (a.rows - crop) / 2 + crop).slice(1, (a.cols - crop) / 2, (a.cols - crop) / 2 + crop)
            .contiguous();
  }
  if (expected_h > 0 && (t.size(0) != expected_h || t.size(1) != expected_w)) {
    throw UsageError(path + ": fingerprint is " + std::to_string(t.size(0)) + "x" + std::to_string(t.size(1)) +
                     " but image " + image_path + " is " + std::to_string(expected_h) + "x" + std::to_string(expected_w) +
                     " (use --crop N to compare centre crops)");
  }
  if (t.abs().max().item<float>() == 0.0f) throw UsageError(path + ": fingerprint is all zeros");
  return t;
}

}  // namespace dippas
