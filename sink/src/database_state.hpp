#pragma once
// Whether the sink's commits go through, and when to try again when they do not. A busy
// database (another connection holds the write lock: SQLITE_BUSY) and an unavailable one (a full
// disk or an I/O error: SQLITE_FULL, SQLITE_IOERR) are handled alike: the sink keeps its batch,
// backs off (capped, jittered exponential), and retries, reading new messages until its buffer
// is full; nothing is lost and the process never exits because of it. The difference is how
// loud: a busy retry is logged each time and only a long one is unhealthy, an unavailable
// database is logged once when it starts and once when it ends, and is unhealthy at once.
// Time comes in as `now` (steady ms). Not thread-safe.

#include <topicflow/backoff.hpp>

#include <cstddef>
#include <cstdint>
#include <string>

namespace topicflow::sink {

class DatabaseState {
 public:
  enum class Kind : std::uint8_t { writable, busy, unavailable };

  explicit DatabaseState(Backoff backoff) : backoff_(backoff) {}

  // A commit failed at `now`; `reason` is SQLite's message; `holding` the updates kept. Logs
  // as described above and schedules the next try.
  void failed(Kind kind, const std::string& reason, std::size_t holding, std::int64_t now);
  // A commit went through at `now` (logs the end of a stuck period).
  void succeeded(std::int64_t now);

  // Backing off: no commit before retry_at().
  [[nodiscard]] bool backing_off(std::int64_t now) const noexcept {
    return retry_at_ > 0 && now < retry_at_;
  }
  // When to try again (0: not stuck).
  [[nodiscard]] std::int64_t retry_at() const noexcept { return retry_at_; }
  [[nodiscard]] Kind kind() const noexcept { return kind_; }
  [[nodiscard]] std::int64_t since() const noexcept { return since_; }  // 0: not stuck
  [[nodiscard]] const std::string& reason() const noexcept { return reason_; }
  [[nodiscard]] unsigned attempts() const noexcept { return attempts_; }

 private:
  Backoff backoff_;
  Kind kind_ = Kind::writable;
  std::int64_t since_ = 0;
  std::int64_t retry_at_ = 0;
  unsigned attempts_ = 0;
  std::string reason_;
};

}  // namespace topicflow::sink
