// A checkpoint of the DIP loop on disk: named tensors in one file (LibTorch's archive format),
// written atomically, so that a crash while saving leaves the previous checkpoint intact.
#pragma once

#include <torch/types.h>

#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace dippas {

// A checkpoint that cannot be used: unreadable, corrupt, or saved for another run.
class CheckpointError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

using TensorMap = std::map<std::string, torch::Tensor>;

// Writes every tensor (copied to the CPU) to `path` atomically; IoError naming the file.
void SaveTensorMap(const std::string& path, const TensorMap& tensors);

// Reads the tensors named `required` and, when present, those named `optional`;
// CheckpointError naming the file when it is unreadable, corrupt or lacks a required name.
TensorMap LoadTensorMap(const std::string& path, const std::vector<std::string>& required,
                        const std::vector<std::string>& optional = {});

// Text as a uint8 tensor and back (the archive holds tensors only).
torch::Tensor StringTensor(const std::string& text);
std::string TensorString(const torch::Tensor& t);

}  // namespace dippas
