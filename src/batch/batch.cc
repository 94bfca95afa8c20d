// Running a batch: the plan of its items, the resume state, the run loop that keeps `jobs`
// children busy and forwards signals to them (children.h), the summary as it goes (summary.h).
#include "dippas/batch/batch.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <thread>
#include <vector>

#include "batch/children.h"
#include "batch/summary.h"
#include "dippas/dip/config.h"
#include "dippas/dip/settings_hash.h"
#include "dippas/io/atomic_file.h"
#include "dippas/io/image.h"
#include "dippas/io/paths.h"
#include "dippas/pipeline/memory_check.h"
#include "dippas/pipeline/tiles.h"
#include "dippas/util/fnv.h"
#include "dippas/util/progress.h"
#include "dippas/util/runtime.h"

namespace dippas {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using detail::ChildArgs;
using detail::Collect;
using detail::CompleteMetrics;
using detail::g_sigints;
using detail::g_sigterms;
using detail::InstallBatchSignals;
using detail::LastLine;
using detail::Outcome;
using detail::ReadJsonFile;
using detail::RemoveStaleTemporaries;
using detail::Spawn;
using detail::SumTimings;
using detail::WriteSummary;

std::string ShardSuffix(const BatchOptions& opt) {
  return opt.shards > 0
             ? ".shard-" + std::to_string(opt.shard) + "-of-" + std::to_string(opt.shards)
             : "";
}

bool SameFile(const fs::path& a, const fs::path& b) {
  std::error_code ec;
  return fs::equivalent(a, b, ec);
}

// Pretty JSON, written atomically (as the CLI's WriteJson).
void WriteJsonFile(const fs::path& path, const nlohmann::json& j) {
  WriteFileAtomic(path.string(), j.dump(2) + "\n");
}

// The config files (absolute, for the children run in OUT), checked once here rather than
// failing every item; `resolved` gets the settings the children will run with.
std::vector<std::string> CheckConfigs(const BatchOptions& opt, DipOptions* resolved) {
  DipOptions dip;
  std::vector<std::string> configs;
  for (const auto& path : opt.config) {
    dip = LoadDipConfig(path, dip);
    configs.push_back(fs::absolute(path).string());
  }
  for (const auto& kv : opt.set) {
    const auto eq = kv.find('=');
    if (eq == std::string::npos)
      throw std::invalid_argument("--set " + kv + ": expected key=value");
    SetDipOption(dip, kv.substr(0, eq), kv.substr(eq + 1));
  }
  try {
    dip.Check();
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(std::string("invalid option ") + e.what());
  }
  if (resolved) *resolved = dip;
  return configs;
}

using FileId = std::pair<dev_t, ino_t>;

std::optional<FileId> IdOf(const std::string& path) {
  struct stat st {};
  if (path.empty() || stat(path.c_str(), &st) != 0) return std::nullopt;
  return FileId{st.st_dev, st.st_ino};
}

// No output may be an input (issue: an image, fingerprint, manifest or config named by another
// spelling, a link, or lying in OUT under an output's name). Thousands of items: the inputs are
// indexed by device and inode, and only an output that exists can be one of them.
void CheckNoOutputIsAnInput(const BatchOptions& opt, const std::vector<BatchItem>& items,
                            const fs::path& out) {
  std::map<FileId, NamedPath> inputs;
  auto add_input = [&](const std::string& role, const std::string& path) {
    if (auto id = IdOf(path)) inputs.emplace(*id, NamedPath{role, path});
  };
  add_input("--manifest", opt.manifest);
  for (const auto& c : opt.config) add_input("--config", c);
  for (const auto& item : items) {
    add_input("image", item.image);
    add_input("fingerprint", item.fingerprint);
  }
  auto check = [&](const std::string& role, const fs::path& path) {
    const auto id = IdOf(path.string());
    if (!id) return;
    const auto it = inputs.find(*id);
    if (it != inputs.end()) CheckOutputsNotInputs({{role, path.string()}}, {it->second});
  };
  const std::string shard = ShardSuffix(opt);
  for (const std::string& name : {opt.SummaryName(), ".failed" + shard + ".json",
                                  std::string(".batch.lock"), ".batch" + shard + ".lock"})
    check("--output", out / name);
  for (const auto& item : items) {
    if (!item.plan_error.empty()) continue;  // never run: writes nothing
    check("output of " + item.label, item.Png());
    check("output of " + item.label, item.Json());
    check("output of " + item.label, item.Log());
  }
}

// Keys and plan errors (duplicate outputs, missing fingerprints) of every item.
void PlanItems(const BatchOptions& opt, std::vector<BatchItem>& items, const fs::path& out) {
  std::error_code ec;
  std::map<std::string, size_t> by_key;
  for (size_t i = 0; i < items.size(); ++i) {
    BatchItem& item = items[i];
    item.key = (item.out_dir / item.stem).lexically_relative(out).string();
    const auto [it, fresh] = by_key.emplace(item.key, i);
    if (!fresh) {
      item.plan_error = "same output name as " + items[it->second].label + ": rename one";
    } else if (opt.aware && item.fingerprint.empty()) {
      item.plan_error = "no fingerprint given for device " + item.device;
    } else if (opt.aware && !fs::is_regular_file(item.fingerprint, ec)) {
      item.plan_error = item.fingerprint + ": no such fingerprint file";
    }
  }
}

struct Child {
  pid_t pid = -1;
  size_t item = 0;
  Clock::time_point start;
};

// The run loop's state: items, outcomes, running children, earlier failures.
class BatchRun {
 public:
  BatchRun(const BatchOptions& opt, std::vector<BatchItem> items, fs::path out,
           std::vector<std::string> configs, DipOptions dip, const BatchWarning& warn)
      : opt_(opt),
        items_(std::move(items)),
        out_(std::move(out)),
        configs_(std::move(configs)),
        dip_(std::move(dip)),
        warn_(warn),
        outcomes_(items_.size()),
        failed_path_(out_ / (".failed" + ShardSuffix(opt) + ".json")),
        summary_path_(out_ / opt.SummaryName()),
        progress_("batch", static_cast<int64_t>(items_.size()), !opt.quiet) {}

