#include "dippas/pipeline/history.h"

#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "dippas/pipeline/usage_error.h"

namespace dippas {

std::string HistoryRow(const IterationRecord& r) {
  std::ostringstream csv;
  csv << r.iteration << "," << r.loss << "," << r.psnr << "," << r.gamma << ","
      << (r.admitted ? 1 : 0) << ",";
  if (r.ncc && std::isfinite(*r.ncc)) csv << *r.ncc;
  csv << "\n";
  return csv.str();
}

std::string HistoryHeader(bool tiled) {
  return tiled ? "tile,iteration,loss,psnr,gamma,admitted,ncc\n"
               : "iteration,loss,psnr,gamma,admitted,ncc\n";
}

void LiveHistory::CheckPart(const std::string& history) {
  const std::string part = PartPath(history);
  std::error_code ec;
  if (!std::filesystem::exists(part, ec)) return;
  std::ifstream in(part);
  std::string first;
  std::getline(in, first);
  first += "\n";
  if (first != HistoryHeader(false) && first != HistoryHeader(true)) {
    throw UsageError(part +
                     ": exists and is not a dippas history (the rows of a run in progress go "
                     "there): move it away or choose another --history");
  }
}

LiveHistory::LiveHistory(const std::string& history, bool tiled)
    : path_(PartPath(history)), header_(HistoryHeader(tiled)) {}

bool LiveHistory::Rewrite(const std::map<int64_t, std::string>& rows) {
  if (failed_) return true;
  Close();
  file_ = std::fopen(path_.c_str(), "w");
  bool good = file_ != nullptr && std::fputs(header_.c_str(), file_) >= 0;
  for (const auto& [index, text] : rows) good = good && std::fputs(text.c_str(), file_) >= 0;
  Check(good && std::fflush(file_) == 0);
  return !failed_;
}

bool LiveHistory::Append(const std::string& rows) {
  if (failed_ || file_ == nullptr) return true;
  Check(std::fputs(rows.c_str(), file_) >= 0 && std::fflush(file_) == 0);
  return !failed_;
}

void LiveHistory::Remove() {
  Close();
  std::remove(path_.c_str());
}

void LiveHistory::Check(bool good) {
  if (good) return;
  failed_ = true;
  error_ = path_ + ": cannot write the live history (" + std::strerror(errno) +
           "); it stops here, the history is still written at the end";
  Close();
}

void LiveHistory::Close() {
  if (file_ != nullptr) std::fclose(file_);
  file_ = nullptr;
}

}  // namespace dippas
