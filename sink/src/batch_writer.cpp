#include "batch_writer.hpp"

#include "row_id.hpp"

#include <topicflow/log.hpp>

#include <cassert>
#include <unordered_set>

namespace topicflow::sink {

using store::Status;
using Write = TopicTable::Write;

namespace {

void count_ack(wire::Ack& ack, Outcome outcome) {
  switch (outcome) {
    case Outcome::accepted: ++ack.accepted; break;
    case Outcome::duplicate: ++ack.duplicates; break;
    case Outcome::skipped_completed: ++ack.skipped_completed; break;
    case Outcome::skipped_failed: ++ack.skipped_failed; break;
    case Outcome::requeued: ++ack.requeued; break;
    case Outcome::already_queued: ++ack.already_queued; break;
    default: ++ack.rejected; break;
  }
}

}  // namespace

void stage_cache(Effects& fx, std::string id, Write written, Row row) {
  if (written == Write::written && RowsInFlight::cacheable(row)) {
    fx.cache.emplace_back(std::move(id), std::move(row));
  } else {
    fx.cache.emplace_back(std::move(id), std::nullopt);
  }
}

void account(std::string_view job, const Row& before, const Row& after, std::int64_t now,
             Effects& fx) {
  auto& delta = fx.delta(job);
  if (before.exists) --delta[before.status];
  if (after.exists) ++delta[after.status];
  if (before.in_transit() && after.exists && after.status != Status::pending) {
    ++fx.taken;
    fx.start_latencies.emplace_back(before.rowid, now - *before.sent_at);
  }
}

void BatchWriter::apply(Batch& batch, std::int64_t now, Effects& fx) {
  for (std::size_t i = 0; i < batch.entry_count(); ++i) {
    apply_entry(batch, batch.entry(i), now, fx);
  }
  for (const auto& request : batch.requests()) apply_request(request, now, fx);
}

void BatchWriter::apply_entry(Batch& batch, Entry& entry, std::int64_t now, Effects& fx) {
  if (const auto* cached = rows_.find(entry.id); cached != nullptr) {
    (void)apply_events(batch, entry, *cached, true, now, fx);
    return;
  }
  // A registration is INSERTed first: a new topic needs no SELECT. Only if the row exists after
  // all (a resubmission) is it read and the events applied to what is there.
  if (entry.events.front().kind == EventKind::submit &&
      apply_events(batch, entry, Row{}, false, now, fx)) {
    return;
  }
  const bool applied =
      apply_events(batch, entry, table_.load(entry.job(), entry.key()), false, now, fx);
  assert(applied);
  (void)applied;
}

// Applies an entry's events to `before` (`cached`: from the rows in flight) and writes the
// result. Returns false, with no effect at all, when `before` said "no row" but the INSERT
// found one.
bool BatchWriter::apply_events(Batch& batch, Entry& entry, const Row& before, bool cached,
                               std::int64_t now, Effects& fx) {
  Row row = before;
  outcomes_.clear();
  for (const auto& event : entry.events) {
    outcomes_.push_back(sink::apply(row, event, policy_, retry_backoff_, now));
  }
  auto written = Write::refused;
  if (row.changed) {
    written = write_row(entry.job(), entry.key(), before, row, now, fx);
    if (written == Write::exists) return false;
  }
  for (std::size_t i = 0; i < entry.events.size(); ++i) {
    const auto& event = entry.events[i];
    switch (outcomes_[i]) {
      case Outcome::retry_scheduled: ++fx.retried; break;
      case Outcome::stale: ++fx.stale; break;
      case Outcome::bogus: ++fx.bogus; break;
      case Outcome::cancelled_late: ++fx.cancelled_late; break;
      case Outcome::duplicate:
        if (event.kind != EventKind::submit) ++fx.duplicates;
        break;
      default: break;
    }
    if (event.ack >= 0) count_ack(batch.acks()[static_cast<std::size_t>(event.ack)], outcomes_[i]);
    // A worker still runs a task of a cancelled job (it missed the cancel event, e.g. it
    // connected after it): tell it again.
    if (before.status == Status::cancelled &&
        (event.kind == EventKind::started || event.kind == EventKind::heartbeat)) {
      fx.cancelled_tasks.push_back(
          wire::CancelledTask{std::string(entry.job()), std::string(entry.key()), event.attempt});
    }
  }
  // (a write the SQL guard refused changed nothing: nothing to count)
  if (written != Write::refused || !row.changed) account(entry.job(), before, row, now, fx);
  // (a row neither cached before nor after needs no cache change: an entry's row is staged
  // first in its commit, so nothing before it in fx.cache could have put it there)
  if (row.changed && (cached || (written == Write::written && RowsInFlight::cacheable(row)))) {
    stage_cache(fx, entry.id, written, std::move(row));
  }
  return true;
}

Write BatchWriter::write_row(std::string_view job, std::string_view key, const Row& before,
                             Row& row, std::int64_t now, Effects& fx) {
  const auto written = table_.write(job, key, before, row, now);
  if (written == Write::exists) return written;
  if (written == Write::refused) {
    ++fx.guard_refused;
    spdlog::error("internal: the SQL guard refused an update of {}/{} to {} (attempt {})", job, key,
                  store::to_string(row.status), row.attempts);
    return written;
  }
  ++fx.updates;
  ++fx.written[static_cast<std::size_t>(row.status)];
  if (row.status == Status::pending && row.due_at) {  // ready: the scheduler must hand it out
    fx.ready.push_back(Effects::Ready{*row.due_at, row.rowid, job});
  }
  return written;
}

void BatchWriter::flush_counts(std::int64_t now, Effects& fx) {
  for (const auto& [job, delta] : fx.count_delta) {
    if (delta.zero()) continue;
    table_.add_job_counts(job, delta, now);
    auto it = fx.count_total.find(job);
    if (it == fx.count_total.end()) it = fx.count_total.emplace(job, store::StatusCounts{}).first;
    it->second += delta;
  }
  fx.count_delta.clear();
}

void BatchWriter::apply_request(const JobRequest& request, std::int64_t now, Effects& fx) {
  flush_counts(now, fx);
  Effects::RequestResult result;
  const auto state = table_.job_state(request.job);
  if (!state) {
    result = {404, "no job named '" + request.job + "'", 0};
  } else {
    switch (request.kind) {
      case JobRequest::Kind::requeue_failed: result = requeue(request, now, fx); break;
      case JobRequest::Kind::pause:
      case JobRequest::Kind::resume: {
        const bool pause = request.kind == JobRequest::Kind::pause;
        if (state->paused != pause) {
          table_.set_paused(request.job, pause, now);
          fx.paused.emplace_back(request.job, pause);
          spdlog::info("job {} {}", request.job, pause ? "paused" : "resumed");
        }
        break;
      }
      case JobRequest::Kind::cancel: result = cancel(request, now, fx); break;
      case JobRequest::Kind::remove: {
        const auto unfinished = state->counts.unfinished();
        if (unfinished > 0) {
          result = {409,
                    "job '" + request.job + "' has " + std::to_string(unfinished) +
                        " topics pending or running: cancel it or let it finish first",
                    0};
        } else {
          result = remove(request, fx);
        }
        break;
      }
    }
  }
  flush_counts(now, fx);
  fx.results.push_back(std::move(result));
}

Effects::RequestResult BatchWriter::requeue(const JobRequest& request, std::int64_t now,
                                            Effects& fx) {
  const auto rowids = table_.requeue_failed(request.job, now);
  const auto n = static_cast<std::int64_t>(rowids.size());
  auto& delta = fx.delta(request.job);
  delta[Status::failed] -= n;
  delta[Status::pending] += n;
  fx.updates += rowids.size();
  fx.written[static_cast<std::size_t>(Status::pending)] += rowids.size();
  for (const auto rowid : rowids) fx.ready.push_back(Effects::Ready{now, rowid, request.job});
  if (n > 0) spdlog::info("requeued {} failed topics of job {}", n, request.job);
  return {200, {}, rowids.size()};
}

Effects::RequestResult BatchWriter::cancel(const JobRequest& request, std::int64_t now,
                                           Effects& fx) {
  const auto rows = table_.cancel_job(request.job, now);
  auto& delta = fx.delta(request.job);
  std::size_t in_flight = 0;
  for (const auto& r : rows) {
    --delta[r.was];
    ++delta[Status::cancelled];
    // A task in transit or running: its worker is told to stop it (the attempt it runs is the
    // one in flight; the row may hold the one before while in transit).
    auto id = row_id(request.job, r.key);
    if (const auto* cached = rows_.find(id); cached != nullptr) {
      fx.cancelled_tasks.push_back(
          wire::CancelledTask{request.job, r.key, static_cast<std::uint32_t>(cached->attempts)});
      // (in transit, its attempt lived in memory only: recorded, so a later attempt of the topic
      // never reuses its number)
      if (cached->in_transit()) table_.record_attempt(r.rowid, cached->attempts);
      fx.cache.emplace_back(std::move(id), std::nullopt);
      ++in_flight;
    }
  }
  fx.updates += rows.size();
  fx.written[static_cast<std::size_t>(Status::cancelled)] += rows.size();
  fx.cancelled_jobs.push_back(request.job);
  spdlog::info("job {} cancelled: {} topics ({} of them in transit or running)", request.job,
               rows.size(), in_flight);
  return {200, {}, rows.size()};
}

Effects::RequestResult BatchWriter::remove(const JobRequest& request, Effects& fx) {
  const auto n = table_.delete_job(request.job);
  // (this commit's changes to the job's counts, if any, went with its row)
  fx.count_delta.erase(request.job);
  fx.count_total.erase(request.job);
  fx.removed_jobs.push_back(request.job);
  spdlog::info("job {} deleted: {} topics", request.job, n);
  return {200, {}, static_cast<std::uint64_t>(n)};
}

void BatchWriter::expire_leases(std::int64_t now, Effects& fx) {
  auto expired = rows_.expired_leases(now, kLeaseSweepLimit);
  if (expired.empty()) return;
  // Rows this commit already changed (a report in the batch, a cancel): the rows in flight still
  // hold their state from before the commit, so their lease is not judged here; the next
  // commit, a few milliseconds away, sees what this one made of them.
  std::unordered_set<std::string_view> changed;
  for (const auto& [id, row] : fx.cache) changed.insert(id);
  for (auto& id : expired) {
    if (changed.contains(id)) continue;
    const auto* cached = rows_.find(id);
    assert(cached != nullptr);
    const Row before = *cached;
    Row row = before;
    const auto r = on_due(row, policy_, now);
    if (!row.changed) continue;
    assert(!r.dispatch);
    // (the job views the row in flight's id, which lives until the cache changes are applied)
    const auto& stable_id = *rows_.id_of(id);
    const auto job = id_job(stable_id);
    const auto written = write_row(job, id_key(stable_id), before, row, now, fx);
    if (written == Write::refused) continue;
    account(job, before, row, now, fx);
    stage_cache(fx, std::move(id), written, std::move(row));
    if (r.lease_expired) ++fx.lease_expired;
    if (r.redelivery) ++fx.redelivered;
  }
}

}  // namespace topicflow::sink
