// Progress reporting for long work: a redrawn bar with rate and ETA when stderr is a terminal,
// plain periodic lines otherwise (logs, CI). Thread-safe: add() may be called from workers.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <mutex>
#include <string>

namespace evomerge {

// Where a Progress writes and how often: a terminal is redrawn at most every `tty_interval`, a log
// gets a line every `log_interval` (tests shorten it); the final line is always written.
struct ProgressOutput {
  std::FILE* stream = stderr;  // a terminal when isatty(fileno(stream))
  std::chrono::milliseconds tty_interval{100};
  std::chrono::milliseconds log_interval{10000};
};

class Progress {
 public:
  // total: number of units (0 if unknown); unit: e.g. "tensors", "items"; bytes_total optional.
  Progress(std::string label, uint64_t total, std::string unit, bool enabled = true,
           ProgressOutput output = {});
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  void add(uint64_t units, uint64_t bytes = 0);
  void set_total(uint64_t total) { total_ = total; }
  void set_note(std::string note);  // short status text shown after the counts
  void finish();                    // prints the final line once

  // Global switch (the CLI's --quiet, tests).
  static void set_global_enabled(bool enabled);

 private:
  void draw(bool final_line);

  std::string label_;
  std::string unit_;
  std::string note_;
  std::atomic<uint64_t> total_;
  std::atomic<uint64_t> done_{0};
  std::atomic<uint64_t> bytes_{0};
  bool enabled_;
  ProgressOutput output_;
  bool tty_;
  bool finished_ = false;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_draw_;
  std::mutex mutex_;
};

// "1.23 GB", "512 B"
std::string format_bytes(double bytes);
// "1h02m", "3m05s", "12.3s"
std::string format_duration(double seconds);

}  // namespace evomerge
