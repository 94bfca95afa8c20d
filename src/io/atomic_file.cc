#include "dippas/io/atomic_file.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <vector>

#include "dippas/io/limits.h"
#include "dippas/io/npy.h"

namespace dippas {

namespace fs = std::filesystem;

namespace {

// The table of temporaries in flight. A slot is free (0), being filled (1) or registered (2);
// the signal handler reads only registered slots, whose path is complete.
constexpr int kMaxTemporaries = 16;
constexpr size_t kMaxTemporaryPath = 4096;
struct TemporarySlot {
  std::atomic<int> state{0};
  char path[kMaxTemporaryPath];
};
TemporarySlot g_temporaries[kMaxTemporaries];

// DIPPAS_FAULT_WRITE_LIMIT: its last value seen and the bytes written since.
std::mutex g_fault_mutex;
std::string g_fault_value;
long long g_fault_written = 0;

}  // namespace

ssize_t PwriteWithFaults(int fd, const void* data, size_t size, off_t offset) {
  const char* env = std::getenv("DIPPAS_FAULT_WRITE_LIMIT");
  std::lock_guard<std::mutex> lock(g_fault_mutex);
  const std::string value = env ? env : "";
  if (value != g_fault_value) {
    g_fault_value = value;
    g_fault_written = 0;
  }
  if (value.empty()) return pwrite(fd, data, size, offset);
  char* end = nullptr;
  errno = 0;
  const long long limit = std::strtoll(value.c_str(), &end, 10);
  if (errno != 0 || *end != '\0' || limit < 0) {
    errno = EINVAL;  // a malformed hook value fails loudly rather than being ignored
    return -1;
  }
  const long long left = limit - g_fault_written;
  if (left <= 0) {
    errno = ENOSPC;
    return -1;
  }
  const size_t n = std::min(size, static_cast<size_t>(left));
  const ssize_t written = pwrite(fd, data, n, offset);
  if (written > 0) g_fault_written += written;
  return written;
}

int RegisterTemporaryFile(const std::string& path) noexcept {
  if (path.size() >= kMaxTemporaryPath) return -1;
  for (int i = 0; i < kMaxTemporaries; ++i) {
    int expected = 0;
    if (!g_temporaries[i].state.compare_exchange_strong(expected, 1)) continue;
    std::memcpy(g_temporaries[i].path, path.c_str(), path.size() + 1);
    g_temporaries[i].state.store(2);
    return i;
  }
  return -1;
}

void UnregisterTemporaryFile(int handle) noexcept {
  if (handle >= 0 && handle < kMaxTemporaries) g_temporaries[handle].state.store(0);
}

void RemoveTemporaryFiles() noexcept {
  for (auto& slot : g_temporaries) {
    if (slot.state.load() == 2) unlink(slot.path);
  }
}

namespace {

// A complete, fsync'd temporary beside `path` holding `bytes`, registered for signal-time removal.
struct Temporary {
  std::string path;
  int slot = -1;
};

Temporary WriteTemporary(const std::string& path, const std::string& bytes) {
  const fs::path target(path);
  const fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    throw IoError(path + ": cannot write: folder '" + dir.string() + "' does not exist");
  }
  if (fs::is_directory(target, ec)) {
    throw IoError(path + ": cannot write: it is a directory");
  }
  std::string tmpl = (dir / ("." + target.filename().string() + ".tmp-XXXXXX")).string();
  std::vector<char> name(tmpl.begin(), tmpl.end());
  name.push_back('\0');
  const int fd = mkstemp(name.data());
  if (fd < 0) {
    throw IoError(path + ": cannot write: " + std::strerror(errno));
  }
  const std::string tmp(name.data());
  const int slot = RegisterTemporaryFile(tmp);
  auto fail = [&](const std::string& what) {
    const std::string reason = std::strerror(errno);
    close(fd);
    std::remove(tmp.c_str());
    UnregisterTemporaryFile(slot);
    throw IoError(path + ": " + what + ": " + reason);
  };
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n =
        PwriteWithFaults(fd, bytes.data() + done, bytes.size() - done, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n == 0) errno = ENOSPC;  // no progress: report it as the full disk it is
    if (n <= 0) fail("write failed");
    done += static_cast<size_t>(n);
  }
  if (fsync(fd) != 0) fail("write failed (fsync)");
  // mkstemp creates 0600; give the usual permissions of a new file.
  const mode_t mask = umask(0);
  umask(mask);
  fchmod(fd, 0666 & ~mask);
  if (close(fd) != 0) {
    const std::string reason = std::strerror(errno);
    std::remove(tmp.c_str());
    UnregisterTemporaryFile(slot);
    throw IoError(path + ": write failed: " + reason);
  }
  return {tmp, slot};
}

// The commit gate: open (0), aborting (1) or committing (2); see BeginOutputCommit.
std::atomic<int> g_output_gate{0};
static_assert(std::atomic<int>::is_always_lock_free, "the gate is used from signal handlers");

}  // namespace

