// The inputs of a run, loaded with the checks every command needs: an image as a (C,H,W)
// tensor, a fingerprint or reference pattern as an (H,W) tensor, errors naming the file.
#pragma once

#include <torch/types.h>

#include <stdexcept>
#include <string>

#include "dippas/io/image.h"
#include "dippas/pipeline/usage_error.h"

namespace dippas {

// A decoded image as a (C,H,W) float tensor on 0..255, plus what was read.
struct LoadedImage {
  std::string path;
  Image image;        // after the optional crop
  torch::Tensor chw;  // (C,H,W) float32, 0..255, shares nothing with `image`
};

// Reads an image and applies a centre crop (0 = none).
LoadedImage LoadImage(const std::string& path, int64_t crop);

// Reads a fingerprint / reference pattern (H,W). With crop > 0 it is centre
// cropped like the image. Refuses NaN/Inf values and an all-zero pattern;
// when expected_h > 0, a size other than expected_h×expected_w (naming both
// files) is an error.
torch::Tensor LoadPattern(const std::string& path, int64_t crop, int64_t expected_h = 0,
                          int64_t expected_w = 0, const std::string& image_path = "");

}  // namespace dippas
