#pragma once
// What the sink publishes on its PUB socket: acks, cancels and job progress, each as two frames
// (the topic, then the msgpack body). PUB never blocks: a slow subscriber loses events and
// recovers them by repeating hello. Progress events go out when JobProgress says they are due
// (at most every JobProgress::kIntervalMs per job, and the final state at once). Not
// thread-safe (the loop's thread).

#include "dispatch_window.hpp"
#include "job_progress.hpp"

#include <topicflow/clock.hpp>
#include <topicflow/sink.hpp>
#include <topicflow/wire.hpp>
#include <zmq.hpp>

#include <string>

namespace topicflow::sink {

class EventPublisher {
 public:
  EventPublisher(zmq::socket_t& pub, JobProgress& progress, const SinkCounters& counters,
                 const DispatchWindow& window, const Clock& clock)
      : pub_(pub), progress_(progress), counters_(counters), window_(window), clock_(clock) {}

  void publish(const std::string& topic, const wire::Message& body);
  // `job`'s progress now (an answer to a hello), whether due or not.
  void progress(const std::string& job);
  // The progress of the jobs whose event is due (of every changed job with `force`).
  void due_progress(bool force);

 private:
  zmq::socket_t& pub_;
  JobProgress& progress_;
  const SinkCounters& counters_;
  const DispatchWindow& window_;
  const Clock& clock_;
};

}  // namespace topicflow::sink
