#pragma once
// The sink's way in: a frame from its PULL socket, or a call from the HTTP API, becomes events,
// acks and job requests in the batch. Decodes every frame (a bad one is counted in
// `decode_errors`, rate-limit-logged and dropped: the per-message firewall), maps the wire's
// kinds onto the state machine's, hears workers for the dispatch window, and marks the reports
// whose commit frees dispatch room. Owns no socket: a hello is answered through the callback
// given (the loop publishes the ack and the job's progress). Time comes from the clock given.
// Not thread-safe (the loop's thread).

#include "api_inbox.hpp"
#include "batch.hpp"
#include "dispatch_window.hpp"
#include "rows_in_flight.hpp"

#include <topicflow/clock.hpp>
#include <topicflow/log.hpp>
#include <topicflow/sink.hpp>
#include <topicflow/sink_state.hpp>
#include <topicflow/wire.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace topicflow::sink {

[[nodiscard]] EventKind to_event_kind(wire::UpdateKind kind);

class Intake {
 public:
  using HelloAnswer = std::function<void(const wire::Hello&)>;

  // `broker_instance`: the broker instance of record (changed by the loop after a commit); a
  // broker_hello naming it, or the one already in the batch, changes nothing.
  Intake(Batch& batch, const RowsInFlight& rows, DispatchWindow& window, SinkCounters& counters,
         const Clock& clock, const std::string& broker_instance, HelloAnswer answer_hello);

  // One frame from the PULL socket.
  void handle(std::string_view frame);
  // Calls from the HTTP API (ApiInbox::take): submissions and job actions.
  void take(std::vector<std::shared_ptr<ApiCall>> calls);

 private:
  void on_message(wire::Submit& m);
  void on_message(wire::Report& m);
  void on_message(const wire::Hello& m);
  void on_message(const wire::Control& m);
  void on_message(const wire::Requeue& m);
  void on_message(const wire::BrokerHello& m);
  template <typename T>
  void on_message(const T& /*unexpected*/);
  void add_event(std::string_view job, std::string_view key, Event event);

  Batch& batch_;
  const RowsInFlight& rows_;
  DispatchWindow& window_;
  SinkCounters& counters_;
  const Clock& clock_;
  const std::string& broker_instance_;
  HelloAnswer answer_hello_;
  wire::Limits limits_;
  RateLimitedLog bad_messages_;
  std::int64_t started_wall_ms_;
  std::uint64_t api_submissions_ = 0;
};

}  // namespace topicflow::sink
