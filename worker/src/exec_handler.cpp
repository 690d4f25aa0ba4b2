// exec:COMMAND: one /bin/sh -c COMMAND per task, in its own process group.
//
// posix_spawn (glibc: clone(CLONE_VM|CLONE_VFORK), so it is cheap and safe from many threads);
// every pipe is O_CLOEXEC so a child spawned by another handler thread never inherits another
// task's pipes; the parent writes stdin and reads stdout/stderr in one poll() loop so neither
// side can deadlock on a full pipe. The child is reaped in every path (no zombies) and the
// group is SIGKILLed while its leader is still an unreaped zombie, so the group id cannot have
// been reused.

#include <topicflow/clock.hpp>
#include <topicflow/handler.hpp>
#include <topicflow/log.hpp>
#include <topicflow/utf8.hpp>

#include "subprocess.hpp"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <algorithm>
#include <array>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

namespace topicflow {
namespace {

using namespace subprocess;  // NOLINT(google-build-using-namespace): this file's toolbox

constexpr int kExitTempFail = 75;      // EX_TEMPFAIL
constexpr std::int64_t kSliceMs = 20;  // how often a running command checks its token
constexpr std::int64_t kDrainMs = 50;  // after exit, how long to wait for pipes still held open

}  // namespace

ExecHandler::ExecHandler(std::string command, const HandlerOptions& options)
    : command_(std::move(command)), options_(options) {
  if (command_.empty()) throw std::invalid_argument("exec handler: empty command");
}

Outcome ExecHandler::handle(const TaskView& task, const CancelToken& cancel) {
  const auto started = steady_ms();
  Pipe in = make_pipe();
  Pipe out = make_pipe();
  Pipe err = make_pipe();

  pid_t pid = -1;
  if (const int rc = spawn_shell(command_, child_environment(task), in.read.get(), out.write.get(),
                                 err.write.get(), pid);
      rc != 0) {
    return Outcome::failed(errno_text("cannot start /bin/sh", rc), true);
  }
  in.read.reset();
  out.write.reset();
  err.write.reset();
  const Fd pidfd = open_pidfd(pid);

  std::string result;
  std::string errors;
  bool truncated = false;
  std::size_t written = 0;
  bool exited = false;
  std::int64_t exited_at = 0;
  enum class Stop : std::uint8_t { none, timeout, cancelled, internal } stop = Stop::none;
  std::string internal_error;

  try {
    SigpipeGuard sigpipe;
    set_nonblocking(in.write.get());
    set_nonblocking(out.read.get());
    set_nonblocking(err.read.get());
    if (task.payload.empty()) in.write.reset();

    std::array<char, 65536> buffer{};
    for (;;) {
      if (!exited && has_exited(pid)) {
        exited = true;
        exited_at = steady_ms();
      }
      const bool outputs_open = out.read.open() || err.read.open();
      if (exited && (!outputs_open || steady_ms() - exited_at >= kDrainMs)) break;
      const auto now = steady_ms();
      if (cancel.expired()) {
        stop = Stop::timeout;
        break;
      }
      if (cancel.cancelled()) {
        stop = Stop::cancelled;
        break;
      }

      std::array<pollfd, 4> fds{};
      nfds_t n = 0;
      auto add = [&](const Fd& fd, short events) {
        if (fd.open()) fds[n++] = pollfd{fd.get(), events, 0};
      };
      add(out.read, POLLIN);
      add(err.read, POLLIN);
      add(in.write, POLLOUT);
      if (!exited) add(pidfd, POLLIN);
      // Without a pidfd, only the pipes wake us: tick fast once they are closed.
      const std::int64_t tick = exited ? 5 : (pidfd.open() || outputs_open ? kSliceMs : 2);
      const auto slice = std::min(tick, cancel.deadline_ms() - now);
      const int ready = ::poll(fds.data(), n, static_cast<int>(std::max<std::int64_t>(slice, 0)));
      if (ready < 0) {
        if (errno == EINTR) continue;
        throw std::runtime_error(errno_text("poll", errno));
      }
      for (nfds_t i = 0; i < n; ++i) {
        if (fds[i].revents == 0) continue;
        const int fd = fds[i].fd;
        if (fd == pidfd.get()) continue;  // exit is confirmed by has_exited() at the loop top
        if (in.write.open() && fd == in.write.get()) {
          const auto left = task.payload.substr(written);
          const auto w = ::write(fd, left.data(), std::min<std::size_t>(left.size(), 65536));
          if (w >= 0) {
            written += static_cast<std::size_t>(w);
            if (written == task.payload.size()) in.write.reset();  // EOF for the child
          } else if (errno == EPIPE) {
            sigpipe.saw_epipe();
            in.write.reset();  // the command does not want (the rest of) its input
          } else if (errno != EAGAIN && errno != EINTR) {
            in.write.reset();
          }
          continue;
        }
        const bool is_out = out.read.open() && fd == out.read.get();
        const auto r = ::read(fd, buffer.data(), buffer.size());
        if (r > 0) {
          const auto got = static_cast<std::size_t>(r);
          if (is_out) {
            const auto room =
                options_.max_result_bytes - std::min(result.size(), options_.max_result_bytes);
            result.append(buffer.data(), std::min(got, room));
            if (got > room) truncated = true;
          } else {
            errors.append(buffer.data(), got);
            if (errors.size() > 2 * options_.max_error_bytes + buffer.size()) {
              errors.erase(0, errors.size() - options_.max_error_bytes);
            }
          }
        } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
          (is_out ? out.read : err.read).reset();
        }
      }
    }
  } catch (const std::exception& e) {
    stop = Stop::internal;
    internal_error = e.what();
  }

  // Kill whatever is left of the group (everything, on timeout or cancel; background leftovers
  // after a normal exit), then reap the leader: no zombies, and no stray grandchildren.
  ::kill(-pid, SIGKILL);
  const int status = reap(pid);
  const auto elapsed = steady_ms() - started;

  switch (stop) {
    case Stop::timeout:
      return Outcome::failed("timed out after " + std::to_string(cancel.timeout_ms()) + " ms",
                             true);
    case Stop::cancelled: return Outcome::failed("cancelled", true);
    case Stop::internal: return Outcome::failed("exec handler: " + internal_error, true);
    case Stop::none: break;
  }
  if (status < 0) return Outcome::failed(errno_text("waitpid", errno), true);
  if (WIFEXITED(status)) {
    const int code = WEXITSTATUS(status);
    if (code == 0) {
      if (truncated)
        spdlog::debug("exec: {}/{}: result truncated to {} bytes", task.job, task.key,
                      result.size());
      return Outcome::completed(std::move(result));
    }
    auto tail = error_tail(std::move(errors), options_.max_error_bytes);
    std::string error = "exit status " + std::to_string(code);
    if (!tail.empty()) error += ": " + tail;
    return Outcome::failed(std::move(error), code == kExitTempFail);
  }
  if (WIFSIGNALED(status)) {
    std::string error = "killed by signal " + std::to_string(WTERMSIG(status));
    if (const char* name = ::sigabbrev_np(WTERMSIG(status)))
      error += std::string(" (SIG") + name + ")";
    error += " after " + std::to_string(elapsed) + " ms";
    auto tail = error_tail(std::move(errors), options_.max_error_bytes);
    if (!tail.empty()) error += ": " + tail;
    return Outcome::failed(std::move(error), true);
  }
  return Outcome::failed("unexpected wait status " + std::to_string(status), true);
}

}  // namespace topicflow
