#include "api_reads.hpp"

namespace topicflow::api {

using store::Status;

ApiReader::ApiReader(const std::string& db_path) : db_(store::open_read_only(db_path)) {}

std::vector<store::JobCounts> ApiReader::jobs() { return store::read_counts(db_); }

std::optional<store::JobCounts> ApiReader::job(std::string_view name) {
  auto counts = store::read_counts(db_, std::string(name));
  if (counts.empty()) return std::nullopt;
  return std::move(counts.front());
}

namespace {

TopicSummary summary(const sqlite::Statement& q) {
  TopicSummary t;
  t.key = std::string(q.column_text(0));
  t.status = std::string(q.column_text(1));
  t.attempts = q.column_int(2);
  t.updated_at = q.column_int(3);
  if (!q.is_null(4)) t.error = std::string(q.column_text(4));
  return t;
}

}  // namespace

Page ApiReader::topics(std::string_view job, std::optional<Status> status,
                       const std::optional<std::string>& after,
                       const std::optional<std::string>& from, std::int64_t limit) {
  Page page;
  // (start of the walk: after the cursor, or at `from`; "" sorts before every key)
  const std::string start = after ? *after : from.value_or("");
  const char* op = after ? ">" : ">=";
  const bool indexed = status == Status::failed || status == Status::cancelled;
  std::string sql = "SELECT key, status, attempts, updated_at, error FROM topics ";
  if (indexed) {
    sql += status == Status::failed ? "INDEXED BY topics_failed " : "INDEXED BY topics_cancelled ";
  }
  sql += std::string("WHERE job = ?1 AND key ") + op + " ?2";
  if (indexed) {
    sql += status == Status::failed ? " AND status = 'failed'" : " AND status = 'cancelled'";
  }
  sql += " ORDER BY key LIMIT ?3";
  auto q = db_.prepare(sql);
  if (indexed || !status) {
    // every row the walk meets belongs on the page: one more tells whether there is a next
    q.bind(1, job).bind(2, start).bind(3, limit + 1);
    while (q.step()) page.topics.push_back(summary(q));
    if (static_cast<std::int64_t>(page.topics.size()) > limit) {
      page.topics.pop_back();
      page.next = page.topics.back().key;
    }
    return page;
  }
  // Another status: walk the job in windows, keep the rows with that status, and stop at a
  // full page, the end of the job, or kMaxScan rows (then the page is short and `next` says
  // where the walk stopped).
  const auto wanted = store::to_string(*status);
  constexpr std::int64_t kWindow = 2000;
  std::string cursor = start;
  bool inclusive = !after.has_value();
  std::int64_t scanned = 0;
  for (;;) {
    auto w = db_.prepare(std::string("SELECT key, status, attempts, updated_at, error FROM topics "
                                     "WHERE job = ?1 AND key ") +
                         (inclusive ? ">=" : ">") + " ?2 ORDER BY key LIMIT ?3");
    w.bind(1, job).bind(2, cursor).bind(3, kWindow);
    std::int64_t rows = 0;
    while (w.step()) {
      ++rows;
      ++scanned;
      cursor = std::string(w.column_text(0));
      if (w.column_text(1) != wanted) continue;
      if (static_cast<std::int64_t>(page.topics.size()) == limit) {
        // a row beyond the page: there is a next page, starting after the last one kept
        page.next = page.topics.back().key;
        return page;
      }
      page.topics.push_back(summary(w));
    }
    inclusive = false;
    if (rows < kWindow) return page;  // the end of the job
    if (scanned >= kMaxScan) {
      page.next = cursor;  // walked enough for one request: go on from here
      return page;
    }
  }
}

std::optional<TopicDetail> ApiReader::topic(std::string_view job, std::string_view key) {
  auto q = db_.prepare(
      "SELECT job, key, payload, status, attempts, result, error, worker, created_at, "
      "updated_at FROM topics WHERE job = ?1 AND key = ?2");
  q.bind(1, job).bind(2, key);
  if (!q.step()) return std::nullopt;
  TopicDetail t;
  t.job = std::string(q.column_text(0));
  t.key = std::string(q.column_text(1));
  t.payload = std::string(q.column_blob(2));
  t.status = std::string(q.column_text(3));
  t.attempts = q.column_int(4);
  if (!q.is_null(5)) t.result = std::string(q.column_blob(5));
  if (!q.is_null(6)) t.error = std::string(q.column_text(6));
  t.worker = std::string(q.column_text(7));
  t.created_at = q.column_int(8);
  t.updated_at = q.column_int(9);
  return t;
}

std::vector<store::ErrorRow> ApiReader::errors(std::string_view job, int limit) {
  return store::recent_errors(db_, std::string(job), limit);
}

}  // namespace topicflow::api
