#include "intake.hpp"

#include <spdlog/spdlog.h>

#include <utility>
#include <variant>

namespace topicflow::sink {

EventKind to_event_kind(wire::UpdateKind kind) {
  switch (kind) {
    case wire::UpdateKind::started: return EventKind::started;
    case wire::UpdateKind::heartbeat: return EventKind::heartbeat;
    case wire::UpdateKind::completed: return EventKind::completed;
    case wire::UpdateKind::failed: return EventKind::failed;
    case wire::UpdateKind::released: return EventKind::released;
  }
  return EventKind::started;
}

Intake::Intake(Batch& batch, const RowsInFlight& rows, DispatchWindow& window,
               SinkCounters& counters, const Clock& clock, const std::string& broker_instance,
               HelloAnswer answer_hello)
    : batch_(batch),
      rows_(rows),
      window_(window),
      counters_(counters),
      clock_(clock),
      broker_instance_(broker_instance),
      answer_hello_(std::move(answer_hello)),
      started_wall_ms_(clock.wall_ms()) {}

void Intake::handle(std::string_view frame) {
  ++counters_.messages;
  wire::Message message;
  try {
    message = wire::decode(frame, limits_);
  } catch (const wire::DecodeError& e) {
    ++counters_.decode_errors;
    bad_messages_.warn(fmt::format("dropped a bad message ({} bytes): {}", frame.size(), e.what()));
    return;
  }
  std::visit([this](auto& m) { on_message(m); }, message);
}

void Intake::on_message(wire::Submit& m) {
  const auto ack = batch_.add_ack(
      wire::Ack{.client = m.submission, .kind = wire::AckKind::submit, .seq = m.seq});
  batch_.touch(clock_.steady_ms());
  if (m.items.empty()) return;
  const std::string_view origin = batch_.keep_origin(std::move(m.submission));
  for (auto& item : m.items) {
    add_event(m.job, item.key,
              Event{.kind = EventKind::submit,
                    .requeue_failed = m.requeue_failed,
                    .data = std::move(item.payload),
                    .origin = origin,
                    .ack = ack});
  }
}

void Intake::on_message(wire::Report& m) {
  if (!m.worker.empty()) window_.heard_from(m.worker, m.slots, clock_.steady_ms());
  if (m.updates.empty()) return;
  const std::string_view origin = batch_.keep_origin(std::move(m.worker));
  for (auto& u : m.updates) {
    add_event(u.job, u.key,
              Event{.kind = to_event_kind(u.kind),
                    .attempt = u.attempt,
                    .retryable = u.retryable,
                    .data = std::move(u.data),
                    .origin = origin});
  }
}

void Intake::on_message(const wire::Hello& m) { answer_hello_(m); }

void Intake::on_message(const wire::Control& m) {
  using Kind = JobRequest::Kind;
  Kind kind = Kind::pause;
  switch (m.action) {
    case wire::ControlAction::pause: kind = Kind::pause; break;
    case wire::ControlAction::resume: kind = Kind::resume; break;
    case wire::ControlAction::cancel: kind = Kind::cancel; break;
    case wire::ControlAction::remove: kind = Kind::remove; break;
  }
  batch_.add_request(JobRequest{kind, m.job, m.client, nullptr});
  batch_.touch(clock_.steady_ms());
}

void Intake::on_message(const wire::Requeue& m) {
  batch_.add_request(JobRequest{JobRequest::Kind::requeue_failed, m.job, m.client});
  batch_.touch(clock_.steady_ms());
}

void Intake::on_message(const wire::BrokerHello& m) {
  if (m.instance == broker_instance_ || batch_.new_broker() == m.instance) return;
  if (broker_instance_.empty()) {
    spdlog::info("broker instance {} announced itself", m.instance);
  } else {
    spdlog::info("broker instance {} announced itself (was {}): redelivering tasks in transit",
                 m.instance, broker_instance_);
  }
  batch_.set_new_broker(m.instance);
  batch_.touch(clock_.steady_ms());
}

template <typename T>
void Intake::on_message(const T& /*unexpected*/) {
  ++counters_.decode_errors;
  bad_messages_.warn(
      fmt::format("dropped a message of type {} that does not belong on the sink socket",
                  wire::type_name(wire::Message(T{}))));
}

// Submissions and job actions from the HTTP API (api_inbox.hpp), answered after the commit.
void Intake::take(std::vector<std::shared_ptr<ApiCall>> calls) {
  for (auto& call : calls) {
    using Kind = ApiCall::Kind;
    using RequestKind = JobRequest::Kind;
    if (call->kind == Kind::submit) {
      const auto ack = batch_.add_ack(wire::Ack{.kind = wire::AckKind::submit});
      // (a submission id of its own, as a producer run has: same key twice in it = duplicate)
      const std::string_view origin =
          batch_.keep_origin(fmt::format("http-{}-{}", started_wall_ms_, ++api_submissions_));
      for (auto& item : call->items) {
        add_event(call->job, item.key,
                  Event{.kind = EventKind::submit,
                        .data = std::move(item.payload),
                        .origin = origin,
                        .ack = ack});
      }
      batch_.add_api_submit(ack, std::move(call));
      batch_.touch(clock_.steady_ms());
      continue;
    }
    RequestKind kind = RequestKind::pause;
    switch (call->kind) {
      case Kind::pause: kind = RequestKind::pause; break;
      case Kind::resume: kind = RequestKind::resume; break;
      case Kind::cancel: kind = RequestKind::cancel; break;
      case Kind::retry_failed: kind = RequestKind::requeue_failed; break;
      case Kind::remove: kind = RequestKind::remove; break;
      case Kind::submit: break;
    }
    auto job = call->job;
    batch_.add_request(JobRequest{kind, std::move(job), {}, std::move(call)});
    batch_.touch(clock_.steady_ms());
  }
}

void Intake::add_event(std::string_view job, std::string_view key, Event event) {
  const auto kind = event.kind;
  auto& entry = batch_.add(job, key, std::move(event));
  if (!entry.takes && kind != EventKind::submit && kind != EventKind::heartbeat) {
    // Only a hint for when to commit (the state machine decides what the event does).
    if (const auto* cached = rows_.find(entry.id); cached != nullptr && cached->in_transit()) {
      batch_.mark_takes(entry);
    }
  }
  batch_.touch(clock_.steady_ms());
}

}  // namespace topicflow::sink
