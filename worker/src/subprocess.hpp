#pragma once
// Internal to the worker library (not installed): what the exec handlers (exec:, exec-persistent:)
// share for running a child process: RAII descriptors and spawn attributes, close-on-exec pipes,
// SIGPIPE containment, waiting without reaping, pidfds, and stderr tails as error text.

#include <topicflow/handler.hpp>
#include <topicflow/utf8.hpp>

#include "owned_children.hpp"

#include <fcntl.h>
#include <pthread.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <array>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

extern char** environ;  // NOLINT: POSIX global

namespace topicflow::subprocess {

inline std::string errno_text(const char* what, int err) {
  return std::string(what) + ": " + std::strerror(err);
}

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

inline Pipe make_pipe() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error(errno_text("pipe2", errno));
  return Pipe{Fd(fds[0]), Fd(fds[1])};
}

inline void set_nonblocking(int fd) {
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

// The worker's environment without the per-task TOPICFLOW_JOB/KEY/ATTEMPT.
inline std::vector<std::string> inherited_environment() {
  std::vector<std::string> env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    const std::string_view entry(*e);
    if (entry.starts_with("TOPICFLOW_JOB=") || entry.starts_with("TOPICFLOW_KEY=") ||
        entry.starts_with("TOPICFLOW_ATTEMPT=")) {
      continue;
    }
    env.emplace_back(entry);
  }
  return env;
}

// The worker's environment plus the task's TOPICFLOW_JOB/KEY/ATTEMPT.
inline std::vector<std::string> child_environment(const TaskView& task) {
  auto env = inherited_environment();
  env.push_back("TOPICFLOW_JOB=" + std::string(task.job));
  env.push_back("TOPICFLOW_KEY=" + std::string(task.key));
  env.push_back("TOPICFLOW_ATTEMPT=" + std::to_string(task.attempt));
  return env;
}

// The last `max` bytes of stderr as readable text: no partial UTF-8 sequence at the front,
// anything still invalid replaced by '?', trailing newlines dropped.
inline std::string error_tail(std::string text, std::size_t max) {
  if (text.size() > max) text.erase(0, text.size() - max);
  std::size_t skip = 0;
  while (skip < text.size() && skip < 3 &&
         (static_cast<unsigned char>(text[skip]) & 0xC0U) == 0x80U)
    ++skip;
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
inline bool has_exited(pid_t pid) {
  siginfo_t info{};
  if (::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) != 0)
    return errno == ECHILD;
  return info.si_pid == pid;
}

// A descriptor that becomes readable when `pid` exits (Linux 5.3+), so the poll loop wakes at
// once instead of on its next tick; -1 where unavailable (the loop then ticks faster).
inline Fd open_pidfd(pid_t pid) {
#ifdef SYS_pidfd_open
  return Fd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));  // O_CLOEXEC by default
#else
  (void)pid;
  return Fd();
#endif
}

// Waits for a child that spawn_shell() started, and takes it off the owned set (only after the
// wait: until then the orphan reaper must leave it alone).
inline int reap(pid_t pid) {
  int status = 0;
  int result = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) {
      result = -1;
      break;
    }
  }
  const int saved = errno;
  owned_children::remove(pid);
  errno = saved;
  return result < 0 ? -1 : status;
}

// Starts `/bin/sh -c command` with environment `env` as the leader of a new process group, its
// stdin/stdout/stderr from the given descriptors (dup2 clears O_CLOEXEC on the copies; every
// original is O_CLOEXEC and vanishes at exec), no blocked signals, and default dispositions for
// what the worker ignores or catches. Returns 0 and sets `pid`, or posix_spawn's error number.
// The child is registered as owned (owned_children.hpp) before any orphan sweep can see it;
// reap() it.
inline int spawn_shell(const std::string& command, std::vector<std::string> env, int in_fd,
                       int out_fd, int err_fd, pid_t& pid) {
  SpawnAttrs spawn;
  ::posix_spawn_file_actions_adddup2(&spawn.actions, in_fd, STDIN_FILENO);
  ::posix_spawn_file_actions_adddup2(&spawn.actions, out_fd, STDOUT_FILENO);
  ::posix_spawn_file_actions_adddup2(&spawn.actions, err_fd, STDERR_FILENO);
  sigset_t no_signals;
  sigemptyset(&no_signals);
  sigset_t defaults;
  sigemptyset(&defaults);
  for (int sig : {SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGQUIT}) sigaddset(&defaults, sig);
  ::posix_spawnattr_setsigmask(&spawn.attr, &no_signals);
  ::posix_spawnattr_setsigdefault(&spawn.attr, &defaults);
  ::posix_spawnattr_setpgroup(&spawn.attr, 0);
  ::posix_spawnattr_setflags(
      &spawn.attr,
      static_cast<short>(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF));
  std::string sh = "/bin/sh";
  std::string dash_c = "-c";
  std::string copy = command;
  std::array<char*, 4> argv{sh.data(), dash_c.data(), copy.data(), nullptr};
  std::vector<char*> envp;
  envp.reserve(env.size() + 1);
  for (auto& entry : env) envp.push_back(entry.data());
  envp.push_back(nullptr);
  const std::shared_lock spawning(owned_children::spawn_mutex());
  const int rc =
      ::posix_spawn(&pid, sh.c_str(), &spawn.actions, &spawn.attr, argv.data(), envp.data());
  if (rc == 0) owned_children::add(pid);
  return rc;
}

}  // namespace topicflow::subprocess
