#include "dippas/io/paths.h"

#include <algorithm>
#include <cctype>
#include <filesystem>

namespace dippas {

namespace fs = std::filesystem;

std::string NormalisedPath(const std::string& path) {
  std::error_code ec;
  fs::path p = fs::weakly_canonical(fs::absolute(path, ec), ec);
  if (ec) p = fs::absolute(path).lexically_normal();
  return p.string();
}

void CheckOutputsNotInputs(const std::vector<NamedPath>& outputs, const std::vector<NamedPath>& inputs) {
  auto describe = [](const NamedPath& p) { return p.role + " " + p.path; };
  for (size_t i = 0; i < outputs.size(); ++i) {
    const NamedPath& out = outputs[i];
    if (out.path.empty()) continue;
    std::error_code ec;
    // An existing output file may be the very file an input names (links, "..", hard links).
    if (fs::exists(out.path, ec)) {
      for (const auto& in : inputs) {
        if (in.path.empty()) continue;
        std::error_code ec2;
        if (fs::exists(in.path, ec2) && fs::equivalent(out.path, in.path, ec2)) {
          throw OutputClashError(describe(out) + ": is the same file as the input " + describe(in) +
                                 "; refusing to overwrite an input");
        }
      }
    }
    const std::string norm = NormalisedPath(out.path);
    for (size_t j = 0; j < i; ++j) {
      if (outputs[j].path.empty()) continue;
      if (NormalisedPath(outputs[j].path) == norm) {
        throw OutputClashError(describe(out) + ": names the same file as " + describe(outputs[j]) +
                               "; give each output its own path");
      }
    }
  }
}

bool IsImageFile(const fs::path& path) {
  std::string ext = path.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  return ext == ".png" || ext == ".jpg" || ext == ".jpeg" || ext == ".tif" || ext == ".tiff" ||
         ext == ".bmp";
}

}  // namespace dippas
