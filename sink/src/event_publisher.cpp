#include "event_publisher.hpp"

namespace topicflow::sink {

void EventPublisher::publish(const std::string& topic, const wire::Message& body) {
  zmq::message_t head(topic.data(), topic.size());
  zmq::message_t payload(wire::encode(body));
  // PUB never blocks; a slow subscriber loses events and recovers them by repeating hello.
  if (pub_.send(head, zmq::send_flags::sndmore | zmq::send_flags::dontwait)) {
    (void)pub_.send(payload, zmq::send_flags::dontwait);
  }
}

void EventPublisher::progress(const std::string& job) {
  publish(wire::progress_topic(job),
          progress_.progress(job, counters_, clock_.wall_ms(), window_.workers()));
  progress_.published(job, clock_.steady_ms());
}

void EventPublisher::due_progress(bool force) {
  for (const auto& job : progress_.take_due(clock_.steady_ms(), force)) {
    publish(wire::progress_topic(job),
            progress_.progress(job, counters_, clock_.wall_ms(), window_.workers()));
  }
}

}  // namespace topicflow::sink
