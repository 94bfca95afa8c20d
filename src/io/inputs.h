// Loading images and fingerprints as tensors with the checks every command needs (private to the
// library; io/inputs_plain.h holds the checks themselves, without LibTorch). The pipeline's
// LoadImage and LoadPattern (dippas/pipeline/inputs.h) are these, so every command says the same.
#pragma once

#include <torch/types.h>

#include <string>

#include "io/inputs_plain.h"

namespace dippas::detail {

// (C,H,W) float32 copy of an image on 0..255.
torch::Tensor ImageChw(const Image& image);

// Reads a fingerprint (H,W), centre-cropped with crop > 0; refuses NaN/Inf, all zeros and (when
// expected_h > 0) a size other than expected_h×expected_w, naming both files.
torch::Tensor LoadFingerprint(const std::string& path, int64_t crop, int64_t expected_h = 0,
                              int64_t expected_w = 0, const std::string& image_path = "");

}  // namespace dippas::detail
