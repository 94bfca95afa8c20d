// dippas batch: `dippas anonymize` over a Dresden/Vision-style tree ROOT/<device>/<images>,
// one child process per item, resumable. Every item's outputs are written atomically by
// the child (PNG first, then the metrics JSON), so "complete" is decided from the JSON
// alone, and a crash or Ctrl-C at any moment leaves nothing a rerun would take for done.
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "commands.h"
#include "common.h"
#include "dippas/dip/config.h"
#include "dippas/io/atomic_file.h"
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

// One input image and where its outputs go.
struct Item {
  std::string image;        // absolute path of the input
  std::string label;        // the image as the summary names it (relative to ROOT when under it)
  std::string device;       // camera / device folder name
  std::string fingerprint;  // fingerprint K (.npy) of the device; empty when none
  std::string key;          // output path relative to OUT, without extension: unique per item
  fs::path out_dir;         // OUT/<device>/<rel>
  std::string stem;         // file name of the input without extension
  std::string plan_error;   // known to fail before running (no fingerprint, duplicate name)

  fs::path Png() const { return out_dir / (stem + ".anon.png"); }
  fs::path Json() const { return out_dir / (stem + ".anon.json"); }
  fs::path Log() const { return out_dir / (stem + ".log"); }
};

// What the summary says about an item.
struct Outcome {
  std::string status;  // done | skipped | failed | interrupted; empty while pending/running
  std::optional<nlohmann::json> metrics;
  double seconds = -1;  // < 0: unknown
  std::string error;
};

bool IsImageFile(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  return ext == ".png" || ext == ".jpg" || ext == ".jpeg" || ext == ".tif" || ext == ".tiff" ||
         ext == ".bmp";
}

bool IsHidden(const fs::path& p) {
  return !p.filename().empty() && p.filename().string()[0] == '.';
}

bool SameFile(const fs::path& a, const fs::path& b) {
  std::error_code ec;
  return fs::equivalent(a, b, ec);
}

// The relative parent of `image` under `base`, or nullopt when it is not under it.
std::optional<fs::path> RelativeParent(const fs::path& image, const fs::path& base) {
  const fs::path rel = image.parent_path().lexically_relative(base);
  if (rel.empty() || *rel.begin() == "..") return std::nullopt;
  return rel == "." ? fs::path() : rel;
}

// ROOT/<device>/**/<image>: every image file below each device folder, sorted.
std::vector<Item> ScanTree(const fs::path& root, const fs::path& out, const std::string& fps) {
  std::vector<fs::path> devices;
  for (const auto& e : fs::directory_iterator(root)) {
    if (IsHidden(e.path())) continue;
    if (e.is_directory() && !SameFile(e.path(), out)) {
      devices.push_back(e.path());
    } else if (e.is_regular_file() && IsImageFile(e.path())) {
      std::cerr << "dippas batch: warning: " << e.path().string()
                << " is not in a device folder (ROOT/<device>/...): ignored\n";
    }
  }
  std::sort(devices.begin(), devices.end());
  std::vector<Item> items;
  for (const auto& dev_dir : devices) {
    std::vector<fs::path> files;
    for (auto it = fs::recursive_directory_iterator(dev_dir);
         it != fs::recursive_directory_iterator(); ++it) {
      // Hidden entries and the output folder (when it lies inside ROOT) are not inputs.
      if (IsHidden(it->path()) || (it->is_directory() && SameFile(it->path(), out))) {
        if (it->is_directory()) it.disable_recursion_pending();
        continue;
      }
      if (it->is_regular_file() && IsImageFile(it->path())) files.push_back(it->path());
    }
    std::sort(files.begin(), files.end());
    const std::string device = dev_dir.filename().string();
    for (const auto& f : files) {
      Item item;
      item.image = fs::absolute(f).lexically_normal().string();
      item.label = f.lexically_relative(root).string();
      item.device = device;
      item.stem = f.stem().string();
      const fs::path rel = f.parent_path().lexically_relative(dev_dir);
      item.out_dir = (out / device / (rel == "." ? fs::path() : rel)).lexically_normal();
      if (!fps.empty()) item.fingerprint = (fs::path(fps) / (device + ".npy")).string();
      items.push_back(std::move(item));
    }
  }
  return items;
}

