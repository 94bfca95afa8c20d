// Running a batch: resume state, child processes, signal forwarding, the summary.
#include "dippas/batch/batch.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "dippas/dip/config.h"
#include "dippas/io/atomic_file.h"
#include "dippas/io/paths.h"
#include "dippas/util/progress.h"
#include "dippas/util/runtime.h"

namespace dippas {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

std::atomic<int> g_batch_signals{0};
std::atomic<int> g_batch_signal_number{SIGINT};

void OnBatchSignal(int sig) {
  g_batch_signal_number = sig;
  g_batch_signals.fetch_add(1);
}

// What the summary says about an item.
struct Outcome {
  std::string status;  // done | skipped | failed | interrupted; empty while pending/running
  std::optional<nlohmann::json> metrics;
  double seconds = -1;  // < 0: unknown
  std::string error;
};

bool SameFile(const fs::path& a, const fs::path& b) {
  std::error_code ec;
  return fs::equivalent(a, b, ec);
}

// Pretty JSON, written atomically (as the CLI's WriteJson).
void WriteJsonFile(const fs::path& path, const nlohmann::json& j) {
  WriteFileAtomic(path.string(), j.dump(2) + "\n");
}

std::optional<nlohmann::json> ReadJsonFile(const fs::path& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  try {
    return nlohmann::json::parse(in);
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

// Complete = the metrics JSON parses, its run was not interrupted, and the image it names
// exists (the child writes the PNG before the JSON, both atomically).
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

// A killed child (second Ctrl-C, SIGKILL) can leave the atomic writer's temporaries.
void RemoveStaleTemporaries(const BatchItem& item) {
  std::error_code ec;
  if (!fs::is_directory(item.out_dir, ec)) return;
  const std::string png = "." + item.stem + ".anon.png.tmp-";
  const std::string json = "." + item.stem + ".anon.json.tmp-";
  for (const auto& e : fs::directory_iterator(item.out_dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind(png, 0) == 0 || name.rfind(json, 0) == 0) fs::remove(e.path(), ec);
  }
}

// The child's error message: the last non-blank line of its stderr, without the prefix.
std::string LastLine(const fs::path& log) {
  std::ifstream in(log);
  std::string line, last;
  while (std::getline(in, line)) {
    if (line.find_first_not_of(" \t\r") != std::string::npos) last = line;
  }
  const std::string prefix = "dippas anonymize: error: ";
  return last.rfind(prefix, 0) == 0 ? last.substr(prefix.size()) : last;
}

std::string CsvField(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

std::string CsvNumber(const nlohmann::json& m, const char* key) {
  const auto it = m.find(key);
  return it != m.end() && it->is_number() ? it->dump() : "";
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
    csv << CsvField(items[i].label) << "," << CsvField(items[i].device) << "," << o.status << ",";
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
    csv << "," << CsvField(o.error) << "\n";
  }
  WriteFileAtomic(path.string(), csv.str());
}

// Starts `argv` in `out` with stderr to `log`, in its own process group (so a terminal's
// Ctrl-C reaches the batch only, which forwards it once), ended with the batch if it dies.
pid_t Spawn(const std::vector<std::string>& args, const fs::path& out, const fs::path& log) {
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  const std::string out_dir = out.string();
  const int log_fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (log_fd < 0)
    throw std::runtime_error(log.string() + ": cannot write: " + std::strerror(errno));
  const int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid == 0) {
    // Only async-signal-safe calls between fork and exec.
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) _exit(127);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    if (null_fd >= 0) {
      dup2(null_fd, 0);
      dup2(null_fd, 1);
    }
    dup2(log_fd, 2);
    if (chdir(out_dir.c_str()) != 0) _exit(127);
    execv("/proc/self/exe", argv.data());
    const char msg[] = "dippas batch: error: cannot start dippas anonymize\n";
    [[maybe_unused]] const ssize_t n = write(2, msg, sizeof(msg) - 1);
    _exit(127);
  }
  const int fork_errno = errno;
  close(log_fd);
  if (null_fd >= 0) close(null_fd);
  if (pid < 0)
    throw std::runtime_error(std::string("cannot start a process: ") + std::strerror(fork_errno));
  setpgid(pid, pid);  // also here: no window where the child is still in our group
  return pid;
}

// The config files (absolute, for the children run in OUT), checked once here rather than
// failing every item.
std::vector<std::string> CheckConfigs(const BatchOptions& opt) {
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
  for (const char* name : {"summary.csv", ".failed.json", ".batch.lock"})
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

// The command line of one item's `dippas anonymize`, run in OUT.
std::vector<std::string> ChildArgs(const BatchOptions& opt, const std::vector<std::string>& configs,
                                   int threads, const BatchItem& item) {
  std::error_code ec;
  std::vector<std::string> a = {"dippas", "anonymize", "--image", item.image};
  if (opt.aware) {
    a.insert(a.end(), {"--prnu", fs::absolute(item.fingerprint).string()});
  } else {
    a.push_back("--blind");
    // A blind run still reports NCC/PCE when the device's fingerprint is at hand.
    if (!item.fingerprint.empty() && fs::is_regular_file(item.fingerprint, ec)) {
      a.insert(a.end(), {"--eval-prnu", fs::absolute(item.fingerprint).string()});
    }
  }
  a.insert(a.end(),
           {"--method", opt.method, "--device", opt.device, "--threads", std::to_string(threads)});
  if (opt.crop > 0) a.insert(a.end(), {"--crop", std::to_string(opt.crop)});
  for (const auto& c : configs) a.insert(a.end(), {"--config", c});
  for (const auto& s : opt.set) a.insert(a.end(), {"--set", s});
  // Paths relative to OUT (the children's folder), so OUT can be moved between runs.
  const fs::path rel = fs::path(item.key);
  a.insert(a.end(), {"--out", rel.string() + ".anon.png", "--metrics", rel.string() + ".anon.json",
                     "--quiet"});
  return a;
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
           std::vector<std::string> configs)
      : opt_(opt),
        items_(std::move(items)),
        out_(std::move(out)),
        configs_(std::move(configs)),
        outcomes_(items_.size()),
        failed_path_(out_ / ".failed.json"),
        summary_path_(out_ / "summary.csv"),
        progress_("batch", static_cast<int64_t>(items_.size()), !opt.quiet) {}

  BatchResult Run();

 private:
  void Resume();
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
    } else if (auto m = CompleteMetrics(item, out_)) {
      o.status = "skipped";
      o.seconds = SumTimings(*m);
      o.metrics = std::move(m);
      failed_.erase(item.key);
    } else if (failed_.contains(item.key) && !opt_.retry_failed) {
      o.status = "failed";
      o.error = failed_[item.key].value("error", "failed in an earlier run");
    } else {
      pending_.push_back(i);
    }
  }
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

