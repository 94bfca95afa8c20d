// An error in what the user asked for (bad option, size mismatch…): exit code 1. Kept apart
// from inputs.h so that code without LibTorch (dippas detect, the executable) can throw it.
#pragma once

#include <stdexcept>

namespace dippas {

class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace dippas
