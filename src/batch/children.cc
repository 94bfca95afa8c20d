// The batch's child processes: spawning `dippas anonymize` in OUT, the signals the batch counts,
// cleaning up after a killed child and reading its last words.
#include "batch/children.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <fstream>
#include <stdexcept>

#include "dippas/batch/batch.h"

namespace dippas::detail {

namespace fs = std::filesystem;

std::atomic<int> g_sigints{0};
std::atomic<int> g_sigterms{0};

namespace {

void OnBatchSignal(int sig) { (sig == SIGINT ? g_sigints : g_sigterms).fetch_add(1); }

// Each run of an item starts its (appended) log with this line and the time.
constexpr char kRunMarker[] = "== dippas batch: item started";

}  // namespace

void InstallBatchSignals() {
  g_sigints = 0;
  g_sigterms = 0;
  struct sigaction sa {};
  sa.sa_handler = OnBatchSignal;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGINT, SIGTERM, SIGUSR1}) sigaction(sig, &sa, nullptr);
}

void RemoveStaleTemporaries(const BatchItem& item) {
  std::error_code ec;
  if (!fs::is_directory(item.out_dir, ec)) return;
  const std::string png = "." + item.stem + ".anon.png.tmp-";
  const std::string json = "." + item.stem + ".anon.json.tmp-";
  for (const auto& e : fs::directory_iterator(item.out_dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind(png, 0) == 0 || name.rfind(json, 0) == 0) fs::remove(e.path(), ec);
  }
  const fs::path ckpt = item.out_dir / (item.stem + ".ckpt");
  if (!fs::is_directory(ckpt, ec)) return;
  std::vector<fs::path> stale;
  for (auto it = fs::recursive_directory_iterator(ckpt, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.size() > 1 && name[0] == '.' && name.find(".tmp-") != std::string::npos &&
        it->is_regular_file(ec)) {
      stale.push_back(it->path());
    }
  }
  for (const auto& f : stale) fs::remove(f, ec);
}

std::string LastLine(const fs::path& log) {
  std::ifstream in(log);
  std::string line, last;
  while (std::getline(in, line)) {
    if (line.rfind(kRunMarker, 0) == 0) {
      last.clear();  // only the latest run's lines count
    } else if (line.find_first_not_of(" \t\r") != std::string::npos) {
      last = line;
    }
  }
  const std::string prefix = "dippas anonymize: error: ";
  return last.rfind(prefix, 0) == 0 ? last.substr(prefix.size()) : last;
}

pid_t Spawn(const std::vector<std::string>& args, const fs::path& out, const fs::path& log) {
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  const std::string out_dir = out.string();
  // Appended to: a resumed item's log keeps what its earlier runs said (checkpoint saved at…).
  const int log_fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0)
    throw std::runtime_error(log.string() + ": cannot write: " + std::strerror(errno));
  {
    char stamp[64];
    const std::time_t now = std::time(nullptr);
    std::strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", std::gmtime(&now));
    const std::string head = std::string(kRunMarker) + " " + stamp + "Z\n";
    [[maybe_unused]] const ssize_t n = write(log_fd, head.data(), head.size());
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
  if (pid < 0)
    throw std::runtime_error(std::string("cannot start a process: ") + std::strerror(fork_errno));
  setpgid(pid, pid);  // also here: no window where the child is still in our group
  return pid;
}

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
  if (!opt.mat_var.empty()) a.insert(a.end(), {"--mat-var", opt.mat_var});
  // Paths relative to OUT (the children's folder), so OUT can be moved between runs.
  const fs::path rel = fs::path(item.key);
  a.insert(a.end(), {"--out", rel.string() + ".anon.png", "--metrics", rel.string() + ".anon.json",
                     "--quiet"});
  // Always a checkpoint: a stopped, preempted or killed item resumes where it was on the next
  // run. --restart: one left by other settings is discarded (the item is redone with the new).
  if (opt.method == "dip") a.insert(a.end(), {"--checkpoint", rel.string() + ".ckpt", "--restart"});
  return a;
}

}  // namespace dippas::detail
