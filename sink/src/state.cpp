#include <topicflow/sink_state.hpp>

namespace topicflow::sink {
namespace {

using store::Status;

void set_running(Row& row, const Event& e, const Policy& p, std::int64_t now) {
  row.status = Status::running;
  row.sent_at.reset();
  row.due_at = now + p.lease_ms;
  row.worker = e.origin;
  row.changed = true;
}

void make_pending(Row& row, std::int64_t due) {
  row.status = Status::pending;
  row.sent_at.reset();
  row.due_at = due;
  row.changed = true;
}

void make_terminal(Row& row, Status status) {
  row.status = status;
  row.sent_at.reset();
  row.due_at.reset();
  row.changed = true;
}

Outcome apply_submit(Row& row, const Event& e, std::int64_t now) {
  if (!row.exists) {
    row.exists = true;
    row.attempts = 0;
    row.attempts_base = 0;
    row.submission = e.origin;
    row.new_payload = e.data;
    row.error.reset();
    make_pending(row, now);
    return Outcome::accepted;
  }
  switch (row.status) {
    case Status::completed:
      return row.submission == e.origin ? Outcome::duplicate : Outcome::skipped_completed;
    case Status::failed:
    case Status::cancelled:
      if (row.submission == e.origin) return Outcome::duplicate;
      // A failed topic is an outcome: it runs again only when asked (--requeue-failed). A
      // cancelled one is an operator's decision, which submitting it again overrides.
      if (row.status == Status::failed && !e.requeue_failed) return Outcome::skipped_failed;
      row.attempts_base = row.attempts;  // a fresh budget; attempt numbers go on
      row.submission = e.origin;
      row.new_payload = e.data;
      row.requeued = true;
      make_pending(row, now);
      return Outcome::requeued;
    case Status::pending:
    case Status::running:
      return row.submission == e.origin ? Outcome::duplicate : Outcome::already_queued;
  }
  return Outcome::bogus;
}

}  // namespace

Outcome apply(Row& row, const Event& e, const Policy& p, Backoff& backoff, std::int64_t now) {
  if (e.kind == EventKind::submit) return apply_submit(row, e, now);
  if (!row.exists) return Outcome::bogus;
  if (row.status == Status::cancelled) {
    // (also for the attempt that was in transit when the job was cancelled: the row never
    // recorded it)
    const bool result = e.kind == EventKind::completed || e.kind == EventKind::failed;
    return result ? Outcome::cancelled_late : Outcome::stale;
  }
  const auto attempt = static_cast<std::int64_t>(e.attempt);
  // A ready row (pending, not handed out) holds the last attempt that was given back (failed
  // and retried, released, lease expired) or 0. The sink hands the next attempt out from memory
  // and writes it with the attempt's first report; a sink that lost track of it (restarted, or
  // its dispatch timeout resent the task) still accepts that report: the attempt it adopts.
  const bool ready = row.status == Status::pending && !row.sent_at;
  const bool adopted = ready && attempt == row.attempts + 1;
  if (!adopted && (attempt > row.attempts || attempt < 1)) return Outcome::bogus;
  // Attempts from before a requeue (an operator's retry-failed, a cancelled topic submitted
  // again) belong to the work that was given up: a new run is wanted, not their results.
  if (attempt <= row.attempts_base && !store::is_terminal(row.status)) return Outcome::stale;
  if (store::is_terminal(row.status)) {
    const bool repeat = row.status == Status::completed && e.kind == EventKind::completed;
    return repeat ? Outcome::duplicate : Outcome::stale;
  }
  // Any other report of a ready row's attempts belongs to an attempt already given back.
  const bool superseded = attempt < row.attempts || (ready && !adopted);
  if (adopted) row.attempts = attempt;

  switch (e.kind) {
    case EventKind::started:
    case EventKind::heartbeat: {
      if (superseded) return Outcome::stale;
      // pending with this attempt: in transit (or started message lost / reordered)
      const bool repeat = row.status == Status::running && e.kind == EventKind::started;
      const bool other_worker = repeat && !row.worker.empty() && row.worker != e.origin;
      set_running(row, e, p, now);
      return other_worker ? Outcome::duplicate : Outcome::applied;
    }
    case EventKind::completed:
      // A result of a superseded attempt is still a valid result while nothing is terminal.
      row.new_result = e.data;
      row.error.reset();
      row.worker = e.origin;
      make_terminal(row, Status::completed);
      return Outcome::applied;
    case EventKind::failed:
      if (superseded) return Outcome::stale;  // a newer attempt is on its way, or due
      row.error = e.data;
      row.worker = e.origin;
      if (e.retryable && row.attempts - row.attempts_base < p.max_attempts) {
        const auto retry = static_cast<unsigned>(row.attempts - row.attempts_base - 1);
        make_pending(row, now + backoff.delay(retry));
        return Outcome::retry_scheduled;
      }
      make_terminal(row, Status::failed);
      return Outcome::applied;
    case EventKind::released:
      if (superseded) return Outcome::stale;
      make_pending(row, kDueAtOnce);
      return Outcome::applied;
    case EventKind::submit: break;
  }
  return Outcome::bogus;
}

SweepResult on_due(Row& row, const Policy& p, std::int64_t now) {
  SweepResult r;
  if (!row.exists || store::is_terminal(row.status)) return r;
  if (row.status == Status::running) {
    // The attempt is given back: the row is ready again, and the ready sweep hands out the
    // next attempt like any other (so this write and the dispatch are one commit apart at most).
    r.lease_expired = true;
    row.error = "lease expired on attempt " + std::to_string(row.attempts) + " (no heartbeat for " +
                std::to_string(p.lease_ms) + " ms: worker lost or stuck)";
    if (row.attempts - row.attempts_base >= p.max_attempts) {
      make_terminal(row, Status::failed);
    } else {
      make_pending(row, kDueAtOnce);
      r.redelivery = true;
    }
    return r;
  }
  row.attempts += 1;  // a new attempt: first delivery or a retry whose backoff elapsed
  r.dispatch = true;
  row.status = Status::pending;
  row.sent_at = now;
  row.due_at = now + p.dispatch_timeout_ms;
  row.changed = true;
  return r;
}

}  // namespace topicflow::sink
