#pragma once
// Internal to the worker library: the children that handlers of this process start and wait for
// themselves (exec: shells, exec-persistent: co-processes). The OrphanReaper
// (topicflow/orphan_reaper.hpp) reaps zombie children that are not in this set; a sweep holds
// spawn_mutex() exclusively while handlers hold it shared from before they start a child until
// it is registered, so a sweep never sees a handler's child that is not registered yet.

#include <sys/types.h>

#include <shared_mutex>
#include <unordered_set>

namespace topicflow::owned_children {

std::shared_mutex& spawn_mutex();
void add(pid_t pid);
void remove(pid_t pid);
// A copy of the set, taken under its lock.
std::unordered_set<pid_t> snapshot();

}  // namespace topicflow::owned_children