  BatchResult Run();

 private:
  void Resume();
  bool SameSettings(const BatchItem& item, const nlohmann::json& metrics);
  void Report();
  void StartPending();
  void Reap(const Child& child, int wstatus);
  int64_t Count(const char* status) const {
    return std::count_if(outcomes_.begin(), outcomes_.end(),
                         [&](const Outcome& o) { return o.status == status; });
  }

  const BatchOptions& opt_;
  std::vector<BatchItem> items_;
  fs::path out_;
  std::vector<std::string> configs_;
  DipOptions dip_;  // what the children run with: the expected settings_hash
  const BatchWarning& warn_;
  std::map<std::string, std::string> expected_hash_;  // fingerprint → settings_hash
  int64_t redone_ = 0;
  std::vector<Outcome> outcomes_;
  fs::path failed_path_, summary_path_;
  nlohmann::json failed_;  // key → error of earlier runs: retried only on request
  std::vector<size_t> pending_;
  size_t next_ = 0;
  std::vector<Child> running_;
  bool stopping_ = false;
  Progress progress_;
};

void BatchRun::Resume() {
  failed_ = ReadJsonFile(failed_path_).value_or(nlohmann::json::object());
  if (!failed_.is_object()) failed_ = nlohmann::json::object();
  for (size_t i = 0; i < items_.size(); ++i) {
    const BatchItem& item = items_[i];
    Outcome& o = outcomes_[i];
    if (!item.plan_error.empty()) {
      o.status = "failed";
      o.error = item.plan_error;
    } else if (auto m = CompleteMetrics(item, out_);
               m && (opt_.keep_different || SameSettings(item, *m))) {
      o.status = "skipped";
      o.seconds = SumTimings(*m);
      o.metrics = std::move(m);
      failed_.erase(item.key);
    } else if (failed_.contains(item.key) && !opt_.retry_failed) {
      o.status = "failed";
      o.error = failed_[item.key].value("error", "failed in an earlier run");
    } else {
      if (m) ++redone_;  // finished with other settings: run again, replacing its outputs
      pending_.push_back(i);
    }
  }
  if (redone_ > 0) {
    warn_(std::to_string(redone_) +
          " finished item(s) were made with other settings or another method: redoing them "
          "(--keep-different keeps them)");
  }
}

// The item's metrics name the settings the batch would run it with. Metrics without a
// settings_hash (older versions) are compared on method, mode, crop and config.
bool BatchRun::SameSettings(const BatchItem& item, const nlohmann::json& m) {
  ResultSettings s;
  s.method = opt_.method;
  s.mode = opt_.aware ? "aware" : "blind";
  s.crop = opt_.crop;
  s.dip = dip_;
  s.prnu = opt_.aware ? item.fingerprint : "";
  s.mat_var = opt_.mat_var;
  const auto hash = m.find("settings_hash");
  if (hash == m.end() || !hash->is_string()) {
    return m.value("method", "dip") == s.method && m.value("mode", "") == s.mode &&
           m.value("crop", int64_t{-1}) == s.crop && m.contains("config") &&
           m["config"] == DipOptionsToJson(s.dip);
  }
  auto it = expected_hash_.find(s.prnu);
  if (it == expected_hash_.end()) {
    std::string expected;
    try {
      expected = SettingsHash(s);
    } catch (const std::exception&) {
      expected = "";  // unreadable fingerprint: redo, and let the child say why it fails
    }
    it = expected_hash_.emplace(s.prnu, expected).first;
  }
  return !it->second.empty() && *hash == it->second;
}

void BatchRun::Report() {
  char status[96];
  std::snprintf(status, sizeof(status), "%ld failed, %zu running",
                static_cast<long>(Count("failed")), running_.size());
  const auto finished = std::count_if(outcomes_.begin(), outcomes_.end(),
                                      [](const Outcome& o) { return !o.status.empty(); });
  progress_.Update(finished, status);
}

void BatchRun::StartPending() {
  const int threads = opt_.threads > 0 ? opt_.threads : std::max(1, DefaultThreads() / opt_.jobs);
  std::error_code ec;
  while (!stopping_ && running_.size() < static_cast<size_t>(opt_.jobs) &&
         next_ < pending_.size()) {
    const size_t i = pending_[next_++];
    const BatchItem& item = items_[i];
    fs::create_directories(item.out_dir, ec);
    RemoveStaleTemporaries(item);
    try {
      running_.push_back(
          {Spawn(ChildArgs(opt_, configs_, threads, item), out_, item.Log()), i, Clock::now()});
    } catch (const std::exception& e) {
      outcomes_[i].status = "failed";
      outcomes_[i].error = e.what();
      WriteSummary(summary_path_, items_, outcomes_);
    }
    Report();
  }
}

void BatchRun::Reap(const Child& child, int wstatus) {
  const BatchItem& item = items_[child.item];
  Outcome& o = outcomes_[child.item];
  o.seconds = std::chrono::duration<double>(Clock::now() - child.start).count();
  RemoveStaleTemporaries(item);
  const int code = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -1;
  auto metrics = CompleteMetrics(item, out_);
  if (code == 0 && metrics) {
    o.status = "done";
    o.metrics = std::move(metrics);
    failed_.erase(item.key);
  } else if (code == 3 || (stopping_ && (code == 130 || WIFSIGNALED(wstatus)))) {
    o.status = "interrupted";
    o.metrics = ReadJsonFile(item.Json());  // the partial result, if it got written
    if (o.metrics && !o.metrics->is_object()) o.metrics.reset();
    // Said in the summary: a child that stopped by itself (exit 3) kept its progress.
    if (WIFSIGNALED(wstatus))
      o.error = std::string("killed by signal ") + strsignal(WTERMSIG(wstatus));
  } else {
    o.status = "failed";
    o.error = LastLine(item.Log());
    if (WIFSIGNALED(wstatus)) {
      o.error = std::string("killed by signal ") + strsignal(WTERMSIG(wstatus)) +
                (o.error.empty() ? "" : ": " + o.error);
    } else if (o.error.empty()) {
      o.error = "dippas anonymize exited with code " + std::to_string(code);
    } else if (code == 0) {
      o.error = "no complete output: " + o.error;
    }
    failed_[item.key] = {{"error", o.error}, {"image", item.image}, {"log", item.Log().string()}};
  }
}

namespace {

// Each child checks its own memory, not its siblings': a batch of DIP runs on the CPU checks
// the items it is about to run together, for the largest image among the first few of each device
// (datasets keep one size per camera; a header each, not the pixels).
void WarnBatchMemory(const BatchOptions& opt, const DipOptions& dip,
                     const std::vector<const BatchItem*>& items, const BatchWarning& warn) {
  if (opt.method != "dip" || items.empty() || ResolveDevice(opt.device) != "cpu") return;
  std::map<std::string, int> looked;
  int64_t h = 0, w = 0;
  for (const BatchItem* item : items) {
    if (!item->plan_error.empty() || looked[item->device]++ >= 4) continue;
    int64_t ih = 0, iw = 0;
    if (!PeekImageFileSize(item->image, &ih, &iw)) continue;
    if (opt.crop > 0) {
      if (opt.crop > ih || opt.crop > iw) continue;  // that item fails on its own
      ih = iw = opt.crop;
    }
    if (ih * iw > h * w) h = ih, w = iw;
  }
  const auto available = AvailableMemory();
  if (h == 0 || !available) return;
  const TileGrid grid = MakeTileGrid(h, w, dip.tile_size, dip.block_size, dip.tile_margin);
  const int jobs = static_cast<int>(std::min<size_t>(static_cast<size_t>(opt.jobs), items.size()));
  if (auto m = BatchMemoryWarning(EstimateCpuMemory(dip, grid, h, w), jobs, *available)) {
    warn(m->rfind("warning: ", 0) == 0 ? m->substr(9) : *m);
  }
}

}  // namespace

BatchResult BatchRun::Run() {
  Resume();
  std::vector<const BatchItem*> todo;
  for (const size_t i : pending_) todo.push_back(&items_[i]);
  WarnBatchMemory(opt_, dip_, todo, warn_);
  WriteSummary(summary_path_, items_, outcomes_);
  Report();
  bool forwarded = false, killed = false;
  while (true) {
    const int sigints = g_sigints.load(), sigterms = g_sigterms.load();
    if (!forwarded && sigints + sigterms > 0) {
      // Children stop at the end of their iteration (saving their progress); no new items.
      // SIGUSR1 reaches them as SIGTERM, which `dippas anonymize` treats the same way.
      stopping_ = true;
      forwarded = true;
      const int sig = sigints > 0 && sigterms == 0 ? SIGINT : SIGTERM;
      for (const auto& c : running_) kill(c.pid, sig);
    }
    if (!killed && sigints >= 2) {  // a second Ctrl-C: the user wants out now
      killed = true;
      for (const auto& c : running_) kill(c.pid, SIGKILL);
    }
    StartPending();
    if (running_.empty()) break;
    int wstatus = 0;
    const pid_t pid = waitpid(-1, &wstatus, WNOHANG);
    if (pid <= 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      continue;
    }
    const auto it = std::find_if(running_.begin(), running_.end(),
                                 [&](const Child& c) { return c.pid == pid; });
    if (it == running_.end()) continue;
    const Child child = *it;
    running_.erase(it);
    Reap(child, wstatus);
    WriteJsonFile(failed_path_, failed_);
    WriteSummary(summary_path_, items_, outcomes_);
    Report();
  }
  for (size_t j = next_; j < pending_.size(); ++j) {
    outcomes_[pending_[j]].status = "interrupted";
    outcomes_[pending_[j]].error = "not started: the batch was interrupted";
  }
  WriteJsonFile(failed_path_, failed_);
  WriteSummary(summary_path_, items_, outcomes_);
  progress_.Finish();

  BatchResult r;
  r.done = Count("done");
  r.skipped = Count("skipped");
  r.failed = Count("failed");
  r.interrupted = Count("interrupted");
  r.redone = redone_;
  for (size_t i = 0; i < items_.size(); ++i) {
    if (outcomes_[i].status == "failed")
      r.failures.push_back(items_[i].label + ": " + outcomes_[i].error);
  }
  r.summary = summary_path_.string();
  r.exit_code = (stopping_ || r.interrupted > 0) ? 3 : (r.failed > 0 ? 4 : 0);
  return r;
}

}  // namespace

