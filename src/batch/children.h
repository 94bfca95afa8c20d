// The batch's child processes: one `dippas anonymize` per item, run in OUT in its own process
// group, the signals the batch counts before forwarding them, and what a child leaves behind.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <filesystem>
#include <string>
#include <vector>

#include "dippas/batch/batch.h"

namespace dippas::detail {

// SIGINT (a terminal's Ctrl-C) apart from SIGTERM/SIGUSR1 (a scheduler's preemption or time
// limit warning, which Slurm may deliver twice): only a second SIGINT kills the children.
extern std::atomic<int> g_sigints;
extern std::atomic<int> g_sigterms;

// Zeroes both counts and counts SIGINT, SIGTERM and SIGUSR1 from here on.
void InstallBatchSignals();

// A killed child (second Ctrl-C, SIGKILL) can leave the atomic writer's temporaries
// (".NAME.tmp-XXXXXX"): beside its outputs, and in its checkpoint folder, which a first Ctrl-C
// has the child write while the second one kills it.
void RemoveStaleTemporaries(const BatchItem& item);

// The child's error message: the last non-blank line of its stderr in the latest run, without
// the prefix.
std::string LastLine(const std::filesystem::path& log);

// Starts `argv` in `out` with stderr to `log`, in its own process group (so a terminal's
// Ctrl-C reaches the batch only, which forwards it once), ended with the batch if it dies.
pid_t Spawn(const std::vector<std::string>& args, const std::filesystem::path& out,
            const std::filesystem::path& log);

// The command line of one item's `dippas anonymize`, run in OUT.
std::vector<std::string> ChildArgs(const BatchOptions& opt, const std::vector<std::string>& configs,
                                   int threads, const BatchItem& item);

}  // namespace dippas::detail
