// Loading images and fingerprints with the checks every command needs, without LibTorch (private
// to the library; io/inputs.h adds the tensor forms). `dippas detect` uses these directly.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "dippas/io/image.h"
#include "dippas/io/npy.h"

namespace dippas::detail {

// Reads an image, applies the centre crop (0 = none) and refuses one under 3×3 pixels (no noise
// residual): std::invalid_argument naming the file.
Image LoadImageChecked(const std::string& path, int64_t crop);

// Reads a fingerprint (H,W), centre-cropped with crop > 0; refuses NaN/Inf, all zeros and (when
// expected_h > 0) a size other than expected_h×expected_w, naming both files.
Array2D LoadFingerprintArray(const std::string& path, int64_t crop, int64_t expected_h = 0,
                             int64_t expected_w = 0, const std::string& image_path = "");

// JSON number, or null for NaN/Inf (JSON has no NaN).
nlohmann::json NumberOrNull(double v);

// "HxW".
std::string SizeText(int64_t h, int64_t w);

}  // namespace dippas::detail
