// Reading and writing NumPy .npy arrays (format versions 1-3), without any
// third-party dependency so that the GPU build can use it too.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace dippas {

// Any failure to read or write a file; the message names the file and the reason.
class IoError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A 2-D float32 array in row-major order, the form every fingerprint and residual takes.
struct Array2D {
  int64_t rows = 0;        // H
  int64_t cols = 0;        // W
  std::vector<float> data; // rows*cols values, C order
};

// Reads an .npy holding float32, float64 or uint8 values of shape (H,W) or (H,W,1)
// in C or Fortran order (prnu-python saves Fortran order); values are converted
// to float32, C order. Throws IoError otherwise.
Array2D ReadNpy(const std::string& path);

// Parses an .npy already in memory; `name` is used in error messages.
Array2D ParseNpy(const std::string& bytes, const std::string& name);

// Serialises a float32 (H,W) array as .npy version 1.0 bytes.
std::string SerializeNpy(const Array2D& array);

// Helpers of the .npy header, shared with the pool reader. Linear time, no std::regex, so a
// crafted header cannot exhaust the stack.
// The value of `key` in the header dict: a quoted string (quotes included), True, False or a
// tuple "(...)"; empty when the key or a value of those kinds is absent.
std::string NpyHeaderValue(const std::string& header, const std::string& key);
// The integers of a shape tuple such as "(512, 512, 1)", in order; false when one of them has
// more than 18 digits.
bool NpyShapeValues(const std::string& tuple, std::vector<int64_t>* values);

// Writes a float32 (H,W) .npy atomically: a temporary file beside `path`,
// renamed into place only when complete.
void WriteNpy(const std::string& path, const Array2D& array);

}  // namespace dippas
