#include "dippas/pipeline/work_folder.h"

#include <sys/stat.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "dippas/io/atomic_file.h"
#include "dippas/io/image.h"
#include "dippas/io/npy.h"
#include "dippas/util/fnv.h"

namespace dippas {

namespace fs = std::filesystem;

std::string HashInputs(const std::string& text, const std::vector<std::string>& files) {
  uint64_t h = Fnv1a(text);
  for (const auto& f : files) {
    if (f.empty()) continue;
    std::ifstream in(f, std::ios::binary);
    if (!in) throw IoError(f + ": cannot read");
    std::vector<char> buf(1 << 20);
    uint64_t size = 0;
    while (in.read(buf.data(), static_cast<std::streamsize>(buf.size())) || in.gcount() > 0) {
      h = Fnv1a(h, buf.data(), static_cast<size_t>(in.gcount()));
      size += static_cast<uint64_t>(in.gcount());
    }
    const std::string tail = f + ":" + std::to_string(size);
    h = Fnv1a(h, tail.data(), tail.size());
  }
  return FnvHex(h);
}

TileWorkFolder::TileWorkFolder(std::string dir, std::string settings_hash,
                               const nlohmann::json& settings, OtherRun other)
    : dir_(std::move(dir)) {
  std::error_code ec;
  if (fs::exists(dir_, ec) && !fs::is_directory(dir_, ec)) {
    throw IoError(dir_ + ": exists and is not a folder (the work folder of the tiles)");
  }
  const fs::path settings_path = fs::path(dir_) / "settings.json";
  if (fs::is_directory(dir_, ec)) {
    std::string old_hash;
    bool ours = false;
    try {
      old_hash = nlohmann::json::parse(ReadFileBytes(settings_path.string())).value("hash", "");
      ours = !old_hash.empty();
    } catch (const std::exception&) {
      old_hash.clear();  // unreadable: treated as other settings
    }
    const bool empty = fs::is_empty(dir_, ec);
    if (old_hash != settings_hash && !empty) {
      if (!ours && other != OtherRun::kDiscard) {
        throw IoError(dir_ +
                      ": not empty and not a dippas checkpoint folder (no readable settings.json); "
                      "give a new or empty folder");
      }
      if (other == OtherRun::kRefuse) {
        throw IoError(
            dir_ +
            ": checkpoint of another run (other inputs or settings); rerun with --restart "
            "to discard it, or give another folder");
      }
      restarted_ = true;
      for (const auto& e : fs::directory_iterator(dir_, ec)) fs::remove_all(e.path(), ec);
    }
  } else {
    fs::create_directories(dir_, ec);
    if (ec) throw IoError(dir_ + ": cannot create the work folder: " + ec.message());
  }
  chmod(dir_.c_str(), 0700);
  nlohmann::json s = settings;
  s["hash"] = settings_hash;
  WriteFileAtomic(settings_path.string(), s.dump(2) + "\n");
}

std::string TileWorkFolder::CheckpointPath(int64_t index) const { return Path(index, ".ckpt"); }

std::string TileWorkFolder::NetworkPath(int64_t index) const { return Path(index, ".net"); }

std::string TileWorkFolder::Path(int64_t index, const char* suffix) const {
  char name[64];
  std::snprintf(name, sizeof(name), "tile-%05lld%s", static_cast<long long>(index), suffix);
  return (fs::path(dir_) / name).string();
}

std::optional<SavedTile> TileWorkFolder::Load(int64_t index, const Box& core) const {
  std::error_code ec;
  if (!fs::exists(Path(index, ".json"), ec)) return std::nullopt;
  try {
    SavedTile t;
    t.record = nlohmann::json::parse(ReadFileBytes(Path(index, ".json")));
    const auto box = t.record.at("box");
    if (box != nlohmann::json{core.y, core.x, core.h, core.w}) return std::nullopt;
    const Image im = ReadImage(Path(index, ".png"));
    if (im.height != core.h || im.width != core.w || im.channels != 3) return std::nullopt;
    t.rgb.resize(im.data.size());
    for (size_t i = 0; i < im.data.size(); ++i) t.rgb[i] = static_cast<uint8_t>(im.data[i]);
    if (fs::exists(Path(index, ".csv"), ec)) t.history = ReadFileBytes(Path(index, ".csv"));
    return t;
  } catch (const std::exception&) {
    return std::nullopt;  // damaged: the tile is run again
  }
}

void TileWorkFolder::Save(int64_t index, const Box& core, const std::vector<uint8_t>& rgb,
                          const nlohmann::json& record, const std::string& history) {
  Image im;
  im.height = core.h;
  im.width = core.w;
  im.channels = 3;
  im.data.assign(rgb.begin(), rgb.end());
  WriteFileAtomic(Path(index, ".png"), EncodeImage(Path(index, ".png"), im));
  WriteFileAtomic(Path(index, ".csv"), history);
  nlohmann::json r = record;
  r["box"] = {core.y, core.x, core.h, core.w};
  WriteFileAtomic(Path(index, ".json"), r.dump(2) + "\n");
}

void TileWorkFolder::Remove() {
  std::error_code ec;
  fs::remove_all(dir_, ec);
  if (ec) throw IoError(dir_ + ": cannot remove the work folder: " + ec.message());
}

}  // namespace dippas
