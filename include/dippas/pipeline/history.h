// --history: the per-iteration CSV of a run ([tile,] iteration, loss, PSNR, γ, admitted, NCC),
// and its live copy H.part, written row by row while the loop runs.
#pragma once

#include <cstdint>
#include <cstdio>
#include <map>
#include <string>

#include "dippas/dip/loop.h"

namespace dippas {

// One iteration's row (with its newline; the tile column is the caller's).
std::string HistoryRow(const IterationRecord& r);
// The header line, with the tile column for a tiled run.
std::string HistoryHeader(bool tiled);

// --history's rows as they come, in H.part: a run still going, or killed outright (SIGKILL, out of
// memory), can be read. H itself is written whole with the other outputs, then H.part removed.
class LiveHistory {
 public:
  static std::string PartPath(const std::string& history) { return history + ".part"; }

  // A file at H.part that is not a history of ours is the user's: refused (UsageError), never
  // overwritten.
  static void CheckPart(const std::string& history);

  LiveHistory(const std::string& history, bool tiled);
  ~LiveHistory() { Close(); }
  LiveHistory(const LiveHistory&) = delete;
  LiveHistory& operator=(const LiveHistory&) = delete;

  // The header and every row so far: at the start, and when a checkpoint's rows replace a tile's
  // (a restart's checkpoint holds the earlier attempts' rows too, so appending would repeat them).
  // False when this write failed, as Append.
  bool Rewrite(const std::map<int64_t, std::string>& rows);

  // Rows after the last ones written (each iteration's; a reused tile's, tiles coming in order).
  // False when this write failed: the caller says so once (error()); later calls do nothing.
  bool Append(const std::string& rows);

  // Once H is written; or when no row came at all.
  void Remove();

  // Why the live rows stopped ("" = they did not): the run goes on, H is still written at the end.
  const std::string& error() const { return error_; }

 private:
  void Check(bool good);
  void Close();

  std::string path_, header_;
  std::FILE* file_ = nullptr;
  bool failed_ = false;
  std::string error_;
};

}  // namespace dippas
