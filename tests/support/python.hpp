#pragma once
// The Python interpreter tests run handlers with: $TOPICFLOW_PYTHON, else Debian's
// /usr/bin/python3, else `python3` from PATH. A version manager's shim first in PATH (pyenv's
// is a bash script that runs `pyenv exec`) costs ~0.3 s per start against ~0.02 s for the
// interpreter itself: the example's 288 per-topic handlers took 2-3 minutes instead of seconds.

#include <unistd.h>

#include <cstdlib>
#include <string>

namespace topicflow::testing {

inline std::string python3() {
  if (const char* chosen = std::getenv("TOPICFLOW_PYTHON"); chosen != nullptr && *chosen != 0) {
    return chosen;
  }
  if (::access("/usr/bin/python3", X_OK) == 0) return "/usr/bin/python3";
  return "python3";
}

}  // namespace topicflow::testing