std::pair<int, int> ParseShard(const std::string& text) {
  const auto slash = text.find('/');
  const auto digits = [](const std::string& s) {
    return !s.empty() && s.size() <= 6 &&
           std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); });
  };
  const std::string i = text.substr(0, slash);
  const std::string n = slash == std::string::npos ? "" : text.substr(slash + 1);
  if (!digits(i) || !digits(n) || std::stoi(n) < 1 || std::stoi(i) >= std::stoi(n)) {
    throw std::invalid_argument("--shard " + text + ": expected I/N with 0 <= I < N (e.g. 0/4)");
  }
  return {std::stoi(i), std::stoi(n)};
}

int ShardOf(const std::string& key, int shards) {
  return shards > 0 ? static_cast<int>(Fnv1a(key) % static_cast<uint64_t>(shards)) : 0;
}

std::string BatchOptions::SummaryName() const { return "summary" + ShardSuffix(*this) + ".csv"; }

void BatchOptions::Check() const {
  if (shards < 0 || (shards > 0 && (shard < 0 || shard >= shards)))
    throw std::invalid_argument("--shard I/N: expected 0 <= I < N");
  if (collect && shards > 0)
    throw std::invalid_argument("--collect merges every shard: it takes no --shard");
  if (!collect && !aware && !blind)
    throw std::invalid_argument("give --aware (device fingerprints) or --blind");
  if (input.empty() && manifest.empty()) throw std::invalid_argument("--input ROOT is required");
  if (manifest.empty() && aware && fingerprints.empty()) {
    throw std::invalid_argument(
        "--aware needs --fingerprints FPS (FPS/<device>.npy) or --manifest");
  }
  if (method == "subtract" && blind) throw std::invalid_argument("--method subtract needs --aware");
  std::error_code ec;
  if (!input.empty() && !fs::is_directory(input, ec))
    throw std::invalid_argument(input + ": no such folder");
  if (!fingerprints.empty() && !fs::is_directory(fingerprints, ec)) {
    throw std::invalid_argument(fingerprints + ": no such folder");
  }
}

