// Cooperative interruption (Ctrl-C, `kill`): the first SIGINT or SIGTERM only sets a flag, which
// long work polls at points where stopping loses nothing (a search after committing a generation,
// the final stage between rows), so it commits what it has, says what was kept and how to resume,
// and exits 130 (SIGINT) or 143 (SIGTERM). A second signal stops at once: a one-line message and
// the same status, without unwinding (the run store stays consistent: SQLite commits are atomic).
#pragma once

namespace evomerge {

// Installs the handlers for SIGINT and SIGTERM (idempotent).
void install_interrupt_handlers();

// True once SIGINT or SIGTERM arrived.
bool interrupt_requested();

// The signal number that arrived first (0 if none).
int interrupt_signal();

// The exit status for it: 128 + the signal number (130 for SIGINT, 143 for SIGTERM).
int interrupt_exit_status();

// For tests: forget an earlier request.
void clear_interrupt_request();

}  // namespace evomerge
