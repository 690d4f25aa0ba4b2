#include <topicflow/process.hpp>

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <system_error>
#include <thread>

extern char**
    environ;  // NOLINT(readability-redundant-declaration): POSIX, not declared by <unistd.h> in C++

namespace topicflow {
namespace {

// Closes a file descriptor owned by the parent side of a spawn.
struct Fd {
  int fd = -1;
  Fd() = default;
  explicit Fd(int f) : fd(f) {}
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
};

int open_output(const std::string& path) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) throw std::system_error(errno, std::generic_category(), "cannot open " + path);
  return fd;
}

bool is_executable(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(path.c_str(), X_OK) == 0;
}

// Resolves a bare name through PATH before fork, so the child only calls execve.
std::string resolve(const std::string& name) {
  if (name.find('/') != std::string::npos) return name;
  const char* path = std::getenv("PATH");
  std::string dirs = path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin";
  std::size_t start = 0;
  while (start <= dirs.size()) {
    auto end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    std::string dir = dirs.substr(start, end - start);
    if (dir.empty()) dir = ".";
    std::string candidate = dir + "/" + name;
    if (is_executable(candidate)) return candidate;
    start = end + 1;
  }
  throw std::system_error(ENOENT, std::generic_category(), "cannot start " + name);
}

// In a forked child, before it runs anything: its process group, death with the parent,
// default signal handling and an empty mask (ignored signals survive exec: a clean slate), and
// the standard streams.
void set_up_child(const SpawnOptions& options, pid_t parent, int in, int out, int err) {
  if (options.new_process_group) ::setpgid(0, 0);
  if (options.die_with_parent) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
  }
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  for (int sig : {SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGCHLD})
    ::sigaction(sig, &dfl, nullptr);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  if (in >= 0) ::dup2(in, 0);
  if (out >= 0) ::dup2(out, 1);
  if (err >= 0) ::dup2(err, 2);
}

}  // namespace

std::string ExitStatus::describe() const {
  if (signal != 0) {
    const char* name = ::strsignal(signal);
    return "signal " + std::to_string(signal) +
           (name != nullptr ? std::string(" (") + name + ")" : std::string());
  }
  return "status " + std::to_string(code);
}

ExitStatus ExitStatus::from_wait_status(int wait_status) noexcept {
  if (WIFSIGNALED(wait_status)) return ExitStatus{0, WTERMSIG(wait_status)};
  if (WIFEXITED(wait_status)) return ExitStatus{WEXITSTATUS(wait_status), 0};
  return ExitStatus{-1, 0};
}

ChildProcess::ChildProcess(const std::vector<std::string>& argv, const SpawnOptions& options) {
  if (argv.empty()) throw std::invalid_argument("ChildProcess: empty argv");
  const std::string path = resolve(argv[0]);

  // Everything the child needs is built before fork: after it, only async-signal-safe calls.
  std::vector<std::string> env_strings;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string_view entry(*e);
    const auto eq = entry.find('=');
    const auto key = entry.substr(0, eq);
    bool overridden = false;
    for (const auto& [k, v] : options.env) overridden = overridden || k == key;
    if (!overridden) env_strings.emplace_back(entry);
  }
  for (const auto& [k, v] : options.env) env_strings.push_back(k + "=" + v);
  std::vector<char*> envp;
  envp.reserve(env_strings.size() + 1);
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> args(argv.begin(), argv.end());
  std::vector<char*> argp;
  argp.reserve(args.size() + 1);
  for (auto& s : args) argp.push_back(s.data());
  argp.push_back(nullptr);

  Fd out(options.stdout_path ? open_output(*options.stdout_path) : -1);
  Fd err(options.stderr_path
             ? (options.stderr_path == options.stdout_path ? ::fcntl(out.fd, F_DUPFD_CLOEXEC, 3)
                                                           : open_output(*options.stderr_path))
             : -1);
  Fd in(options.stdin_null ? ::open("/dev/null", O_RDONLY | O_CLOEXEC) : -1);
  int report[2];
  if (::pipe2(report, O_CLOEXEC) != 0)
    throw std::system_error(errno, std::generic_category(), "pipe2");
  Fd report_read(report[0]);
  Fd report_write(report[1]);
  const pid_t parent = ::getpid();

  const pid_t pid = ::fork();
  if (pid < 0) throw std::system_error(errno, std::generic_category(), "fork");
  if (pid == 0) {
    set_up_child(options, parent, in.fd, out.fd, err.fd);
    ::execve(path.c_str(), argp.data(), envp.data());
    const int code = errno;
    [[maybe_unused]] auto n = ::write(report_write.fd, &code, sizeof code);
    ::_exit(127);
  }
  if (options.new_process_group)
    ::setpgid(pid, pid);  // also here: no race with an early kill(-pid)
  ::close(report_write.fd);
  report_write.fd = -1;
  int code = 0;
  ssize_t n = 0;
  do {
    n = ::read(report_read.fd, &code, sizeof code);
  } while (n < 0 && errno == EINTR);
  if (n == static_cast<ssize_t>(sizeof code)) {
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    throw std::system_error(code, std::generic_category(), "cannot start " + path);
  }
  pid_ = pid;
  own_group_ = options.new_process_group;
}

