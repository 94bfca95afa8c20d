// Outputs are never half-written: write to a temporary name in the target
// folder, then rename into place.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <string>
#include <vector>

namespace dippas {

// Writes `bytes` to `path` through a temporary file in the same folder and an
// atomic rename. On any error the temporary is removed, `path` is untouched,
// and IoError (from npy.h) is thrown naming the file.
void WriteFileAtomic(const std::string& path, const std::string& bytes);

// Reads a whole file; IoError naming the file if it is missing, a directory, not a regular file
// (FIFO, device, socket), larger than kMaxInputFileBytes (limits.h) or unreadable.
std::string ReadFileBytes(const std::string& path);

// --- Write faults and signal-time cleanup (shared with PoolWriter) ----------------------

// pwrite(2) with a test hook. When the environment variable DIPPAS_FAULT_WRITE_LIMIT=N is set
// (N bytes, a non-negative integer), the writes of this process through this function stop
// after N bytes in total: the write that crosses the limit is short, later ones fail with
// ENOSPC, as on a full disk. The count restarts whenever the variable's value changes. Used
// by the tests where no small file system can be mounted; without the variable it is pwrite.
ssize_t PwriteWithFaults(int fd, const void* data, size_t size, off_t offset);

// Temporary files in flight, so that a signal handler that exits at once can delete them.
// Register returns a handle for Unregister, or -1 when the table (16 entries) is full or the
// path too long; the file is then only removed by its owner's ordinary cleanup.
int RegisterTemporaryFile(const std::string& path) noexcept;
void UnregisterTemporaryFile(int handle) noexcept;

// Deletes every registered temporary file. Async-signal-safe (unlink(2) only): for a
// signal handler about to call _exit, so that no partial file is left behind.
void RemoveTemporaryFiles() noexcept;

// --- The outputs of a run, committed as one step ---------------------------------------------
//
// A run's outputs (image, metrics, history, pool) are first written completely to registered
// temporaries, then renamed into place together. A second Ctrl-C must leave either all of
// them (exit 3) or none (exit 130), whatever its timing: the process-wide gate below decides
// which of the two happens first, the commit or the abort, and the other one then yields.

// Called by the run before its first rename: true when the commit may go ahead (an abort can
// no longer start), false when a signal handler has already begun to abort.
bool BeginOutputCommit() noexcept;

// Called by a signal handler that wants to exit at once: true when it may abort (remove the
// registered temporaries and _exit), false when a commit has begun, which the handler must
// then let finish. Async-signal-safe (one lock-free compare-and-swap).
bool BeginAbort() noexcept;

// Test hook: when the environment variable DIPPAS_TEST_SIGNAL_AT names `point` (one point, or
// several separated by commas), the calling thread sends itself SIGINT, or the signal
// DIPPAS_TEST_SIGNAL names (TERM, USR1, KILL) (raise: handled before this returns, so the timing
// is exact). Points: "before-loop", "iteration-N" (N iterations run by this process),
// "tiles-done-N" (N tiles finished), "after-loop" (the run's last iteration done, before its
// outputs are made), "staged" (outputs written, before the commit), "committing" (the commit
// begun). See docs/hardening.md, test hooks.
void TestSignalPoint(const char* point) noexcept;

// Outputs staged in temporaries beside their targets; nothing appears under a final name before
// Commit(). The destructor removes what was not committed.
class OutputSet {
 public:
  OutputSet() = default;
  OutputSet(const OutputSet&) = delete;
  OutputSet& operator=(const OutputSet&) = delete;
  ~OutputSet();

  // Writes `bytes` completely (fsync'd) to a registered temporary beside `path`; IoError naming
  // `path` on failure (nothing is left behind).
  void Stage(const std::string& path, const std::string& bytes);

  // Takes over a temporary written by someone else (e.g. the pool's), registered under `slot`
  // (RegisterTemporaryFile), to be renamed to `path` by Commit(). With `remove_first`, the old
  // `path` is removed before the renames start.
  void Adopt(const std::string& temporary, const std::string& path, int slot, bool remove_first = false);

  // Passes the gate (BeginOutputCommit; if an abort won it, waits for the handler's _exit) and
  // renames every staged file into place in staging order. IoError naming the file on failure.
  void Commit();

 private:
  struct Entry {
    std::string temporary, path;
    int slot = -1;
    bool remove_first = false;
  };
  std::vector<Entry> entries_;
  bool committed_ = false;
};

}  // namespace dippas
