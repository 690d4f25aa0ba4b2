#include "scheduler.hpp"

#include "row_id.hpp"

#include <topicflow/sqlite.hpp>

#include <algorithm>
#include <cassert>
#include <limits>

namespace topicflow::sink {

using store::Status;

Scheduler::Loaded Scheduler::load() {
  Loaded loaded;
  table_.scan_unfinished([&](std::string_view job, std::string_view key, const Row& row) {
    if (row.status == Status::running) {
      rows_.put(row_id(job, key), row);
      ++loaded.running;
    } else if (row.due_at) {
      queue_.push(*row.due_at, row.rowid, job);
      ++loaded.ready;
    }
  });
  return loaded;
}

std::size_t Scheduler::forget_transit(std::int64_t now) {
  return requeue(rows_.forget_transit(now - transit_timeout_.ms()), now);
}

std::size_t Scheduler::forget_all_transit() {
  // (a lost broker queue is no guess: no back-off)
  return requeue(rows_.forget_transit(std::numeric_limits<std::int64_t>::max()), std::nullopt);
}

void Scheduler::started_after(std::int64_t rowid, std::int64_t latency_ms) {
  if (resent_.erase(rowid) > 0) return;
  transit_timeout_.observe(latency_ms);
}

std::size_t Scheduler::requeue(const std::vector<std::pair<std::string, Row>>& forgotten,
                               std::optional<std::int64_t> guessed_at) {
  if (forgotten.empty()) return 0;
  // Karn: a task sent again and presumed lost again means the guess was too short.
  if (guessed_at && std::any_of(forgotten.begin(), forgotten.end(),
                                [&](const auto& f) { return resent_.contains(f.second.rowid); })) {
    transit_timeout_.back_off(*guessed_at);
  }
  if (resent_.size() > 100000) resent_.clear();  // (rows cancelled or deleted meanwhile)
  for (const auto& [id, row] : forgotten) {
    // (its row in the database is ready since before it was sent: due by then at the latest)
    queue_.push(row.sent_at.value_or(0), row.rowid, id_job(id));
    resent_.insert(row.rowid);
  }
  return forgotten.size();
}

std::optional<std::int64_t> Scheduler::next_timer_due() const {
  const auto lease = rows_.next_lease_due();
  auto transit = rows_.oldest_transit_sent();
  if (transit) *transit += transit_timeout_.ms();
  if (lease && transit) return std::min(*lease, *transit);
  return lease ? lease : transit;
}

std::vector<wire::Task> Scheduler::dispatch(std::int64_t room, std::int64_t now) {
  std::vector<wire::Task> tasks;
  if (room <= 0) return tasks;
  std::vector<ReadyQueue::Item> taken;
  try {
    std::optional<sqlite::ReadTransaction> read;
    while (room > 0) {
      const auto item = queue_.pop_due(now);
      if (!item) break;
      taken.push_back(*item);
      if (!read) read.emplace(table_.database());
      auto task = table_.load_task(item->rowid);
      // Entries are hints: the row must still be ready (not adopted by a report, cancelled or
      // deleted), due (not rescheduled for later: its later entry is in the queue), and not in
      // transit or running already (an entry pushed twice).
      if (!task || task->row.status != Status::pending || !task->row.due_at ||
          *task->row.due_at > now) {
        continue;
      }
      row_id(id_, task->job, task->key);
      if (rows_.find(id_) != nullptr) continue;
      auto row = std::move(task->row);
      const auto r = on_due(row, policy_, now);
      assert(r.dispatch && row.in_transit());
      (void)r;
      tasks.push_back(wire::Task{std::move(task->job), std::move(task->key),
                                 std::move(task->payload),
                                 static_cast<std::uint32_t>(row.attempts)});
      rows_.put(id_, std::move(row));
      --room;
    }
  } catch (const sqlite::SqliteError&) {
    // Nothing was sent: forget what this round put in transit and queue every entry again.
    for (const auto& t : tasks) rows_.put(row_id(t.job, t.key), std::nullopt);
    for (const auto& item : taken) queue_.push(item.due, item.rowid, item.job);
    throw;
  }
  return tasks;
}

}  // namespace topicflow::sink