ChildProcess::ChildProcess(const std::function<int()>& body, const std::string& name,
                           const SpawnOptions& options) {
  Fd out(options.stdout_path ? open_output(*options.stdout_path) : -1);
  Fd err(options.stderr_path
             ? (options.stderr_path == options.stdout_path ? ::fcntl(out.fd, F_DUPFD_CLOEXEC, 3)
                                                           : open_output(*options.stderr_path))
             : -1);
  Fd in(options.stdin_null ? ::open("/dev/null", O_RDONLY | O_CLOEXEC) : -1);
  const pid_t parent = ::getpid();
  std::fflush(nullptr);  // what is buffered now belongs to the parent, not to both
  const pid_t pid = ::fork();
  if (pid < 0) throw std::system_error(errno, std::generic_category(), "fork");
  if (pid == 0) {
    set_up_child(options, parent, in.fd, out.fd, err.fd);
    for (const auto& [key, value] : options.env) ::setenv(key.c_str(), value.c_str(), 1);
    ::prctl(PR_SET_NAME, name.substr(0, 15).c_str());
    int code = 1;
    try {
      code = body();
    } catch (...) {
      code = 1;
    }
    std::fflush(nullptr);
    ::_exit(code);  // not the parent's exit handlers and static destructors
  }
  if (options.new_process_group) ::setpgid(pid, pid);
  pid_ = pid;
  own_group_ = options.new_process_group;
}

ChildProcess::~ChildProcess() { kill_and_reap(); }

ChildProcess::ChildProcess(ChildProcess&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)),
      own_group_(other.own_group_),
      status_(std::exchange(other.status_, {})) {}

ChildProcess& ChildProcess::operator=(ChildProcess&& other) noexcept {
  if (this != &other) {
    kill_and_reap();
    pid_ = std::exchange(other.pid_, -1);
    own_group_ = other.own_group_;
    status_ = std::exchange(other.status_, {});
  }
  return *this;
}

void ChildProcess::kill_and_reap() noexcept {
  if (!running()) return;
  terminate(SIGKILL);
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  status_ = ExitStatus::from_wait_status(status);
}

std::optional<ExitStatus> ChildProcess::poll_exit() noexcept {
  if (status_ || pid_ <= 0) return status_;
  int status = 0;
  pid_t r = 0;
  do {
    r = ::waitpid(pid_, &status, WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == pid_) {
    status_ = ExitStatus::from_wait_status(status);
    // Whatever the child left in its group (e.g. a handler's subprocess) goes with it.
    if (own_group_) ::kill(-pid_, SIGKILL);
  } else if (r < 0) {
    status_ = ExitStatus{-1, 0};  // ECHILD: reaped elsewhere; treat as gone
  }
  return status_;
}

void ChildProcess::terminate(int signal) noexcept {
  if (!running()) return;
  if (own_group_) {
    if (::kill(-pid_, signal) == 0) return;
  }
  ::kill(pid_, signal);
}

std::optional<ExitStatus> ChildProcess::wait_for(std::chrono::milliseconds timeout) noexcept {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  auto pause = std::chrono::milliseconds(1);
  for (;;) {
    if (auto s = poll_exit()) return s;
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) return std::nullopt;
    std::this_thread::sleep_for(
        std::min<std::chrono::steady_clock::duration>(pause, deadline - now));
    pause = std::min(pause * 2, std::chrono::milliseconds(20));
  }
}

ExitStatus ChildProcess::stop(int signal, std::chrono::milliseconds grace) noexcept {
  if (auto s = poll_exit()) return *s;
  terminate(signal);
  if (auto s = wait_for(grace)) return *s;
  kill_and_reap();
  return status_.value_or(ExitStatus{-1, 0});
}

std::string executable_dir() {
  std::string buffer(4096, '\0');
  const auto n = ::readlink("/proc/self/exe", buffer.data(), buffer.size());
  if (n < 0) throw std::system_error(errno, std::generic_category(), "readlink /proc/self/exe");
  buffer.resize(static_cast<std::size_t>(n));
  const auto slash = buffer.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return buffer.substr(0, slash);
}

std::string topicflow_bin_dir() {
  if (const char* dir = std::getenv("TOPICFLOW_BIN_DIR"); dir != nullptr && *dir != '\0')
    return dir;
  return executable_dir();
}

}  // namespace topicflow
