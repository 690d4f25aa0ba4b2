#include "batch_commit.hpp"

namespace topicflow::sink {
namespace {

void reset_counts(wire::Ack& ack) {
  ack.accepted = ack.duplicates = ack.skipped_completed = ack.requeued = ack.already_queued = 0;
  ack.rejected = ack.skipped_failed = 0;
}

}  // namespace

bool BatchCommit::run(Batch& batch, std::int64_t wall, Effects& fx) {
  for (auto& ack : batch.acks()) reset_counts(ack);  // (a failed try counted them already)
  try {
    sqlite::Transaction tx(db_);
    if (batch.new_broker()) table_.set_meta("broker_instance", *batch.new_broker());
    writer_.apply(batch, wall, fx);
    writer_.expire_leases(wall, fx);
    writer_.flush_counts(wall, fx);
    tx.commit();
  } catch (const sqlite::BusyError& e) {
    ++counters_.busy_retries;
    state_.failed(DatabaseState::Kind::busy, e.what(), batch.events(), clock_.steady_ms());
    return false;
  } catch (const sqlite::UnavailableError& e) {
    // (a full disk or an I/O error: SQLite rolled the transaction back, the file is intact)
    ++counters_.unavailable_retries;
    state_.failed(DatabaseState::Kind::unavailable, e.what(), batch.events(), clock_.steady_ms());
    return false;
  }
  return true;
}

}  // namespace topicflow::sink
