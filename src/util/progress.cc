#include "dippas/util/progress.h"

#include <unistd.h>

#include <cstdio>

namespace dippas {

Progress::Progress(std::string label, int64_t total, bool enabled)
    : label_(std::move(label)),
      total_(total),
      enabled_(enabled),
      tty_(isatty(STDERR_FILENO) != 0),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_ - std::chrono::hours(1)) {}

Progress::~Progress() { Finish(); }

void Progress::Update(int64_t done, const std::string& status) {
  if (!enabled_ || finished_) return;
  const auto now = std::chrono::steady_clock::now();
  const bool last = total_ > 0 && done >= total_;
  // A terminal is redrawn 10×/s; a log gets one line every 10 s.
  const auto every = tty_ ? std::chrono::milliseconds(100) : std::chrono::milliseconds(10000);
  if (!last && now - last_draw_ < every) return;
  last_draw_ = now;
  const double secs = std::chrono::duration<double>(now - start_).count();
  const double rate = secs > 0 ? static_cast<double>(done) / secs : 0.0;
  char line[512];
  if (total_ > 0) {
    const int width = 24;
    const int filled = static_cast<int>(width * static_cast<double>(done) / static_cast<double>(total_));
    std::string bar(static_cast<size_t>(filled), '#');
    bar.resize(width, '.');
    const double eta = rate > 0 ? static_cast<double>(total_ - done) / rate : 0.0;
    std::snprintf(line, sizeof(line), "%s [%s] %lld/%lld %.1f/s eta %.0fs %s", label_.c_str(), bar.c_str(),
                  static_cast<long long>(done), static_cast<long long>(total_), rate, eta, status.c_str());
  } else {
    std::snprintf(line, sizeof(line), "%s %lld %.1f/s %s", label_.c_str(), static_cast<long long>(done), rate,
                  status.c_str());
  }
  if (tty_) {
    std::fprintf(stderr, "\r\033[K%s", line);
  } else {
    std::fprintf(stderr, "%s\n", line);
  }
  std::fflush(stderr);
}

void Progress::Show(const std::string& line) {
  if (!enabled_ || finished_) return;
  const auto now = std::chrono::steady_clock::now();
  const auto every = tty_ ? std::chrono::milliseconds(100) : std::chrono::milliseconds(10000);
  if (now - last_draw_ < every) return;
  last_draw_ = now;
  if (tty_) {
    std::fprintf(stderr, "\r\033[K%s %s", label_.c_str(), line.c_str());
  } else {
    std::fprintf(stderr, "%s %s\n", label_.c_str(), line.c_str());
  }
  std::fflush(stderr);
}

void Progress::Finish() {
  if (!enabled_ || finished_) return;
  finished_ = true;
  if (tty_) std::fprintf(stderr, "\n");
}

}  // namespace dippas
