// The batch's record of its items: complete metrics on disk, the summary CSV, --collect.
#include "batch/summary.h"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <utility>

#include "dippas/io/atomic_file.h"
#include "dippas/io/csv.h"

namespace dippas::detail {

namespace fs = std::filesystem;

namespace {

std::string CsvNumber(const nlohmann::json& m, const char* key) {
  const auto it = m.find(key);
  return it != m.end() && it->is_number() ? it->dump() : "";
}

}  // namespace

std::optional<nlohmann::json> ReadJsonFile(const fs::path& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  try {
    return nlohmann::json::parse(in);
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

std::optional<nlohmann::json> CompleteMetrics(const BatchItem& item, const fs::path& out) {
  auto m = ReadJsonFile(item.Json());
  if (!m || !m->is_object()) return std::nullopt;
  const auto reason = m->find("stop_reason");
  const auto output = m->find("output");
  if (reason == m->end() || !reason->is_string() || *reason == "interrupted") return std::nullopt;
  if (output == m->end() || !output->is_string()) return std::nullopt;
  fs::path png = output->get<std::string>();
  if (png.is_relative()) png = out / png;  // children run in OUT
  std::error_code ec;
  if (!fs::is_regular_file(png, ec)) return std::nullopt;
  return m;
}

double SumTimings(const nlohmann::json& m) {
  double total = 0;
  const auto it = m.find("timings_s");
  if (it == m.end() || !it->is_object()) return -1;
  for (const auto& [k, v] : it->items()) {
    if (v.is_number()) total += v.get<double>();
  }
  return total;
}

void WriteSummary(const fs::path& path, const std::vector<BatchItem>& items,
                  const std::vector<Outcome>& outcomes) {
  std::ostringstream csv;
  csv << "image,device,status,psnr,ncc_before,ncc_after,pce_before,pce_after,iterations,seconds,"
         "error\n";
  for (size_t i = 0; i < items.size(); ++i) {
    const Outcome& o = outcomes[i];
    if (o.status.empty()) continue;
    csv << CsvQuote(items[i].label) << "," << CsvQuote(items[i].device) << "," << o.status << ",";
    const nlohmann::json m = o.metrics ? *o.metrics : nlohmann::json::object();
    for (const char* key :
         {"psnr", "ncc_before", "ncc_after", "pce_before", "pce_after", "iterations"}) {
      csv << CsvNumber(m, key) << ",";
    }
    if (o.seconds >= 0) {
      char buf[32];
      std::snprintf(buf, sizeof(buf), "%.3f", o.seconds);
      csv << buf;
    }
    csv << "," << CsvQuote(o.error) << "\n";
  }
  WriteFileAtomic(path.string(), csv.str());
}

BatchResult Collect(const BatchOptions& opt, std::vector<BatchItem> items, const fs::path& out) {
  // The shards' rows, by image and device. Several summaries may name an item (shards rerun
  // with another N): a finished row wins over a failed one, a failed one over an interruption.
  struct Row {
    std::string status, error;
    double seconds = -1;
  };
  auto rank = [](const std::string& s) {
    return s == "done" || s == "skipped" ? 3 : s == "failed" ? 2 : s == "interrupted" ? 1 : 0;
  };
  std::map<std::pair<std::string, std::string>, Row> rows;
  std::vector<fs::path> summaries;
  for (const auto& e : fs::directory_iterator(out)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("summary.shard-", 0) == 0 && e.path().extension() == ".csv")
      summaries.push_back(e.path());
  }
  std::sort(summaries.begin(), summaries.end());
  for (const auto& path : summaries) {
    std::ifstream in(path);
    std::vector<std::string> f, header;
    int64_t line = 0;
    try {
      if (!ReadCsvRecord(in, header, line)) continue;
      auto col = [&](const char* name) {
        return static_cast<size_t>(std::find(header.begin(), header.end(), name) - header.begin());
      };
      const size_t c_image = col("image"), c_device = col("device"), c_status = col("status"),
                   c_seconds = col("seconds"), c_error = col("error");
      if (c_image >= header.size() || c_device >= header.size() || c_status >= header.size())
        throw std::invalid_argument("not a batch summary (no image,device,status columns)");
      while (ReadCsvRecord(in, f, line)) {
        auto at = [&](size_t c) { return c < f.size() ? f[c] : std::string(); };
        Row r{at(c_status), at(c_error), -1};
        try {
          if (!at(c_seconds).empty()) r.seconds = std::stod(at(c_seconds));
        } catch (const std::exception&) {
        }
        Row& old = rows[{at(c_image), at(c_device)}];
        if (rank(r.status) > rank(old.status)) old = r;
      }
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument(path.string() + ": " + e.what());
    }
  }
  std::vector<Outcome> outcomes(items.size());
  BatchResult r;
  for (size_t i = 0; i < items.size(); ++i) {
    const BatchItem& item = items[i];
    Outcome& o = outcomes[i];
    const auto it = rows.find({item.label, item.device});
    if (auto m = CompleteMetrics(item, out)) {  // the outputs on disk decide "done"
      o.status = "done";
      o.seconds = it != rows.end() && it->second.seconds >= 0 ? it->second.seconds : SumTimings(*m);
      o.metrics = std::move(m);
    } else if (!item.plan_error.empty()) {
      o.status = "failed";
      o.error = item.plan_error;
    } else if (it != rows.end() &&
               (it->second.status == "failed" || it->second.status == "interrupted")) {
      o.status = it->second.status;
      o.error = it->second.error;
      o.seconds = it->second.seconds;
      o.metrics = ReadJsonFile(item.Json());
      if (o.metrics && !o.metrics->is_object()) o.metrics.reset();
    } else {
      o.status = "missing";
      o.error = it == rows.end()
                    ? "no shard ran it"
                    : "reported " + it->second.status + " but its outputs are incomplete";
    }
    if (o.status == "failed") r.failures.push_back(item.label + ": " + o.error);
    if (o.status == "missing" || o.status == "interrupted")
      r.missing_items.push_back(item.label + " (" + o.status + ")");
  }
  const fs::path summary = out / opt.SummaryName();
  WriteSummary(summary, items, outcomes);
  auto count = [&](const char* s) {
    return std::count_if(outcomes.begin(), outcomes.end(),
                         [&](const Outcome& o) { return o.status == s; });
  };
  r.done = count("done");
  r.failed = count("failed");
  r.interrupted = count("interrupted");
  r.missing = count("missing");
  r.summary = summary.string();
  r.exit_code = r.done == static_cast<int64_t>(items.size()) ? 0 : 4;
  return r;
}

}  // namespace dippas::detail
