// Outputs are never half-written: write to a temporary name in the target
// folder, then rename into place.
#pragma once

#include <string>

namespace dippas {

// Writes `bytes` to `path` through a temporary file in the same folder and an
// atomic rename. On any error the temporary is removed, `path` is untouched,
// and IoError (from npy.h) is thrown naming the file.
void WriteFileAtomic(const std::string& path, const std::string& bytes);

// Reads a whole file; IoError naming the file if it is missing, a directory or unreadable.
std::string ReadFileBytes(const std::string& path);

}  // namespace dippas
