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

#include <algorithm>
#include <array>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <spawn.h>
#include <stdexcept>
#include <string>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

extern char** environ;  // NOLINT: POSIX global

namespace topicflow {
namespace {

constexpr int kExitTempFail = 75;     // EX_TEMPFAIL
constexpr std::int64_t kSliceMs = 20;  // how often a running command checks its token
constexpr std::int64_t kDrainMs = 50;  // after exit, how long to wait for pipes still held open

std::string errno_text(const char* what, int err) { return std::string(what) + ": " + std::strerror(err); }

// A file descriptor that closes itself.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) noexcept : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) {
      reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }
  void reset() noexcept {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  [[nodiscard]] int get() const noexcept { return fd_; }
  [[nodiscard]] bool open() const noexcept { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

struct Pipe {
  Fd read;
  Fd write;
};

Pipe make_pipe() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error(errno_text("pipe2", errno));
  return Pipe{Fd(fds[0]), Fd(fds[1])};
}

void set_nonblocking(int fd) {
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) {
    throw std::runtime_error(errno_text("fcntl(O_NONBLOCK)", errno));
  }
}

// RAII for posix_spawn's two attribute objects.
struct SpawnAttrs {
  posix_spawnattr_t attr{};
  posix_spawn_file_actions_t actions{};
  SpawnAttrs() {
    if (::posix_spawnattr_init(&attr) != 0) throw std::runtime_error("posix_spawnattr_init failed");
    if (::posix_spawn_file_actions_init(&actions) != 0) {
      ::posix_spawnattr_destroy(&attr);
      throw std::runtime_error("posix_spawn_file_actions_init failed");
    }
  }
  ~SpawnAttrs() {
    ::posix_spawn_file_actions_destroy(&actions);
    ::posix_spawnattr_destroy(&attr);
  }
  SpawnAttrs(const SpawnAttrs&) = delete;
  SpawnAttrs& operator=(const SpawnAttrs&) = delete;
};

// Blocks SIGPIPE in this thread while we write the child's stdin, so that a command that exits
// without reading its input gives EPIPE instead of killing the process; swallows the SIGPIPE
// that such a write leaves pending before restoring the mask.
class SigpipeGuard {
 public:
  SigpipeGuard() {
    sigemptyset(&set_);
    sigaddset(&set_, SIGPIPE);
    ::pthread_sigmask(SIG_BLOCK, &set_, &old_);
  }
  ~SigpipeGuard() {
    if (got_epipe_) {
      const timespec zero{};
      while (::sigtimedwait(&set_, nullptr, &zero) == SIGPIPE) {
      }
    }
    ::pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  SigpipeGuard(const SigpipeGuard&) = delete;
  SigpipeGuard& operator=(const SigpipeGuard&) = delete;
  void saw_epipe() noexcept { got_epipe_ = true; }

 private:
  sigset_t set_{};
  sigset_t old_{};
  bool got_epipe_ = false;
};

std::vector<std::string> child_environment(const TaskView& task) {
  std::vector<std::string> env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    const std::string_view entry(*e);
    if (entry.starts_with("TOPICFLOW_JOB=") || entry.starts_with("TOPICFLOW_KEY=") ||
        entry.starts_with("TOPICFLOW_ATTEMPT=")) {
      continue;
    }
    env.emplace_back(entry);
  }
  env.push_back("TOPICFLOW_JOB=" + std::string(task.job));
  env.push_back("TOPICFLOW_KEY=" + std::string(task.key));
  env.push_back("TOPICFLOW_ATTEMPT=" + std::to_string(task.attempt));
  return env;
}

// The last `max` bytes of stderr as readable text: no partial UTF-8 sequence at the front,
// anything still invalid replaced by '?', trailing newlines dropped.
std::string error_tail(std::string text, std::size_t max) {
  if (text.size() > max) text.erase(0, text.size() - max);
  std::size_t skip = 0;
  while (skip < text.size() && skip < 3 && (static_cast<unsigned char>(text[skip]) & 0xC0U) == 0x80U) ++skip;
  text.erase(0, skip);
  if (!valid_utf8(text)) {
    for (char& c : text) {
      if (static_cast<unsigned char>(c) >= 0x80U) c = '?';
    }
  }
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  return text;
}

// True once `pid` has terminated, without reaping it (it stays a zombie holding its pid and
// process group id until waitpid()).
bool has_exited(pid_t pid) {
  siginfo_t info{};
  if (::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) != 0) return errno == ECHILD;
  return info.si_pid == pid;
}

