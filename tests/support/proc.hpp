#pragma once
// Liveness of processes as tests need it, from /proc/<pid>/stat. A zombie is dead: kill(pid, 0)
// succeeds on one, but whether it is ever reaped is its parent's business (an orphan's parent is
// PID 1, which in a container may be `sleep infinity` and never reap). Linux only.

#include <sys/types.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <thread>

namespace topicflow::testing {

struct ProcStat {
  char state = '?';  // R, S, D, Z, T, ...
  pid_t parent = 0;
  std::string command;  // at most 15 characters: a forked worker shows as "topicflow-worke"
};

// Nothing once the process is gone for good (reaped, or never existed).
inline std::optional<ProcStat> proc_stat(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;  // one line (not istreambuf_iterator: GCC 12 -O3 warns of a null dereference)
  std::getline(in, stat);
  const auto open = stat.find('(');
  const auto close = stat.rfind(')');  // the command name may hold spaces and parentheses
  if (open == std::string::npos || close == std::string::npos || close + 4 >= stat.size()) {
    return std::nullopt;
  }
  return ProcStat{stat[close + 2],
                  static_cast<pid_t>(std::strtol(stat.c_str() + close + 4, nullptr, 10)),
                  stat.substr(open + 1, close - open - 1)};
}

// A shell fragment for exec handlers' commands that leave a process behind with setsid: waits
// (up to 10 s) until the process whose pid is in shell variable `var` has left the shell's
// process group. The handler kills what is left of its group when the shell exits, and on a
// loaded machine the background child may not have run setsid by then.
inline std::string wait_until_out_of_group(const std::string& var) {
  return "read -r _ _ _ _ me _ </proc/$$/stat; i=0; while read -r _ _ _ _ g _ </proc/$" + var +
         "/stat && [ \"$g\" = \"$me\" ] && [ $i -lt 1000 ]; do sleep 0.01; i=$((i+1)); done; ";
}

// A child of `parent` whose command name (ProcStat::command) is `command`, or -1 when there is
// none now.
inline pid_t find_child(pid_t parent, const std::string& command) {
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const auto name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    const pid_t pid = std::stoi(name);
    const auto stat = proc_stat(pid);
    if (stat && stat->parent == parent && stat->command == command) return pid;
  }
  return -1;
}

// Running (or sleeping, stopped...): neither reaped nor a zombie.
inline bool alive(pid_t pid) {
  const auto s = proc_stat(pid);
  return s && s->state != 'Z' && s->state != 'X';
}

// Waits up to `timeout` for `pid` to stop being alive().
inline bool dies_within(pid_t pid, std::chrono::milliseconds timeout) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  while (alive(pid) && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  return !alive(pid);
}

// Waits up to `timeout` for `pid` to be gone from /proc: reaped, not even a zombie.
inline bool reaped_within(pid_t pid, std::chrono::milliseconds timeout) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  while (proc_stat(pid) && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  return !proc_stat(pid);
}

}  // namespace topicflow::testing
