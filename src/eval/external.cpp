#include "eval/external.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <fmt/format.h>
#include <vector>

#include "common/error.h"
#include "common/interrupt.h"
#include "common/json_limits.h"

namespace evomerge::eval {

namespace fs = std::filesystem;

namespace {

constexpr size_t kMaxStdout = size_t{16} << 20;
constexpr size_t kStderrTail = 8192;

std::string tail_lines(const std::string& s, size_t max_bytes) {
  if (s.size() <= max_bytes) return s;
  size_t start = s.size() - max_bytes;
  size_t nl = s.find('\n', start);
  return "..." + s.substr(nl != std::string::npos && nl + 1 < s.size() ? nl + 1 : start);
}

}  // namespace

bool parse_external_output(std::string_view out, const std::string& key, double* score, nlohmann::json* object,
                           std::string* error) {
  nlohmann::json obj;
  bool found = false;
  if (json_nesting_depth(out) > kMaxJsonDepth) {
    *error = fmt::format("printed JSON nested deeper than {} levels", kMaxJsonDepth);
    return false;
  }
  try {
    auto j = nlohmann::json::parse(out);
    if (j.is_object()) obj = std::move(j), found = true;
  } catch (const nlohmann::json::exception&) {
  }
  if (!found) {
    // The last line that is a JSON object (tools often log before printing the result).
    size_t end = out.size();
    while (end > 0 && !found) {
      size_t start = out.rfind('\n', end - 1);
      start = start == std::string_view::npos ? 0 : start + 1;
      std::string_view line = out.substr(start, end - start);
      while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) line.remove_suffix(1);
      while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
      if (!line.empty() && line.front() == '{') {
        try {
          auto j = nlohmann::json::parse(line);
          if (j.is_object()) obj = std::move(j), found = true;
        } catch (const nlohmann::json::exception&) {
        }
      }
      end = start == 0 ? 0 : start - 1;
    }
  }
  if (!found) {
    *error = "printed no JSON object on stdout";
    return false;
  }
  *object = obj;
  const nlohmann::json* v = nullptr;
  if (obj.contains(key)) {
    v = &obj[key];
  } else {
    int numbers = 0;
    for (auto it = obj.begin(); it != obj.end(); ++it)
      if (it->is_number()) v = &*it, ++numbers;
    if (numbers != 1) {
      *error = fmt::format("printed a JSON object without a '{}' number: {}", key, obj.dump());
      return false;
    }
  }
  if (!v->is_number() || !std::isfinite(v->get<double>())) {
    *error = fmt::format("printed '{}' = {}, which is not a finite number", key, v->dump());
    return false;
  }
  *score = v->get<double>();
  return true;
}