// A descriptor that becomes readable when `pid` exits (Linux 5.3+), so the poll loop wakes at
// once instead of on its next tick; -1 where unavailable (the loop then ticks faster).
Fd open_pidfd(pid_t pid) {
#ifdef SYS_pidfd_open
  return Fd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));  // O_CLOEXEC by default
#else
  (void)pid;
  return Fd();
#endif
}

int reap(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return -1;
  }
  return status;
}

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

  SpawnAttrs spawn;
  // Child: stdin/stdout/stderr from the pipes (dup2 clears O_CLOEXEC on the copies; every
  // original is O_CLOEXEC and vanishes at exec), its own process group, no blocked signals,
  // default dispositions for what the worker ignores or catches.
  ::posix_spawn_file_actions_adddup2(&spawn.actions, in.read.get(), STDIN_FILENO);
  ::posix_spawn_file_actions_adddup2(&spawn.actions, out.write.get(), STDOUT_FILENO);
  ::posix_spawn_file_actions_adddup2(&spawn.actions, err.write.get(), STDERR_FILENO);
  sigset_t no_signals;
  sigemptyset(&no_signals);
  sigset_t defaults;
  sigemptyset(&defaults);
  for (int sig : {SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGQUIT}) sigaddset(&defaults, sig);
  ::posix_spawnattr_setsigmask(&spawn.attr, &no_signals);
  ::posix_spawnattr_setsigdefault(&spawn.attr, &defaults);
  ::posix_spawnattr_setpgroup(&spawn.attr, 0);
  ::posix_spawnattr_setflags(&spawn.attr, static_cast<short>(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                                              POSIX_SPAWN_SETSIGDEF));

  std::string sh = "/bin/sh";
  std::string dash_c = "-c";
  std::string command = command_;
  std::array<char*, 4> argv{sh.data(), dash_c.data(), command.data(), nullptr};
  auto env_strings = child_environment(task);
  std::vector<char*> envp;
  envp.reserve(env_strings.size() + 1);
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);

  pid_t pid = -1;
  if (const int rc = ::posix_spawn(&pid, sh.c_str(), &spawn.actions, &spawn.attr, argv.data(), envp.data()); rc != 0) {
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
      if (cancel.cancelled()) {
        stop = Stop::cancelled;
        break;
      }
      const auto now = steady_ms();
      if (now >= cancel.deadline_ms()) {
        stop = Stop::timeout;
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
            const auto room = options_.max_result_bytes - std::min(result.size(), options_.max_result_bytes);
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
      return Outcome::failed("timed out after " + std::to_string(cancel.timeout_ms()) + " ms", true);
    case Stop::cancelled:
      return Outcome::failed("cancelled", true);
    case Stop::internal:
      return Outcome::failed("exec handler: " + internal_error, true);
    case Stop::none:
      break;
  }
  if (status < 0) return Outcome::failed(errno_text("waitpid", errno), true);
  if (WIFEXITED(status)) {
    const int code = WEXITSTATUS(status);
    if (code == 0) {
      if (truncated) spdlog::debug("exec: {}/{}: result truncated to {} bytes", task.job, task.key, result.size());
      return Outcome::completed(std::move(result));
    }
    auto tail = error_tail(std::move(errors), options_.max_error_bytes);
    std::string error = "exit status " + std::to_string(code);
    if (!tail.empty()) error += ": " + tail;
    return Outcome::failed(std::move(error), code == kExitTempFail);
  }
  if (WIFSIGNALED(status)) {
    std::string error = "killed by signal " + std::to_string(WTERMSIG(status));
    if (const char* name = ::sigabbrev_np(WTERMSIG(status))) error += std::string(" (SIG") + name + ")";
    error += " after " + std::to_string(elapsed) + " ms";
    auto tail = error_tail(std::move(errors), options_.max_error_bytes);
    if (!tail.empty()) error += ": " + tail;
    return Outcome::failed(std::move(error), true);
  }
  return Outcome::failed("unexpected wait status " + std::to_string(status), true);
}

}  // namespace topicflow
