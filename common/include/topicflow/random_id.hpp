#pragma once
// Random identifiers for one run of a process: a producer's submission id (and its ack channel),
// `topicflow run`'s client id, a broker's instance id.

#include <string>

namespace topicflow {

// 16 lowercase hex digits, different for every call (random_device, mixed with the pid and the
// clock so that two processes differ even where random_device is a fixed-seed PRNG).
// Thread-safe.
[[nodiscard]] std::string random_id();

}  // namespace topicflow