ExternalResult run_external(const ExternalEvaluator& ev, const fs::path& model_dir, const fs::path& working_dir) {
  EM_ASSERT(!ev.command.empty());
  ExternalResult r;
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::string> args = ev.command;
  args.push_back(fs::absolute(model_dir).string());
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::string cwd = working_dir.empty() ? std::string(".") : working_dir.string();

  int out_pipe[2], err_pipe[2], exec_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0 || pipe2(err_pipe, O_CLOEXEC) != 0 || pipe2(exec_pipe, O_CLOEXEC) != 0)
    fail("eval", "external evaluator: cannot create pipes: {}", std::strerror(errno));
  pid_t pid = fork();
  if (pid < 0) fail("eval", "external evaluator: fork failed: {}", std::strerror(errno));
  if (pid == 0) {
    // Child: only async-signal-safe calls until exec. The evaluator gets default signal handling
    // (evomerge ignores SIGXFSZ and SIGPIPE-like dispositions would otherwise be inherited).
    setpgid(0, 0);
    signal(SIGXFSZ, SIG_DFL);
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, 0);
    dup2(out_pipe[1], 1);
    dup2(err_pipe[1], 2);
    int e = 0;
    if (chdir(cwd.c_str()) != 0) {
      e = errno;
    } else {
      execvp(argv[0], argv.data());
      e = errno;
    }
    // Tell the parent why exec failed (the pipe closes on a successful exec).
    ssize_t ignored = write(exec_pipe[1], &e, sizeof e);
    (void)ignored;
    _exit(127);
  }
  setpgid(pid, pid);  // also from the parent, so the group exists before any kill
  set_interrupt_child_group(pid);  // Ctrl-C of `evomerge eval` does not reach its own group
  close(out_pipe[1]);
  close(err_pipe[1]);
  close(exec_pipe[1]);

  std::string out, err;
  bool out_open = true, err_open = true;
  const auto deadline = t0 + std::chrono::duration<double>(ev.timeout_s);
  char buf[65536];
  while (out_open || err_open) {
    auto now = std::chrono::steady_clock::now();
    if (now >= deadline) {
      r.timed_out = true;
      break;
    }
    int ms = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count()) + 1;
    pollfd fds[2];
    int nf = 0;
    if (out_open) fds[nf++] = {out_pipe[0], POLLIN, 0};
    if (err_open) fds[nf++] = {err_pipe[0], POLLIN, 0};
    int pr = poll(fds, nf, std::min(ms, 1000));
    if (pr < 0 && errno != EINTR) break;
    for (int k = 0; k < nf; ++k) {
      if (!(fds[k].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t n = read(fds[k].fd, buf, sizeof buf);
      bool is_out = fds[k].fd == out_pipe[0];
      if (n <= 0) {
        if (n < 0 && errno == EINTR) continue;
        (is_out ? out_open : err_open) = false;
        continue;
      }
      if (is_out) {
        if (out.size() < kMaxStdout) out.append(buf, static_cast<size_t>(std::min<size_t>(n, kMaxStdout - out.size())));
      } else {
        err.append(buf, static_cast<size_t>(n));
        if (err.size() > 4 * kStderrTail) err.erase(0, err.size() - 2 * kStderrTail);
      }
    }
  }
  if (r.timed_out) kill(-pid, SIGKILL);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!r.timed_out) kill(-pid, SIGKILL);  // leftover children of the evaluator (ignored if none)
  set_interrupt_child_group(0);
  close(out_pipe[0]);
  close(err_pipe[0]);
  int exec_errno = 0;
  ssize_t got = read(exec_pipe[0], &exec_errno, sizeof exec_errno);
  close(exec_pipe[0]);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : WIFSIGNALED(status) ? -WTERMSIG(status) : -1;
  r.stderr_tail = tail_lines(err, kStderrTail);
  const std::string cmd = fmt::format("{}", fmt::join(ev.command, " "));
  auto with_stderr = [&](std::string what) {
    std::string tail = tail_lines(r.stderr_tail, 2000);
    if (!tail.empty()) what += "; stderr:\n" + tail;
    return what;
  };
  if (got == static_cast<ssize_t>(sizeof exec_errno)) {
    r.error = fmt::format("external evaluator '{}' could not start: {}", cmd, std::strerror(exec_errno));
    return r;
  }
  if (r.timed_out) {
    r.error = with_stderr(fmt::format("external evaluator '{}' timed out after {} s (killed)", cmd, ev.timeout_s));
    return r;
  }
  if (r.exit_status != 0) {
    r.error = with_stderr(r.exit_status > 0 ? fmt::format("external evaluator '{}' exited with status {}", cmd, r.exit_status)
                                            : fmt::format("external evaluator '{}' was killed by signal {}", cmd, -r.exit_status));
    return r;
  }
  std::string why;
  if (!parse_external_output(out, ev.score_key, &r.score, &r.output, &why)) {
    r.error = with_stderr(fmt::format("external evaluator '{}' {}", cmd, why));
    return r;
  }
  r.ok = true;
  return r;
}

}  // namespace evomerge::eval
