#include <topicflow/log.hpp>
#include <topicflow/orphan_reaper.hpp>

#include "owned_children.hpp"

#include <dirent.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <string>
#include <system_error>
#include <vector>

namespace topicflow {
namespace owned_children {
namespace {

std::mutex& set_mutex() {
  static std::mutex m;
  return m;
}
std::unordered_set<pid_t>& set() {
  static std::unordered_set<pid_t> s;
  return s;
}

}  // namespace

std::shared_mutex& spawn_mutex() {
  static std::shared_mutex m;
  return m;
}
void add(pid_t pid) {
  const std::scoped_lock lock(set_mutex());
  set().insert(pid);
}
void remove(pid_t pid) {
  const std::scoped_lock lock(set_mutex());
  set().erase(pid);
}
std::unordered_set<pid_t> snapshot() {
  const std::scoped_lock lock(set_mutex());
  return set();
}

}  // namespace owned_children

namespace {

// A zombie child that nobody here waits for: see the header.
bool reapable(pid_t pid, const std::unordered_set<pid_t>& owned) {
  if (owned.contains(pid)) return false;
  const pid_t group = ::getpgid(pid);  // works on a zombie until it is reaped
  return group >= 0 && group != ::getpgrp();
}

bool reap(pid_t pid) {
  int status = 0;
  pid_t r = 0;
  while ((r = ::waitpid(pid, &status, WNOHANG)) < 0 && errno == EINTR) {
  }
  if (r != pid) return false;
  spdlog::debug("reaped orphaned process {} ({})", pid,
                WIFSIGNALED(status) ? "signal " + std::to_string(WTERMSIG(status))
                                    : "status " + std::to_string(WEXITSTATUS(status)));
  return true;
}

// Zombie children of this process, from /proc (the kernel's per-thread `children` lists need
// CONFIG_PROC_CHILDREN, which not every kernel has).
std::vector<pid_t> zombie_children() {
  std::vector<pid_t> out;
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) return out;
  const pid_t self = ::getpid();
  while (const dirent* entry = ::readdir(proc)) {
    char* end = nullptr;
    const long pid = std::strtol(entry->d_name, &end, 10);
    if (pid <= 0 || *end != '\0') continue;
    std::ifstream in(std::string("/proc/") + entry->d_name + "/stat");
    std::string stat;  // one line (not istreambuf_iterator: GCC 12 -O3 warns of a null dereference)
    std::getline(in, stat);
    const auto close = stat.rfind(')');  // the command name may hold spaces and parentheses
    if (close == std::string::npos || close + 4 >= stat.size()) continue;
    const char state = stat[close + 2];
    const long parent = std::strtol(stat.c_str() + close + 4, nullptr, 10);
    if (state == 'Z' && parent == self) out.push_back(static_cast<pid_t>(pid));
  }
  ::closedir(proc);
  return out;
}

}  // namespace

std::size_t OrphanReaper::reap_orphans() {
  // Whatever is found before the lock is taken existed before it: if a handler started it, it
  // is registered by the time the lock is ours (handlers register under the shared lock).
  std::size_t reaped = 0;
  for (;;) {
    // The cheap question first: is there any zombie child at all?
    siginfo_t info{};
    if (::waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) != 0 || info.si_pid == 0)
      return reaped;
    const std::unique_lock spawning(owned_children::spawn_mutex());
    if (!reapable(info.si_pid, owned_children::snapshot())) break;  // someone's own: look past it
    if (!reap(info.si_pid)) return reaped;
    ++reaped;
  }
  const auto zombies = zombie_children();
  if (zombies.empty()) return reaped;
  const std::unique_lock spawning(owned_children::spawn_mutex());
  const auto owned = owned_children::snapshot();
  for (const pid_t pid : zombies) {
    if (reapable(pid, owned) && reap(pid)) ++reaped;
  }
  return reaped;
}

OrphanReaper::OrphanReaper(std::chrono::milliseconds interval) {
  if (::prctl(PR_SET_CHILD_SUBREAPER, 1UL, 0UL, 0UL, 0UL) != 0) {
    throw std::system_error(errno, std::generic_category(), "prctl(PR_SET_CHILD_SUBREAPER)");
  }
  thread_ = std::thread([this, interval] { run(interval); });
}

OrphanReaper::~OrphanReaper() {
  {
    const std::scoped_lock lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

void OrphanReaper::run(std::chrono::milliseconds interval) {
  std::unique_lock lock(mutex_);
  while (!wake_.wait_for(lock, interval, [this] { return stop_; })) {
    lock.unlock();
    if (const auto n = reap_orphans(); n > 0) {
      reaped_ += n;
      spdlog::debug("reaped {} orphaned process(es) left by handlers", n);
    }
    lock.lock();
  }
}

}  // namespace topicflow
