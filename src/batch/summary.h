// What a batch knows of each item's outcome: the metrics its child left on disk, the summary
// CSV, and --collect's merge of the shards' summaries.
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "dippas/batch/batch.h"

namespace dippas::detail {

// What the summary says about an item.
struct Outcome {
  std::string status;  // done | skipped | failed | interrupted; empty while pending/running
  std::optional<nlohmann::json> metrics;
  double seconds = -1;  // < 0: unknown
  std::string error;
};

std::optional<nlohmann::json> ReadJsonFile(const std::filesystem::path& path);

// Complete = the metrics JSON parses, its run was not interrupted, and the image it names
// exists (the child writes the PNG before the JSON, both atomically).
std::optional<nlohmann::json> CompleteMetrics(const BatchItem& item,
                                              const std::filesystem::path& out);

// The sum of the metrics' timings_s, or -1 without them.
double SumTimings(const nlohmann::json& m);

// The summary CSV: one row per item with an outcome (pending and running ones are left out).
void WriteSummary(const std::filesystem::path& path, const std::vector<BatchItem>& items,
                  const std::vector<Outcome>& outcomes);

// --collect: the plan of every item (as the shards made it) against what the shards wrote.
BatchResult Collect(const BatchOptions& opt, std::vector<BatchItem> items,
                    const std::filesystem::path& out);

}  // namespace dippas::detail
