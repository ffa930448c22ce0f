// Cooperative interruption (Ctrl-C, `kill`): the first SIGINT or SIGTERM only sets a flag, which
// long work polls at points where stopping loses nothing (a search after committing a generation,
// the final stage between rows), so it commits what it has, says what was kept and how to resume,
// and exits 130 (SIGINT) or 143 (SIGTERM). A second signal stops at once: a one-line message and
// the same status, without unwinding (the run store stays consistent: SQLite commits are atomic).
#pragma once

#include <string>

namespace evomerge {

// Installs the handlers for SIGINT and SIGTERM (idempotent).
void install_interrupt_handlers();

// For work with no point where stopping keeps anything (a merge writes into a hidden staging
// folder that appears only when complete; eval writes its results when scoring ends): the first
// SIGINT or SIGTERM writes `message` (what was kept, how to resume; truncated to 1 KiB) to stderr
// and exits 128 + the signal number at once.
void install_immediate_interrupt(const std::string& message);

// The process group of a running child that lives in its own group (an external evaluator, which
// a terminal's Ctrl-C does not reach): an immediate interrupt kills it before exiting. 0: none.
// One slot: `evomerge eval` runs its external tasks one at a time.
void set_interrupt_child_group(long pgid);

// True once SIGINT or SIGTERM arrived.
bool interrupt_requested();

// The signal number that arrived first (0 if none).
int interrupt_signal();

// The exit status for it: 128 + the signal number (130 for SIGINT, 143 for SIGTERM).
int interrupt_exit_status();

// For tests: forget an earlier request.
void clear_interrupt_request();

}  // namespace evomerge
