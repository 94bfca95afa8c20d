// A one-line progress display on stderr for long work (fingerprints, the DIP
// loop). Redrawn in place on a terminal; on a pipe or file, printed sparsely.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace dippas {

class Progress {
 public:
  // `total` ≤ 0 means unknown. `enabled` = false silences it (--quiet).
  Progress(std::string label, int64_t total, bool enabled = true);
  ~Progress();

  // Sets the count done and an optional status text (e.g. "PSNR 37.2 dB").
  void Update(int64_t done, const std::string& status = "");
  // Shows `line` after the label as it is (the caller's own counts and ETA), at the same pace.
  void Show(const std::string& line);

  // Ends the line (called by the destructor if not called before).
  void Finish();

 private:
  std::string label_;
  int64_t total_;
  bool enabled_;
  bool tty_;
  bool finished_ = false;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_draw_;
};

}  // namespace dippas
