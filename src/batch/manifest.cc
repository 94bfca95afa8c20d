// What a batch runs: the items of a ROOT/<device>/<images> tree or of a CSV manifest.
#include <algorithm>
#include <cctype>
#include <fstream>
#include <optional>
#include <stdexcept>

#include "dippas/batch/batch.h"
#include "dippas/io/csv.h"
#include "dippas/io/mat.h"
#include "dippas/io/paths.h"

namespace dippas {
namespace {

namespace fs = std::filesystem;

bool IsHidden(const fs::path& p) {
  return !p.filename().empty() && p.filename().string()[0] == '.';
}

bool SameFile(const fs::path& a, const fs::path& b) {
  std::error_code ec;
  return fs::equivalent(a, b, ec);
}

// The relative parent of `image` under `base`, or nullopt when it is not under it.
std::optional<fs::path> RelativeParent(const fs::path& image, const fs::path& base) {
  const fs::path rel = image.parent_path().lexically_relative(base);
  if (rel.empty() || *rel.begin() == "..") return std::nullopt;
  return rel == "." ? fs::path() : rel;
}

// The column numbers a header line names; false when `f` is not a header.
bool ReadHeader(std::vector<std::string> f, const std::string& path, int& col_image,
                int& col_device, int& col_fp) {
  for (auto& s : f)
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  if (f[0] != "image" && f[0] != "path") return false;
  col_image = col_device = col_fp = -1;
  for (size_t i = 0; i < f.size(); ++i) {
    const int c = static_cast<int>(i);
    if (f[i] == "image" || f[i] == "path") col_image = c;
    if (f[i] == "device" || f[i] == "camera") col_device = c;
    if (f[i] == "fingerprint" || f[i] == "prnu") col_fp = c;
  }
  if (col_device < 0) throw std::invalid_argument(path + ": header has no 'device' column");
  return true;
}

}  // namespace

std::vector<BatchItem> ScanBatchTree(const fs::path& root, const fs::path& out,
                                     const std::string& fps, const BatchWarning& warn) {
  std::vector<fs::path> devices;
  for (const auto& e : fs::directory_iterator(root)) {
    if (IsHidden(e.path())) continue;
    if (e.is_directory() && !SameFile(e.path(), out)) {
      devices.push_back(e.path());
    } else if (e.is_regular_file() && IsImageFile(e.path())) {
      warn(e.path().string() + " is not in a device folder (ROOT/<device>/...): ignored");
    }
  }
  std::sort(devices.begin(), devices.end());
  std::vector<BatchItem> items;
  for (const auto& dev_dir : devices) {
    std::vector<fs::path> files;
    for (auto it = fs::recursive_directory_iterator(dev_dir);
         it != fs::recursive_directory_iterator(); ++it) {
      // Hidden entries and the output folder (when it lies inside ROOT) are not inputs.
      if (IsHidden(it->path()) || (it->is_directory() && SameFile(it->path(), out))) {
        if (it->is_directory()) it.disable_recursion_pending();
        continue;
      }
      if (it->is_regular_file() && IsImageFile(it->path())) files.push_back(it->path());
    }
    std::sort(files.begin(), files.end());
    const std::string device = dev_dir.filename().string();
    for (const auto& f : files) {
      BatchItem item;
      item.image = fs::absolute(f).lexically_normal().string();
      item.label = f.lexically_relative(root).string();
      item.device = device;
      item.stem = f.stem().string();
      const fs::path rel = f.parent_path().lexically_relative(dev_dir);
      item.out_dir = (out / device / (rel == "." ? fs::path() : rel)).lexically_normal();
      if (!fps.empty()) item.fingerprint = DeviceFingerprintPath(fps, device);
      items.push_back(std::move(item));
    }
  }
  return items;
}

std::vector<BatchItem> ReadBatchManifest(const std::string& path, const std::string& root,
                                         const fs::path& out) {
  std::ifstream in(path);
  if (!in) throw std::invalid_argument(path + ": cannot open the manifest");
  return ParseBatchManifest(in, path, root, out);
}

std::vector<BatchItem> ParseBatchManifest(std::istream& in, const std::string& path,
                                          const std::string& root, const fs::path& out) {
  const fs::path manifest_dir = fs::absolute(path).parent_path();
  const fs::path base = root.empty() ? manifest_dir : fs::absolute(root);
  int col_image = 0, col_device = 1, col_fp = 2;
  std::vector<std::string> f;
  int64_t line = 0;
  std::vector<BatchItem> items;
  bool first = true;
  while (ReadCsvRecord(in, f, line)) {
    if (f.size() == 1 && f[0].empty()) continue;
    if (!f[0].empty() && f[0][0] == '#') continue;
    if (first) {
      first = false;
      if (ReadHeader(f, path, col_image, col_device, col_fp)) continue;  // columns by name
    }
    auto at = [&](int c) { return c >= 0 && static_cast<size_t>(c) < f.size() ? f[c] : ""; };
    const std::string where = path + ":" + std::to_string(line) + ": ";
    BatchItem item;
    const std::string image = at(col_image), device = at(col_device);
    if (image.empty() || device.empty())
      throw std::invalid_argument(where + "expected image,device[,fingerprint]");
    if (device == "." || device == ".." || device.find('/') != std::string::npos ||
        device[0] == '.') {
      throw std::invalid_argument(where + "device '" + device + "' is not a folder name");
    }
    const fs::path img = (base / image).lexically_normal();  // an absolute `image` stays as is
    item.image = img.string();
    item.label = image;
    item.device = device;
    item.stem = img.stem().string();
    // Below a folder named like the device (a Dresden tree), keep what follows it only.
    const fs::path parent = RelativeParent(img, base).value_or(fs::path());
    fs::path rel;
    for (const auto& part : parent) rel = part == device ? fs::path() : rel / part;
    item.out_dir = (out / device / rel).lexically_normal();
    const std::string fp = at(col_fp);
    if (!fp.empty()) item.fingerprint = (manifest_dir / fp).lexically_normal().string();
    items.push_back(std::move(item));
  }
  return items;
}

}  // namespace dippas
