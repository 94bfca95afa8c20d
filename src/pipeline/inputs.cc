#include "dippas/pipeline/inputs.h"

#include "io/inputs.h"

namespace dippas {

// One implementation with the commands' library side (src/io/inputs.h).
LoadedImage LoadImage(const std::string& path, int64_t crop) {
  LoadedImage out;
  out.path = path;
  out.image = detail::LoadImageChecked(path, crop);
  out.chw = detail::ImageChw(out.image);
  return out;
}

torch::Tensor LoadPattern(const std::string& path, int64_t crop, int64_t expected_h, int64_t expected_w,
                          const std::string& image_path) {
  return detail::LoadFingerprint(path, crop, expected_h, expected_w, image_path);
}

}  // namespace dippas
