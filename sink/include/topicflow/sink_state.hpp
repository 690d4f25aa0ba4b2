#pragma once
// The sink's state machine for one topic row, as a pure function of (row, event, policy, now).
// The batch applies the events of a topic in arrival order to the row read at commit time and
// writes the row once; tests drive it directly to pin every transition. See the table in
// docs/ARCHITECTURE.md. Thread-safety: pure functions.

#include <topicflow/backoff.hpp>
#include <topicflow/store.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace topicflow::sink {

struct Row {
  bool exists = false;
  store::Status status = store::Status::pending;
  std::int64_t attempts = 0;
  // Attempts made before the last requeue (an operator's retry-failed, or a cancelled topic
  // submitted again): the --max-attempts budget counts from here. Attempt numbers themselves
  // never go back, so a late report of an attempt from before the requeue (a handler of a
  // cancelled job still finishing) can never pass for a new one.
  std::int64_t attempts_base = 0;
  std::optional<std::int64_t> due_at;
  // In the sink's memory only (never written): when the attempt was handed to the broker. Set
  // while the task is in transit; due_at is then its dispatch timeout.
  std::optional<std::int64_t> sent_at;
  std::optional<std::string> error;
  std::string submission;
  std::string worker;
  std::int64_t rowid = 0;  // the row's SQLite rowid once it exists (the sink writes by rowid)
  // Written only when set (not read back from the DB: blobs stay out of the hot path).
  std::optional<std::string> new_payload;
  std::optional<std::string> new_result;
  bool changed = false;
  bool requeued = false;  // failed/cancelled -> pending by an operator: a fresh attempt budget

  [[nodiscard]] bool in_transit() const noexcept {
    return exists && status == store::Status::pending && sent_at.has_value();
  }
};

enum class EventKind : std::uint8_t { submit, started, heartbeat, completed, failed, released };

struct Event {
  EventKind kind = EventKind::started;
  std::uint32_t attempt = 0;
  bool retryable = false;
  bool requeue_failed = false;  // submit
  std::string data{};           // submit: payload; completed: result; failed: error
  // submit: submission id; others: worker id. A view: the caller keeps the id alive while it
  // applies the event (the sink keeps each message's id once for its batch, not per event).
  std::string_view origin{};
  std::int32_t ack = -1;  // submit: index of the ack it counts toward
};

// The due time of an attempt given back by its worker (released on shutdown, or its lease expired:
// the worker died or hangs): at once, ahead of every other ready row. It was at the front of the
// queue when it was handed out; due "now" it would wait behind the whole backlog registered
// before now (a soak saw one finish 392 s after its worker died). Retries of failed attempts wait
// for their back-off like any other due time. (Ready rows with equal due times go by rowid.)
inline constexpr std::int64_t kDueAtOnce = 0;

struct Policy {
  std::int64_t lease_ms = 30000;
  std::int64_t max_attempts = 5;
  std::int64_t dispatch_timeout_ms = 60000;
};

// What applying an event did, beyond the row itself.
enum class Outcome : std::uint8_t {
  applied,
  accepted,           // submit: new row
  duplicate,          // submit: same key earlier in the same submission; or a repeated delivery
  skipped_completed,  // submit: already completed
  skipped_failed,     // submit: already failed, no requeue asked
  requeued,           // submit: failed (with requeue) or cancelled -> pending, fresh attempts
  already_queued,     // submit: pending/running from an earlier submission
  retry_scheduled,    // failed, retryable: another attempt after backoff
  stale,              // late message of a superseded attempt or for a terminal row: ignored
  bogus,              // attempt the sink never handed out, or unknown key: ignored
  cancelled_late,     // a result for a cancelled topic (its handler finished anyway): ignored
};

// Applies one event. `backoff` gives the retry delay; `now` is the sink's wall clock (ms).
Outcome apply(Row& row, const Event& event, const Policy& policy, Backoff& backoff,
              std::int64_t now);

// The scheduler's decisions for a due row: a ready row gets its next attempt, in transit
// (dispatch = true: send attempt row.attempts, due_at becomes the dispatch timeout); a running
// row whose lease expired is ready again (redelivery: the scheduler sends the next attempt) or
// failed at max attempts. (A task lost in transit needs no decision: the sink forgets it, and
// its row, ready in the database, is sent again with the same attempt.)
struct SweepResult {
  bool dispatch = false;
  bool redelivery = false;
  bool lease_expired = false;
};
SweepResult on_due(Row& row, const Policy& policy, std::int64_t now);

}  // namespace topicflow::sink
