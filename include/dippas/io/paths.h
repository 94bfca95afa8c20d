// Output paths checked against the inputs before any work starts: no output may
// replace an input (image, fingerprint, config), whatever spelling names it
// (relative, "dir/../x", a symbolic or hard link), and no two outputs may be one file.
// Also which files of a folder are images.
#pragma once

#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

namespace dippas {

// A path with the option or role that named it, for the error message ("--metrics").
struct NamedPath {
  std::string role;
  std::string path;
};

// An output that would overwrite an input or another output.
class OutputClashError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Throws OutputClashError naming both paths when an output is the same file as an input
// (an existing file: same device and inode) or names the same place as another output
// (after making both absolute and normalising "." and ".."). Empty paths are ignored.
void CheckOutputsNotInputs(const std::vector<NamedPath>& outputs, const std::vector<NamedPath>& inputs);

// The absolute, normalised form of `path` (symbolic links of existing parts resolved),
// used to compare outputs with each other.
std::string NormalisedPath(const std::string& path);

// Whether `path` names an image file by its extension: .png, .jpg, .jpeg, .tif, .tiff or .bmp,
// in any case. What folders of images (batch trees, evaluate trees, file lists) take.
bool IsImageFile(const std::filesystem::path& path);

}  // namespace dippas
