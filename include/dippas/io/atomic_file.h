// Outputs are never half-written: write to a temporary name in the target
// folder, then rename into place.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <string>

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

}  // namespace dippas
