#include "common/interrupt.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstring>

namespace evomerge {

namespace {

std::atomic<int> g_signal{0};

extern "C" void on_interrupt(int sig) {
  int expected = 0;
  if (g_signal.compare_exchange_strong(expected, sig)) {
    static const char msg[] =
        "\nevomerge: interrupted; finishing the current step and saving (interrupt again to stop "
        "now)\n";
    [[maybe_unused]] const ssize_t w = ::write(2, msg, sizeof msg - 1);
    return;
  }
  // Second signal: stop now. Only async-signal-safe calls here.
  static const char msg[] =
      "\nevomerge: stopped at once; what was committed before is kept, run the same command to "
      "resume\n";
  [[maybe_unused]] const ssize_t w = ::write(2, msg, sizeof msg - 1);
  ::_exit(128 + g_signal.load());
}

// The message of install_immediate_interrupt, copied before the handler is installed (a signal
// handler may only read memory that is not being written).
char g_immediate_message[1024];
size_t g_immediate_length = 0;

std::atomic<long> g_child_group{0};

extern "C" void on_immediate_interrupt(int sig) {
  if (const long pgid = g_child_group.load(); pgid > 0) ::kill(static_cast<pid_t>(-pgid), SIGKILL);
  [[maybe_unused]] const ssize_t w = ::write(2, g_immediate_message, g_immediate_length);
  ::_exit(128 + sig);
}

}  // namespace

void install_immediate_interrupt(const std::string& message) {
  g_immediate_length = std::min(message.size(), sizeof g_immediate_message);
  std::memcpy(g_immediate_message, message.data(), g_immediate_length);
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_immediate_interrupt;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

void set_interrupt_child_group(long pgid) {
  g_child_group.store(pgid);
}

void install_interrupt_handlers() {
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_interrupt;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;  // reads and writes continue; the flag is polled
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

bool interrupt_requested() {
  return g_signal.load() != 0;
}

int interrupt_signal() {
  return g_signal.load();
}

int interrupt_exit_status() {
  return 128 + g_signal.load();
}

void clear_interrupt_request() {
  g_signal.store(0);
}

}  // namespace evomerge
