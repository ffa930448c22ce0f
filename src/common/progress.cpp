#include "common/progress.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>

namespace evomerge {

namespace {
std::atomic<bool> g_enabled{true};
}

void Progress::set_global_enabled(bool enabled) {
  g_enabled = enabled;
}

std::string format_bytes(double bytes) {
  const char* units[] = {"B", "kB", "MB", "GB", "TB"};
  int u = 0;
  while (bytes >= 1000.0 && u < 4) {
    bytes /= 1000.0;
    ++u;
  }
  return u == 0 ? fmt::format("{:.0f} {}", bytes, units[u])
                : fmt::format("{:.2f} {}", bytes, units[u]);
}

std::string format_duration(double seconds) {
  if (seconds < 0) seconds = 0;
  if (seconds < 60) return fmt::format("{:.1f}s", seconds);
  auto s = static_cast<long>(seconds + 0.5);
  if (s < 3600) return fmt::format("{}m{:02d}s", s / 60, static_cast<int>(s % 60));
  return fmt::format("{}h{:02d}m", s / 3600, static_cast<int>((s % 3600) / 60));
}

Progress::Progress(std::string label, uint64_t total, std::string unit, bool enabled,
                   ProgressOutput output)
    : label_(std::move(label)),
      unit_(std::move(unit)),
      total_(total),
      enabled_(enabled && g_enabled.load()),
      output_(output),
      tty_(isatty(fileno(output.stream)) != 0),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

Progress::~Progress() {
  if (!finished_) finish();
}

void Progress::set_note(std::string note) {
  std::lock_guard lock(mutex_);
  note_ = std::move(note);
}

void Progress::add(uint64_t units, uint64_t bytes) {
  done_ += units;
  bytes_ += bytes;
  if (!enabled_) return;
  auto now = std::chrono::steady_clock::now();
  const auto interval = tty_ ? output_.tty_interval : output_.log_interval;
  std::unique_lock lock(mutex_, std::try_to_lock);
  if (!lock.owns_lock() || now - last_draw_ < interval) return;
  last_draw_ = now;
  draw(false);
}

void Progress::finish() {
  std::lock_guard lock(mutex_);
  if (finished_) return;
  finished_ = true;
  if (enabled_) draw(true);
}

void Progress::draw(bool final_line) {
  double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  uint64_t done = done_, total = total_, bytes = bytes_;
  double rate = elapsed > 0 ? done / elapsed : 0.0;
  std::string counts =
      total ? fmt::format("{}/{} {}", done, total, unit_) : fmt::format("{} {}", done, unit_);
  std::string extra = fmt::format("{:.1f} {}/s", rate, unit_);
  if (bytes) extra += fmt::format(", {}/s", format_bytes(elapsed > 0 ? bytes / elapsed : 0.0));
  std::string eta;
  if (!final_line && total && done && done < total && rate > 0)
    eta = " ETA " + format_duration((total - done) / rate);
  std::string note = note_.empty() ? "" : "  " + note_;
  if (tty_) {
    std::string bar;
    if (total) {
      const int width = 24;
      int filled = static_cast<int>(width * std::min(1.0, static_cast<double>(done) / total));
      bar = "[" + std::string(filled, '#') + std::string(width - filled, '.') + "] ";
    }
    std::fprintf(output_.stream, "\r\033[K%s %s%s (%s, %s%s)%s", label_.c_str(), bar.c_str(),
                 counts.c_str(), extra.c_str(), format_duration(elapsed).c_str(), eta.c_str(),
                 note.c_str());
    if (final_line) std::fputc('\n', output_.stream);
  } else {
    std::fprintf(output_.stream, "%s: %s (%s, %s%s)%s\n", label_.c_str(), counts.c_str(),
                 extra.c_str(), format_duration(elapsed).c_str(), eta.c_str(), note.c_str());
  }
  std::fflush(output_.stream);
}

}  // namespace evomerge
