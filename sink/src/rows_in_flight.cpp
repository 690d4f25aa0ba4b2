#include "rows_in_flight.hpp"

namespace topicflow::sink {

const Row* RowsInFlight::find(const std::string& id) const {
  const auto it = rows_.find(id);
  return it == rows_.end() ? nullptr : &it->second;
}

void RowsInFlight::put(std::string id, std::optional<Row> row) {
  auto it = rows_.find(id);
  if (it != rows_.end()) {
    if (it->second.in_transit()) transit_by_due_.erase({*it->second.due_at, it->second.rowid});
    if (!row) {
      rows_.erase(it);
      return;
    }
    it->second = std::move(*row);
  } else {
    if (!row) return;
    it = rows_.emplace(std::move(id), std::move(*row)).first;
  }
  if (it->second.in_transit()) {
    transit_by_due_.emplace(std::pair{*it->second.due_at, it->second.rowid}, &it->first);
  }
}

std::optional<std::int64_t> RowsInFlight::next_transit_due() const {
  if (transit_by_due_.empty()) return std::nullopt;
  return transit_by_due_.begin()->first.first;
}

std::size_t RowsInFlight::forget_transit(std::int64_t until) {
  std::size_t n = 0;
  while (!transit_by_due_.empty() && transit_by_due_.begin()->first.first <= until) {
    const auto cached = rows_.find(*transit_by_due_.begin()->second);
    transit_by_due_.erase(transit_by_due_.begin());
    rows_.erase(cached);
    ++n;
  }
  return n;
}

void RowsInFlight::for_each(const std::function<void(std::string_view, const Row&)>& f) const {
  for (const auto& [id, row] : rows_) f(id, row);
}

}  // namespace topicflow::sink