BatchResult RunBatchJob(const BatchOptions& opt, const BatchWarning& warn) {
  opt.Check();
  // From here on a scheduler's signal stops the batch cleanly, even before the first child.
  if (!opt.collect) InstallBatchSignals();
  DipOptions dip;
  const std::vector<std::string> configs = opt.collect ? opt.config : CheckConfigs(opt, &dip);
  if (opt.device == "cuda" && !opt.collect) ResolveDevice("cuda");  // one error, not one per item

  std::error_code ec;
  fs::create_directories(opt.output, ec);
  if (!fs::is_directory(opt.output, ec))
    throw std::invalid_argument(opt.output + ": cannot create the folder");
  const fs::path out = fs::canonical(opt.output);
  if (!opt.input.empty() && SameFile(opt.input, out)) {
    throw std::invalid_argument(opt.output + ": the output folder must not be the input folder");
  }
  // One batch per OUT at a time (two would run the same items into the same files), but the
  // shards of a job array and a collect share it: each shard holds its own lock besides.
  const bool shared = opt.shards > 0 || opt.collect;
  const int lock_fd = open((out / ".batch.lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock_fd < 0 || flock(lock_fd, (shared ? LOCK_SH : LOCK_EX) | LOCK_NB) != 0) {
    throw std::invalid_argument(out.string() + ": another dippas batch is using this folder");
  }
  if (opt.shards > 0) {
    const fs::path shard_lock = out / (".batch" + ShardSuffix(opt) + ".lock");
    const int fd = open(shard_lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) != 0) {
      throw std::invalid_argument(out.string() + ": shard " + std::to_string(opt.shard) + "/" +
                                  std::to_string(opt.shards) + " is already running there");
    }
  }

  std::vector<BatchItem> items =
      opt.manifest.empty() ? ScanBatchTree(fs::canonical(opt.input), out, opt.fingerprints, warn)
                           : ReadBatchManifest(opt.manifest, opt.input, out);
  if (items.empty()) throw std::invalid_argument("no images found (ROOT/<device>/<image files>)");
  PlanItems(opt, items, out);  // on every item: duplicates are found whatever the shard
  CheckNoOutputIsAnInput(opt, items, out);
  if (opt.collect) return Collect(opt, std::move(items), out);
  if (opt.shards > 0) {
    items.erase(std::remove_if(items.begin(), items.end(),
                               [&](const BatchItem& item) {
                                 return ShardOf(item.key, opt.shards) != opt.shard;
                               }),
                items.end());
  }
  return BatchRun(opt, std::move(items), out, configs, dip, warn).Run();
}

}  // namespace dippas