void WriteFileAtomic(const std::string& path, const std::string& bytes) {
  const Temporary t = WriteTemporary(path, bytes);
  if (std::rename(t.path.c_str(), path.c_str()) != 0) {
    const std::string reason = std::strerror(errno);
    std::remove(t.path.c_str());
    UnregisterTemporaryFile(t.slot);
    throw IoError(path + ": cannot rename into place: " + reason);
  }
  UnregisterTemporaryFile(t.slot);
}

bool BeginOutputCommit() noexcept {
  int expected = 0;
  return g_output_gate.compare_exchange_strong(expected, 2) || expected == 2;
}

bool BeginAbort() noexcept {
  int expected = 0;
  return g_output_gate.compare_exchange_strong(expected, 1) || expected == 1;
}

OutputSet::~OutputSet() {
  if (committed_) return;
  for (const auto& e : entries_) {
    std::remove(e.temporary.c_str());
    UnregisterTemporaryFile(e.slot);
  }
}

void OutputSet::Stage(const std::string& path, const std::string& bytes) {
  const Temporary t = WriteTemporary(path, bytes);
  entries_.push_back({t.path, path, t.slot, false});
}

void OutputSet::Adopt(const std::string& temporary, const std::string& path, int slot, bool remove_first) {
  entries_.push_back({temporary, path, slot, remove_first});
}

void TestSignalPoint(const char* point) noexcept {
  const char* at = std::getenv("DIPPAS_TEST_SIGNAL_AT");
  if (at == nullptr) return;
  // A comma-separated list: a signal at each point named.
  const size_t n = std::strlen(point);
  bool named = false;
  for (const char* p = at; *p != '\0' && !named;) {
    const char* end = std::strchr(p, ',');
    const size_t len = end != nullptr ? static_cast<size_t>(end - p) : std::strlen(p);
    named = len == n && std::strncmp(p, point, n) == 0;
    p = end != nullptr ? end + 1 : p + len;
  }
  if (!named) return;
  // DIPPAS_TEST_SIGNAL picks the signal: INT (default), TERM, USR1, or KILL (a crash).
  const char* name = std::getenv("DIPPAS_TEST_SIGNAL");
  int sig = SIGINT;
  if (name != nullptr && std::strcmp(name, "TERM") == 0) sig = SIGTERM;
  if (name != nullptr && std::strcmp(name, "USR1") == 0) sig = SIGUSR1;
  if (name != nullptr && std::strcmp(name, "KILL") == 0) sig = SIGKILL;
  // raise(): delivered to this very thread before it returns, so the timing is exact.
  raise(sig);
}

void OutputSet::Commit() {
  if (committed_) throw std::logic_error("OutputSet::Commit called twice");
  TestSignalPoint("staged");
  if (!BeginOutputCommit()) {
    // A signal handler is removing the temporaries and exiting: let it finish.
    for (;;) pause();
  }
  TestSignalPoint("committing");
  committed_ = true;
  for (const auto& e : entries_) {
    if (e.remove_first && std::remove(e.path.c_str()) != 0 && errno != ENOENT) {
      throw IoError(e.path + ": cannot replace: " + std::strerror(errno));
    }
  }
  for (const auto& e : entries_) {
    if (std::rename(e.temporary.c_str(), e.path.c_str()) != 0) {
      const std::string reason = std::strerror(errno);
      for (const auto& f : entries_) {
        std::remove(f.temporary.c_str());
        UnregisterTemporaryFile(f.slot);
      }
      throw IoError(e.path + ": cannot rename into place: " + reason);
    }
    UnregisterTemporaryFile(e.slot);
  }
}

std::string ReadFileBytes(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) throw IoError(path + ": no such file");
  if (fs::is_directory(path, ec)) throw IoError(path + ": is a directory, expected a file");
  // O_NONBLOCK: opening a FIFO must not wait for a writer; fstat then refuses it.
  const int fd = open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) throw IoError(path + ": cannot open: " + std::strerror(errno));
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    throw IoError(path + ": not a regular file (a FIFO, device or socket cannot be read as input)");
  }
  if (st.st_size > kMaxInputFileBytes) {
    close(fd);
    throw IoError(path + ": file is " + std::to_string(st.st_size) +
                  " bytes, above the limit of 2 GiB for an input file");
  }
  std::string bytes(static_cast<size_t>(st.st_size), '\0');
  size_t done = 0;
  for (;;) {
    if (done == bytes.size()) {
      // The file may have grown since fstat: keep reading, within the limit.
      if (static_cast<int64_t>(bytes.size()) >= kMaxInputFileBytes) {
        char extra;
        const ssize_t n = read(fd, &extra, 1);
        close(fd);
        if (n > 0) throw IoError(path + ": file grew above the limit of 2 GiB for an input file");
        if (n < 0) throw IoError(path + ": read error: " + std::strerror(errno));
        return bytes;
      }
      bytes.resize(std::min<size_t>(bytes.size() + 65536, static_cast<size_t>(kMaxInputFileBytes)));
    }
    const ssize_t n = read(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const std::string reason = std::strerror(errno);
      close(fd);
      throw IoError(path + ": read error: " + reason);
    }
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  close(fd);
  bytes.resize(done);
  return bytes;
}

}  // namespace dippas
