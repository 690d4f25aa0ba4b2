#include "rows_in_flight.hpp"

namespace topicflow::sink {

const Row* RowsInFlight::find(const std::string& id) const {
  const auto it = rows_.find(id);
  return it == rows_.end() ? nullptr : &it->second;
}

const std::string* RowsInFlight::id_of(const std::string& id) const {
  const auto it = rows_.find(id);
  return it == rows_.end() ? nullptr : &it->first;
}

void RowsInFlight::unindex(const Row& row) {
  if (row.in_transit()) transit_by_sent_.erase({*row.sent_at, row.rowid});
  if (row.status == store::Status::running && row.due_at) {
    lease_by_due_.erase({*row.due_at, row.rowid});
  }
}

void RowsInFlight::index(const std::string& id, const Row& row) {
  if (row.in_transit()) transit_by_sent_.emplace(std::pair{*row.sent_at, row.rowid}, &id);
  if (row.status == store::Status::running && row.due_at) {
    lease_by_due_.emplace(std::pair{*row.due_at, row.rowid}, &id);
  }
}

void RowsInFlight::put(std::string id, std::optional<Row> row) {
  if (row) {  // the committed state only: nothing left to write
    row->new_payload.reset();
    row->new_result.reset();
    row->changed = false;
    row->requeued = false;
  }
  auto it = rows_.find(id);
  if (it != rows_.end()) {
    unindex(it->second);
    if (!row) {
      rows_.erase(it);
      return;
    }
    it->second = std::move(*row);
  } else {
    if (!row) return;
    it = rows_.emplace(std::move(id), std::move(*row)).first;
  }
  index(it->first, it->second);
}

std::optional<std::int64_t> RowsInFlight::oldest_transit_sent() const {
  if (transit_by_sent_.empty()) return std::nullopt;
  return transit_by_sent_.begin()->first.first;
}

std::vector<std::pair<std::string, Row>> RowsInFlight::forget_transit(std::int64_t sent_by) {
  std::vector<std::pair<std::string, Row>> forgotten;
  while (!transit_by_sent_.empty() && transit_by_sent_.begin()->first.first <= sent_by) {
    const auto cached = rows_.find(*transit_by_sent_.begin()->second);
    transit_by_sent_.erase(transit_by_sent_.begin());
    forgotten.emplace_back(cached->first, std::move(cached->second));
    rows_.erase(cached);
  }
  return forgotten;
}

std::optional<std::int64_t> RowsInFlight::next_lease_due() const {
  if (lease_by_due_.empty()) return std::nullopt;
  return lease_by_due_.begin()->first.first;
}

std::vector<std::string> RowsInFlight::expired_leases(std::int64_t now, std::size_t limit) const {
  std::vector<std::string> ids;
  for (auto it = lease_by_due_.begin();
       it != lease_by_due_.end() && it->first.first <= now && ids.size() < limit; ++it) {
    ids.push_back(*it->second);
  }
  return ids;
}

void RowsInFlight::for_each(const std::function<void(std::string_view, const Row&)>& f) const {
  for (const auto& [id, row] : rows_) f(id, row);
}

}  // namespace topicflow::sink