BatchResult BatchRun::Run() {
  Resume();
  struct sigaction sa {};
  sa.sa_handler = OnBatchSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  g_batch_signals = 0;
  WriteSummary(summary_path_, items_, outcomes_);
  Report();
  int handled_signals = 0;
  while (true) {
    const int signals = g_batch_signals.load();
    if (signals > handled_signals) {
      // First: children stop at the end of their iteration and write "interrupted"
      // outputs; no new items. Second: kill them.
      stopping_ = true;
      for (const auto& c : running_)
        kill(c.pid, signals >= 2 ? SIGKILL : g_batch_signal_number.load());
      handled_signals = signals >= 2 ? 2 : signals;
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
  for (size_t i = 0; i < items_.size(); ++i) {
    if (outcomes_[i].status == "failed")
      r.failures.push_back(items_[i].label + ": " + outcomes_[i].error);
  }
  r.summary = summary_path_.string();
  r.exit_code = (stopping_ || r.interrupted > 0) ? 3 : (r.failed > 0 ? 4 : 0);
  return r;
}

}  // namespace

void BatchOptions::Check() const {
  if (!aware && !blind)
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
  const std::vector<std::string> configs = CheckConfigs(opt);
  if (opt.device == "cuda") ResolveDevice("cuda");  // absent CUDA: one error, not one per item

  std::error_code ec;
  fs::create_directories(opt.output, ec);
  if (!fs::is_directory(opt.output, ec))
    throw std::invalid_argument(opt.output + ": cannot create the folder");
  const fs::path out = fs::canonical(opt.output);
  if (!opt.input.empty() && SameFile(opt.input, out)) {
    throw std::invalid_argument(opt.output + ": the output folder must not be the input folder");
  }
  // One batch per OUT at a time: two would run the same items into the same files.
  const int lock_fd = open((out / ".batch.lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock_fd < 0 || flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
    throw std::invalid_argument(out.string() + ": another dippas batch is using this folder");
  }

  std::vector<BatchItem> items =
      opt.manifest.empty() ? ScanBatchTree(fs::canonical(opt.input), out, opt.fingerprints, warn)
                           : ReadBatchManifest(opt.manifest, opt.input, out);
  if (items.empty()) throw std::invalid_argument("no images found (ROOT/<device>/<image files>)");
  PlanItems(opt, items, out);
  CheckNoOutputIsAnInput(opt, items, out);
  return BatchRun(opt, std::move(items), out, configs).Run();
}

}  // namespace dippas
