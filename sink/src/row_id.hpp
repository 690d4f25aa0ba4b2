#pragma once
// A topic's id inside the sink: "job NUL key". The batch index and the rows in flight are keyed
// by it (one string instead of a pair). wire::decode refuses a job name with a NUL in it, so
// the first NUL always ends the job.

#include <string>
#include <string_view>

namespace topicflow::sink {

inline void row_id(std::string& id, std::string_view job, std::string_view key) {
  id.reserve(job.size() + key.size() + 1);
  id.assign(job).push_back('\0');
  id.append(key);
}

[[nodiscard]] inline std::string row_id(std::string_view job, std::string_view key) {
  std::string id;
  row_id(id, job, key);
  return id;
}

// The job and key parts of an id.
[[nodiscard]] inline std::string_view id_job(std::string_view id) noexcept {
  return id.substr(0, id.find('\0'));
}
[[nodiscard]] inline std::string_view id_key(std::string_view id) noexcept {
  const auto nul = id.find('\0');
  return nul == std::string_view::npos ? std::string_view() : id.substr(nul + 1);
}

}  // namespace topicflow::sink