// One CSV record (RFC 4180 quoting); false at the end of the input.
bool ReadCsvRecord(std::istream& in, std::vector<std::string>& fields, int64_t& line) {
  fields.clear();
  std::string raw;
  if (!std::getline(in, raw)) return false;
  ++line;
  std::string field;
  bool quoted = false;
  for (size_t i = 0;; ++i) {
    if (i == raw.size()) {
      if (!quoted) break;
      // A quoted field spanning lines.
      std::string more;
      if (!std::getline(in, more)) {
        throw UsageError("unterminated quote at line " + std::to_string(line));
      }
      ++line;
      raw += "\n" + more;
    }
    const char c = raw[i];
    if (quoted) {
      if (c == '"' && i + 1 < raw.size() && raw[i + 1] == '"') {
        field += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        field += c;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      fields.push_back(field);
      field.clear();
    } else if (c != '\r') {
      field += c;
    }
  }
  fields.push_back(field);
  for (auto& f : fields) {
    const auto b = f.find_first_not_of(" \t"), e = f.find_last_not_of(" \t");
    f = b == std::string::npos ? "" : f.substr(b, e - b + 1);
  }
  return true;
}

// A manifest: CSV image,device[,fingerprint], optionally with that header. Relative image
// paths are taken from `root` (or the manifest's folder), fingerprints from the manifest's.
std::vector<Item> ReadManifest(const std::string& path, const std::string& root,
                               const fs::path& out) {
  std::ifstream in(path);
  if (!in) throw UsageError(path + ": cannot open the manifest");
  const fs::path manifest_dir = fs::absolute(path).parent_path();
  const fs::path base = root.empty() ? manifest_dir : fs::absolute(root);
  int col_image = 0, col_device = 1, col_fp = 2;
  std::vector<std::string> f;
  int64_t line = 0;
  std::vector<Item> items;
  bool first = true;
  while (ReadCsvRecord(in, f, line)) {
    if (f.size() == 1 && f[0].empty()) continue;
    if (!f[0].empty() && f[0][0] == '#') continue;
    if (first) {
      first = false;
      std::vector<std::string> lower = f;
      for (auto& s : lower) {
        std::transform(s.begin(), s.end(), s.begin(),
                       [](unsigned char c) { return std::tolower(c); });
      }
      if (lower[0] == "image" || lower[0] == "path") {  // a header: columns by name
        col_image = col_device = col_fp = -1;
        for (size_t i = 0; i < lower.size(); ++i) {
          const int c = static_cast<int>(i);
          if (lower[i] == "image" || lower[i] == "path") col_image = c;
          if (lower[i] == "device" || lower[i] == "camera") col_device = c;
          if (lower[i] == "fingerprint" || lower[i] == "prnu") col_fp = c;
        }
        if (col_device < 0) throw UsageError(path + ": header has no 'device' column");
        continue;
      }
    }
    auto at = [&](int c) { return c >= 0 && static_cast<size_t>(c) < f.size() ? f[c] : ""; };
    const std::string where = path + ":" + std::to_string(line) + ": ";
    Item item;
    const std::string image = at(col_image), device = at(col_device);
    if (image.empty() || device.empty()) {
      throw UsageError(where + "expected image,device[,fingerprint]");
    }
    if (device == "." || device == ".." || device.find('/') != std::string::npos ||
        device[0] == '.') {
      throw UsageError(where + "device '" + device + "' is not a folder name");
    }
    const fs::path img = (base / image).lexically_normal();  // an absolute `image` stays as is
    item.image = img.string();
    item.label = image;
    item.device = device;
    item.stem = img.stem().string();
    // Below a folder named like the device (a Dresden tree), keep what follows it only.
    const fs::path parent = RelativeParent(img, base).value_or(fs::path());
    fs::path rel;
    for (const auto& part : parent) {
      rel = part == device ? fs::path() : rel / part;
    }
    item.out_dir = (out / device / rel).lexically_normal();
    const std::string fp = at(col_fp);
    if (!fp.empty()) item.fingerprint = (manifest_dir / fp).lexically_normal().string();
    items.push_back(std::move(item));
  }
  return items;
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
std::optional<nlohmann::json> CompleteMetrics(const Item& item, const fs::path& out) {
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
void RemoveStaleTemporaries(const Item& item) {
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

void WriteSummary(const fs::path& path, const std::vector<Item>& items,
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

struct Child {
  pid_t pid = -1;
  size_t item = 0;
  Clock::time_point start;
};

// Starts `argv` in `out` with stderr to `log`, in its own process group (so a terminal's
// Ctrl-C reaches the batch only, which forwards it once), ended with the batch if it dies.
pid_t Spawn(const std::vector<std::string>& args, const fs::path& out, const fs::path& log) {
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  const std::string out_dir = out.string();
  const int log_fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (log_fd < 0) {
    throw std::runtime_error(log.string() + ": cannot write: " + std::strerror(errno));
  }
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
  if (pid < 0) {
    throw std::runtime_error(std::string("cannot start a process: ") + std::strerror(fork_errno));
  }
  setpgid(pid, pid);  // also here: no window where the child is still in our group
  return pid;
}

}  // namespace

int RunBatch(int argc, char** argv) {
  struct Options {
    std::string input;                // ROOT/<device>/<images>
    std::string fingerprints;         // FPS/<device>.npy
    std::string manifest;             // CSV image,device[,fingerprint]
    bool aware = false;               // P = the device's fingerprint
    bool blind = false;               // P = each image's own residual
    std::string output;               // OUT
    int jobs = 1;                     // children at once
    std::string method = "dip";       // dip | subtract | denoise
    std::string device = "auto";      // for the children
    int64_t crop = 0;                 // centre crop side
    std::vector<std::string> config;  // config files for the children
    std::vector<std::string> set;     // key=value overrides for the children
    bool retry_failed = false;        // re-run items that failed before
  } opt;
  CommonOptions common;

  CLI::App app{
      "Anonymize a whole folder tree ROOT/<device>/<images> (Dresden/Vision layout), one "
      "`dippas anonymize` process per image; the output mirrors the tree (anonymized PNG, "
      "metrics JSON, log per image) plus OUT/summary.csv. Resumable: a rerun skips "
      "complete items and re-runs interrupted ones; failed items are retried with "
      "--retry-failed. Exit code 0 all done, 3 interrupted, 4 some items failed",
      "dippas batch"};
  app.add_option("--input", opt.input, "ROOT folder: one sub-folder of images per device");
  auto* fps = app.add_option("--fingerprints", opt.fingerprints,
                             "Folder of fingerprints FPS/<device>.npy (aware mode; in blind mode "
                             "they are used for the metrics' NCC/PCE)");
  auto* manifest = app.add_option("--manifest", opt.manifest,
                                  "CSV manifest instead of the tree: image,device[,fingerprint] "
                                  "(header optional; images relative to --input or the manifest)");
  fps->excludes(manifest);
  auto* aware = app.add_flag("--aware", opt.aware, "PRNU-aware: P = the device's fingerprint");
  auto* blind = app.add_flag("--blind", opt.blind, "PRNU-blind: P = each image's own residual");
  aware->excludes(blind);
  app.add_option("--output", opt.output, "OUT folder (created)")->required();
  app.add_option("--jobs", opt.jobs,
                 "Images processed at once, one process each (default 1; keep 1 on a GPU)")
      ->check(CLI::Range(1, 256));
  app.add_option("--method", opt.method, "dip, subtract or denoise (see dippas anonymize)")
      ->check(CLI::IsMember({"dip", "subtract", "denoise"}));
  app.add_option("--device", opt.device, "auto, cpu or cuda")
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}));
  app.add_option("--crop", opt.crop, "Anonymize the centre N×N crop")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--config", opt.config, "Config file for every item (repeatable)")
      ->allow_extra_args(false);
  app.add_option("--set", opt.set, "Override a config key, key=value (repeatable)")
      ->allow_extra_args(false);
  app.add_flag("--retry-failed", opt.retry_failed, "Re-run the items that failed in earlier runs");
  common.Add(app);  // --threads: per child; default all cores / jobs
  CLI11_PARSE(app, argc, argv);

  return Guard("batch", [&]() -> int {
    if (!opt.aware && !opt.blind) throw UsageError("give --aware (device fingerprints) or --blind");
    if (opt.input.empty() && opt.manifest.empty()) throw UsageError("--input ROOT is required");
    if (opt.manifest.empty() && opt.aware && opt.fingerprints.empty()) {
      throw UsageError("--aware needs --fingerprints FPS (FPS/<device>.npy) or --manifest");
    }
    if (opt.method == "subtract" && opt.blind) throw UsageError("--method subtract needs --aware");
    std::error_code ec;
    if (!opt.input.empty() && !fs::is_directory(opt.input, ec)) {
      throw UsageError(opt.input + ": no such folder");
    }
    if (!opt.fingerprints.empty() && !fs::is_directory(opt.fingerprints, ec)) {
      throw UsageError(opt.fingerprints + ": no such folder");
    }
    // Check the settings once here rather than failing every item.
    DipOptions dip;
    std::vector<std::string> configs;
    for (const auto& path : opt.config) {
      dip = LoadDipConfig(path, dip);
      configs.push_back(fs::absolute(path).string());
    }
    for (const auto& kv : opt.set) {
      const auto eq = kv.find('=');
      if (eq == std::string::npos) throw UsageError("--set " + kv + ": expected key=value");
      SetDipOption(dip, kv.substr(0, eq), kv.substr(eq + 1));
    }
    try {
      dip.Check();
    } catch (const std::invalid_argument& e) {
      throw UsageError(std::string("invalid option ") + e.what());
    }
    if (opt.device == "cuda") ResolveDevice("cuda");  // absent CUDA: one error, not one per item

    fs::create_directories(opt.output, ec);
    if (!fs::is_directory(opt.output, ec)) {
      throw UsageError(opt.output + ": cannot create the folder");
    }
    const fs::path out = fs::canonical(opt.output);
    if (!opt.input.empty() && SameFile(opt.input, out)) {
      throw UsageError(opt.output + ": the output folder must not be the input folder");
    }
    // One batch per OUT at a time: two would run the same items into the same files.
    const int lock_fd = open((out / ".batch.lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (lock_fd < 0 || flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
      throw UsageError(out.string() + ": another dippas batch is using this folder");
    }

    std::vector<Item> items = opt.manifest.empty()
                                  ? ScanTree(fs::canonical(opt.input), out, opt.fingerprints)
                                  : ReadManifest(opt.manifest, opt.input, out);
    if (items.empty()) throw UsageError("no images found (ROOT/<device>/<image files>)");
    std::map<std::string, size_t> by_key;
    for (size_t i = 0; i < items.size(); ++i) {
      Item& item = items[i];
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

    // Failures of earlier runs: retried only on request.
    const fs::path failed_path = out / ".failed.json";
    nlohmann::json failed = ReadJsonFile(failed_path).value_or(nlohmann::json::object());
    if (!failed.is_object()) failed = nlohmann::json::object();
    const fs::path summary_path = out / "summary.csv";

    std::vector<Outcome> outcomes(items.size());
    std::vector<size_t> pending;
    for (size_t i = 0; i < items.size(); ++i) {
      const Item& item = items[i];
      Outcome& o = outcomes[i];
      if (!item.plan_error.empty()) {
        o.status = "failed";
        o.error = item.plan_error;
      } else if (auto m = CompleteMetrics(item, out)) {
        o.status = "skipped";
        o.seconds = SumTimings(*m);
        o.metrics = std::move(m);
        failed.erase(item.key);
      } else if (failed.contains(item.key) && !opt.retry_failed) {
        o.status = "failed";
        o.error = failed[item.key].value("error", "failed in an earlier run");
      } else {
        pending.push_back(i);
      }
    }

    const int threads =
        common.threads > 0 ? common.threads : std::max(1, DefaultThreads() / opt.jobs);
    auto child_args = [&](const Item& item) {
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
      a.insert(a.end(), {"--method", opt.method, "--device", opt.device, "--threads",
                         std::to_string(threads)});
      if (opt.crop > 0) a.insert(a.end(), {"--crop", std::to_string(opt.crop)});
      for (const auto& c : configs) a.insert(a.end(), {"--config", c});
      for (const auto& s : opt.set) a.insert(a.end(), {"--set", s});
      // Paths relative to OUT (the children's folder), so OUT can be moved between runs.
      const fs::path rel = fs::path(item.key);
      a.insert(a.end(), {"--out", rel.string() + ".anon.png", "--metrics",
                         rel.string() + ".anon.json", "--quiet"});
      return a;
    };

    struct sigaction sa {};
    sa.sa_handler = OnBatchSignal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
    g_batch_signals = 0;

    const size_t total = items.size();
    auto count = [&](const char* status) {
      return std::count_if(outcomes.begin(), outcomes.end(),
                           [&](const Outcome& o) { return o.status == status; });
    };
    auto finished = [&] {
      return std::count_if(outcomes.begin(), outcomes.end(),
                           [](const Outcome& o) { return !o.status.empty(); });
    };
    Progress progress("batch", static_cast<int64_t>(total), !common.quiet);
    std::vector<Child> running;
    auto report = [&] {
      char status[96];
      std::snprintf(status, sizeof(status), "%ld failed, %zu running",
                    static_cast<long>(count("failed")), running.size());
      progress.Update(finished(), status);
    };
    WriteSummary(summary_path, items, outcomes);
    report();

    size_t next = 0;
    int handled_signals = 0;
    bool stopping = false;
    while (true) {
      const int signals = g_batch_signals.load();
      if (signals > handled_signals) {
        // First: children stop at the end of their iteration and write "interrupted"
        // outputs; no new items. Second: kill them.
        stopping = true;
        for (const auto& c : running) {
          kill(c.pid, signals >= 2 ? SIGKILL : g_batch_signal_number.load());
        }
        handled_signals = signals >= 2 ? 2 : signals;
      }
      while (!stopping && running.size() < static_cast<size_t>(opt.jobs) && next < pending.size()) {
        const size_t i = pending[next++];
        const Item& item = items[i];
        fs::create_directories(item.out_dir, ec);
        RemoveStaleTemporaries(item);
        try {
          running.push_back({Spawn(child_args(item), out, item.Log()), i, Clock::now()});
        } catch (const std::exception& e) {
          outcomes[i].status = "failed";
          outcomes[i].error = e.what();
          WriteSummary(summary_path, items, outcomes);
        }
        report();
      }
      if (running.empty()) break;
      int wstatus = 0;
      const pid_t pid = waitpid(-1, &wstatus, WNOHANG);
      if (pid <= 0) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        continue;
      }
      const auto it = std::find_if(running.begin(), running.end(),
                                   [&](const Child& c) { return c.pid == pid; });
      if (it == running.end()) continue;
      const size_t i = it->item;
      const Item& item = items[i];
      Outcome& o = outcomes[i];
      o.seconds = std::chrono::duration<double>(Clock::now() - it->start).count();
      running.erase(it);
      RemoveStaleTemporaries(item);
      const int code = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -1;
      auto metrics = CompleteMetrics(item, out);
      if (code == 0 && metrics) {
        o.status = "done";
        o.metrics = std::move(metrics);
        failed.erase(item.key);
      } else if (code == 3 || (stopping && (code == 130 || WIFSIGNALED(wstatus)))) {
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
        failed[item.key] = {
            {"error", o.error}, {"image", item.image}, {"log", item.Log().string()}};
      }
      WriteJson(failed_path.string(), failed);
      WriteSummary(summary_path, items, outcomes);
      report();
    }
    for (size_t j = next; j < pending.size(); ++j) {
      outcomes[pending[j]].status = "interrupted";
      outcomes[pending[j]].error = "not started: the batch was interrupted";
    }
    WriteJson(failed_path.string(), failed);
    WriteSummary(summary_path, items, outcomes);
    progress.Finish();
    const long n_failed = static_cast<long>(count("failed"));
    const long n_interrupted = static_cast<long>(count("interrupted"));
    if (!common.quiet) {
      for (size_t i = 0; i < items.size(); ++i) {
        if (outcomes[i].status == "failed") {
          std::fprintf(stderr, "failed: %s: %s\n", items[i].label.c_str(),
                       outcomes[i].error.c_str());
        }
      }
      std::fprintf(stderr,
                   "batch: %ld done, %ld skipped, %ld failed, %ld interrupted; summary in %s\n",
                   static_cast<long>(count("done")), static_cast<long>(count("skipped")), n_failed,
                   n_interrupted, summary_path.c_str());
    }
    if (stopping || n_interrupted > 0) return 3;
    return n_failed > 0 ? 4 : 0;
  });
}

}  // namespace dippas
