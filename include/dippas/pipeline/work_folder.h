// The work folder of a tiled anonymization, `<output>.tiles/`: every finished tile (pixels,
// record, history) is saved as it completes, so that an interrupted run resumes where it
// stopped. Mode 0700 (the tiles are near-copies of the photo). A rerun with other inputs or
// settings (their hash is kept in settings.json) starts over. Plain C++ with OpenCV I/O.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "dippas/pipeline/tiles.h"

namespace dippas {

// A tile as saved: 8-bit RGB pixels of its core box (HWC), its record and history rows.
struct SavedTile {
  std::vector<uint8_t> rgb;  // core.h × core.w × 3
  nlohmann::json record;     // as given to Save (box, iterations, stop_reason, …)
  std::string history;       // CSV rows (no header), may be empty
};

class TileWorkFolder {
 public:
  // What to do with a folder that holds the work of another run.
  enum class OtherRun {
    kDiscard,      // discard whatever it holds (<output>.tiles, a name dippas chose)
    kRefuse,       // IoError (--checkpoint DIR: never resume or lose it silently)
    kDiscardOurs,  // discard a dippas work folder, refuse anything else (--checkpoint with
                   // --restart)
  };
  // Opens `dir`, creating it with mode 0700. When it holds tiles made with another
  // `settings_hash` (or no readable settings.json), `other` decides; discarded, restarted() is
  // then true. A folder that is not empty and holds no settings.json of dippas is never
  // emptied unless `other` is kDiscard.
  TileWorkFolder(std::string dir, std::string settings_hash, const nlohmann::json& settings,
                 OtherRun other = OtherRun::kDiscard);
  // The loop checkpoint file of tile `index` (see DipRunOptions::checkpoint).
  std::string CheckpointPath(int64_t index) const;
  // Where tile `index`'s network at its end is kept for the next tile (DipOptions::warm_start).
  std::string NetworkPath(int64_t index) const;

  const std::string& dir() const { return dir_; }
  bool restarted() const { return restarted_; }

  // Tile `index` if it was saved whole for this very box; nullopt otherwise.
  std::optional<SavedTile> Load(int64_t index, const Box& core) const;

  // Saves the pixels, then the record (whose presence marks the tile done), atomically.
  void Save(int64_t index, const Box& core, const std::vector<uint8_t>& rgb, const nlohmann::json& record,
            const std::string& history);

  // Deletes the folder and everything in it (after a successful run).
  void Remove();

 private:
  std::string Path(int64_t index, const char* suffix) const;
  std::string dir_;
  bool restarted_ = false;
};

// FNV-1a 64-bit hash of `text` followed by the contents of `files` (names and sizes too), as
// 16 hex digits: what identifies a run's inputs and settings. IoError naming an unreadable file.
std::string HashInputs(const std::string& text, const std::vector<std::string>& files);

}  // namespace dippas
