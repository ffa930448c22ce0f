// Progress output in its two forms: plain lines in a log (a file), a redrawn bar on a terminal (a
// pseudo-terminal here); nothing when disabled or switched off globally (--quiet).
#include "common/progress.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <pty.h>
#include <unistd.h>

#include <regex>
#include <sstream>
#include <string>
#include <vector>

namespace evomerge {
namespace {

std::string read_all(std::FILE* f) {
  std::fflush(f);
  std::rewind(f);
  std::string s;
  for (int c; (c = std::fgetc(f)) != EOF;) s += static_cast<char>(c);
  return s;
}

std::vector<std::string> lines_of(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

// A log line every add() (interval 0): counts, rate, elapsed and ETA; the final line has no ETA.
TEST(Progress, ALogGetsPlainLinesWithRateAndEta) {
  std::FILE* log = std::tmpfile();
  ASSERT_NE(log, nullptr);
  {
    Progress p("merge", 4, "tensors", true,
               {log, std::chrono::milliseconds(0), std::chrono::milliseconds(0)});
    p.add(1);
    p.set_note("1 kB written");
    p.add(2);
    p.add(1);
  }  // the destructor writes the final line
  const auto lines = lines_of(read_all(log));
  std::fclose(log);
  ASSERT_EQ(lines.size(), 4u);
  const std::regex running(R"(merge: 1/4 tensors \([0-9.]+ tensors/s, [0-9.]+s ETA [0-9.hms]+\))");
  EXPECT_TRUE(std::regex_match(lines[0], running)) << lines[0];
  EXPECT_TRUE(std::regex_match(
      lines[1],
      std::regex(
          R"(merge: 3/4 tensors \([0-9.]+ tensors/s, [0-9.]+s ETA [0-9.hms]+\)  1 kB written)")))
      << lines[1];
  // Done: no ETA; the note stays.
  EXPECT_TRUE(std::regex_match(
      lines[2], std::regex(R"(merge: 4/4 tensors \([0-9.]+ tensors/s, [0-9.]+s\)  1 kB written)")))
      << lines[2];
  EXPECT_TRUE(std::regex_match(
      lines[3], std::regex(R"(merge: 4/4 tensors \([0-9.]+ tensors/s, [0-9.]+s\)  1 kB written)")))
      << lines[3];
  for (const auto& l : lines) EXPECT_EQ(l.find('\r'), std::string::npos) << "no redraws in a log";
}

// On a terminal: the line is redrawn in place (\r, clear to end of line) with a 24-cell bar.
TEST(Progress, ATerminalGetsARedrawnBar) {
  int master = -1, slave = -1;
  ASSERT_EQ(openpty(&master, &slave, nullptr, nullptr, nullptr), 0);
  std::FILE* tty = fdopen(slave, "w");
  ASSERT_NE(tty, nullptr);
  {
    Progress p("eval", 4, "items", true,
               {tty, std::chrono::milliseconds(0), std::chrono::milliseconds(0)});
    p.add(2);
    p.finish();
  }
  std::fclose(tty);  // closes `slave`: the master reads what was written, then EIO
  std::string out;
  char buf[512];
  for (ssize_t n; (n = ::read(master, buf, sizeof buf)) > 0;)
    out.append(buf, static_cast<size_t>(n));
  ::close(master);
  // Two draws of the same line (after add, and the final one), each from the line's start.
  const std::string half = "\r\033[Keval [############............] 2/4 items (";
  const auto first = out.find(half), last = out.rfind(half);
  ASSERT_NE(first, std::string::npos) << out;
  ASSERT_NE(last, first) << out;
  EXPECT_NE(out.substr(first, last - first).find(" ETA "), std::string::npos) << out;
  EXPECT_EQ(out.substr(last).find(" ETA "), std::string::npos) << "the final draw has no ETA";
  // One line on the screen: the only newline ends it (the terminal turns it into \r\n).
  EXPECT_EQ(out.find('\n'), out.size() - 1) << out;
}

TEST(Progress, DisabledOrQuietWritesNothing) {
  std::FILE* log = std::tmpfile();
  ASSERT_NE(log, nullptr);
  {
    Progress off("merge", 2, "tensors", false, {log, {}, std::chrono::milliseconds(0)});
    off.add(2);
  }
  Progress::set_global_enabled(false);
  {
    Progress quiet("merge", 2, "tensors", true, {log, {}, std::chrono::milliseconds(0)});
    quiet.add(2);
  }
  Progress::set_global_enabled(true);
  EXPECT_EQ(read_all(log), "");
  std::fclose(log);
}

}  // namespace
}  // namespace evomerge
