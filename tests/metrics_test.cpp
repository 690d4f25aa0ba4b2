// The metrics endpoints of the broker, the worker and the sink, scraped over real HTTP (a raw
// loopback socket, as Prometheus would): every documented name is there (docs/metrics.md), the
// values move with the work done, and /healthz answers. Everything in-process, ephemeral ports.
#include <topicflow/broker.hpp>
#include <topicflow/clock.hpp>
#include <topicflow/handler.hpp>
#include <topicflow/metrics.hpp>
#include <topicflow/shutdown.hpp>
#include <topicflow/sink.hpp>
#include <topicflow/wire.hpp>
#include <topicflow/worker.hpp>
#include <topicflow/worker_metrics.hpp>

#include "support/http.hpp"
#include "support/temp_dir.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zmq.hpp>

#include <filesystem>
#include <random>
#include <regex>
#include <string>
#include <thread>
#include <vector>

namespace tf = topicflow;

namespace {

using topicflow::testing::free_port;
using topicflow::testing::http_get;
double sample(const std::string& text, const std::string& name) {
  return topicflow::testing::metric(text, name);
}

// Every name has its HELP and TYPE lines (of `type`) and at least one sample.
void expect_metric(const std::string& text, const std::string& name, const std::string& type) {
  EXPECT_NE(text.find("# HELP " + name + " "), std::string::npos) << name << " has no HELP in:\n"
                                                                  << text;
  EXPECT_NE(text.find("# TYPE " + name + " " + type + "\n"), std::string::npos)
      << name << " is not a " << type << " in:\n"
      << text;
  const auto sample_name = type == "histogram" ? name + "_count" : name;
  EXPECT_TRUE(
      std::regex_search(text, std::regex("(^|\n)" + sample_name + "(\\{[^}]*\\})? [0-9.e+-]+\n")))
      << name << " has no sample in:\n"
      << text;
}

void expect_healthy(int port) {
  const auto health = http_get(port, "/healthz");
  EXPECT_EQ(health.status, 200) << health.body;
  EXPECT_EQ(health.body, "ok\n");
}

template <typename Pred>
bool eventually(Pred pred, std::int64_t timeout_ms = 5000) {
  const auto until = tf::steady_ms() + timeout_ms;
  while (!pred()) {
    if (tf::steady_ms() > until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

TEST(Metrics, BrokerServesItsCountersOverHttp) {
  zmq::context_t ctx(1);
  zmq::socket_t fake_sink(ctx, zmq::socket_type::pull);
  fake_sink.set(zmq::sockopt::linger, 0);
  fake_sink.bind("tcp://127.0.0.1:*");
  tf::BrokerConfig config;
  config.endpoints.frontend = "tcp://127.0.0.1:*";
  config.endpoints.backend = "tcp://127.0.0.1:*";
  config.endpoints.sink = fake_sink.get(zmq::sockopt::last_endpoint);
  tf::Broker broker(config, &ctx);
  tf::MetricsServer server("127.0.0.1", 0, [&broker] { return broker.metrics_text(); });
  tf::StopSignal stop;
  std::thread thread([&] { broker.run(stop); });

  zmq::socket_t producer(ctx, zmq::socket_type::push);
  producer.set(zmq::sockopt::linger, 0);
  producer.connect(broker.frontend_endpoint());
  zmq::socket_t worker(ctx, zmq::socket_type::pull);
  worker.set(zmq::sockopt::linger, 0);
  worker.set(zmq::sockopt::rcvtimeo, 5000);
  worker.connect(broker.backend_endpoint());
  for (int i = 0; i < 3; ++i)
    ASSERT_TRUE(producer.send(zmq::buffer(std::string("task")), zmq::send_flags::none));
  for (int i = 0; i < 3; ++i) {
    zmq::message_t msg;
    ASSERT_TRUE(worker.recv(msg)) << "message " << i << " never reached the worker";
  }

  std::string text;
  EXPECT_TRUE(eventually([&] {
    const auto r = http_get(server.port(), "/metrics");
    text = r.body;
    return r.status == 200 && sample(text, "topicflow_broker_messages_forwarded_total") == 3 &&
           sample(text, "topicflow_broker_hellos_sent_total") >= 1;
  })) << text;
  expect_metric(text, "topicflow_broker_info", "gauge");
  expect_metric(text, "topicflow_broker_messages_forwarded_total", "counter");
  expect_metric(text, "topicflow_broker_hellos_sent_total", "counter");
  expect_metric(text, "topicflow_broker_hellos_dropped_total", "counter");
  expect_metric(text, "topicflow_broker_backend_waits_total", "counter");
  expect_metric(text, "topicflow_broker_messages_held", "gauge");
  EXPECT_NE(text.find("instance=\"" + broker.instance() + "\""), std::string::npos) << text;
  expect_healthy(server.port());
  EXPECT_EQ(http_get(server.port(), "/nothing").status, 404);

  stop.trigger();
  thread.join();
}

TEST(Metrics, BrokerCountsAMessageHeldForLackOfWorkers) {
  zmq::context_t ctx(1);
  tf::BrokerConfig config;
  config.endpoints.frontend = "inproc://held-frontend";
  config.endpoints.backend = "inproc://held-backend";
  config.endpoints.sink = "inproc://held-sink";
  tf::Broker broker(config, &ctx);
  tf::StopSignal stop;
  std::thread thread([&] { broker.run(stop); });
  zmq::socket_t producer(ctx, zmq::socket_type::push);
  producer.set(zmq::sockopt::linger, 0);
  producer.connect(config.endpoints.frontend);
  ASSERT_TRUE(producer.send(zmq::buffer(std::string("task")), zmq::send_flags::none));
  // No worker connected: the broker holds the message and says so.
  EXPECT_TRUE(eventually([&] { return broker.counters().held == 1; })) << broker.metrics_text();
  const auto text = broker.metrics_text();
  EXPECT_EQ(sample(text, "topicflow_broker_messages_held"), 1) << text;
  EXPECT_GE(sample(text, "topicflow_broker_backend_waits_total"), 1) << text;

  zmq::socket_t worker(ctx, zmq::socket_type::pull);
  worker.set(zmq::sockopt::linger, 0);
  worker.set(zmq::sockopt::rcvtimeo, 5000);
  worker.connect(config.endpoints.backend);
  zmq::message_t msg;
  ASSERT_TRUE(worker.recv(msg));
  EXPECT_TRUE(eventually([&] { return broker.counters().held == 0; })) << broker.metrics_text();
  stop.trigger();
  thread.join();
}

TEST(Metrics, WorkerServesItsCountersAndTaskDurationsOverHttp) {
  zmq::context_t ctx(1);
  zmq::socket_t backend(ctx, zmq::socket_type::push);
  zmq::socket_t sink(ctx, zmq::socket_type::pull);
  backend.set(zmq::sockopt::linger, 0);
  sink.set(zmq::sockopt::linger, 0);
  backend.bind("tcp://127.0.0.1:*");
  sink.bind("tcp://127.0.0.1:*");
  tf::WorkerConfig cfg;
  cfg.endpoints.backend = backend.get(zmq::sockopt::last_endpoint);
  cfg.endpoints.sink = sink.get(zmq::sockopt::last_endpoint);
  cfg.id = "metrics-worker";
  cfg.concurrency = 3;
  cfg.handler = "sleep:5,fail:0.5";
  tf::HandlerOptions options;
  options.seed = 42;
  const tf::WorkerMetrics metrics;
  tf::Worker worker(cfg, metrics.instrument(tf::make_handler(cfg.handler, options)));
  tf::MetricsServer server("127.0.0.1", 0, [&] { return metrics.render(worker, cfg); });
  tf::StopSignal stop;
  std::thread thread([&] { worker.run(stop); });

  constexpr int kTasks = 20;
  for (int i = 0; i < kTasks; ++i) {
    const auto bytes =
        tf::wire::encode(tf::wire::Task{"job", "key " + std::to_string(i), "payload", 1});
    ASSERT_TRUE(backend.send(zmq::buffer(bytes), zmq::send_flags::none));
  }
  ASSERT_TRUE(eventually(
      [&] {
        const auto c = worker.counters();
        return c.completed + c.failed == kTasks;
      },
      10000))
      << "the worker finished " << worker.counters().completed + worker.counters().failed << " of "
      << kTasks;

  const auto r = http_get(server.port(), "/metrics");
  ASSERT_EQ(r.status, 200) << r.body;
  const auto& text = r.body;
  for (const char* name :
       {"topicflow_worker_tasks_received_total", "topicflow_worker_tasks_completed_total",
        "topicflow_worker_tasks_failed_total", "topicflow_worker_tasks_released_total",
        "topicflow_worker_bad_messages_total", "topicflow_worker_reports_sent_total",
        "topicflow_worker_updates_sent_total"}) {
    expect_metric(text, name, "counter");
  }
  for (const char* name : {"topicflow_worker_info", "topicflow_worker_tasks_in_flight",
                           "topicflow_worker_tasks_in_flight_max", "topicflow_worker_slots"}) {
    expect_metric(text, name, "gauge");
  }
  expect_metric(text, "topicflow_worker_task_duration_seconds", "histogram");

  const auto c = worker.counters();
  EXPECT_EQ(sample(text, "topicflow_worker_tasks_received_total"), kTasks) << text;
  EXPECT_EQ(sample(text, "topicflow_worker_tasks_completed_total"),
            static_cast<double>(c.completed))
      << text;
  EXPECT_EQ(sample(text, "topicflow_worker_tasks_failed_total"), static_cast<double>(c.failed))
      << text;
  EXPECT_GT(c.failed, 0U) << "fail:0.5 over 20 tasks";
  EXPECT_EQ(sample(text, "topicflow_worker_tasks_in_flight"), 0) << text;
  EXPECT_EQ(sample(text, "topicflow_worker_slots"), 3) << text;
  // Every task was timed; each slept 5 ms, so none is in the first two buckets (1 ms, 5 ms is
  // inclusive but sleeping takes a little longer) and all are by 1 s.
  EXPECT_EQ(sample(text, "topicflow_worker_task_duration_seconds_count"), kTasks) << text;
  EXPECT_GE(sample(text, "topicflow_worker_task_duration_seconds_sum"), kTasks * 0.005) << text;
  EXPECT_NE(text.find("topicflow_worker_task_duration_seconds_bucket{le=\"0.001\"} 0\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("topicflow_worker_task_duration_seconds_bucket{le=\"1\"} 20\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("worker=\"metrics-worker\",handler=\"sleep:5,fail:0.5\""), std::string::npos)
      << text;
  expect_healthy(server.port());

  stop.trigger();
  thread.join();
}

TEST(Metrics, SinkServesItsCountersOverHttp) {
  const topicflow::testing::TempDir dir("metrics-test");
  zmq::context_t ctx(1);
  zmq::socket_t frontend(ctx, zmq::socket_type::pull);
  frontend.set(zmq::sockopt::linger, 0);
  frontend.bind("tcp://127.0.0.1:*");
  tf::SinkConfig cfg;
  cfg.db = dir.file("t.db");
  cfg.endpoints.frontend = frontend.get(zmq::sockopt::last_endpoint);
  cfg.endpoints.sink = "tcp://127.0.0.1:*";
  cfg.endpoints.events = "tcp://127.0.0.1:*";
  cfg.metrics_port = free_port();
  ASSERT_GT(cfg.metrics_port, 0);
  {
    tf::Sink sink(cfg, &ctx);
    ASSERT_EQ(sink.http_port(), cfg.metrics_port) << "--metrics-port is the alias of --http-port";
    tf::StopSignal stop;
    std::thread thread([&] { sink.run(stop); });
    std::string text;
    EXPECT_TRUE(eventually([&] {
      const auto r = http_get(cfg.metrics_port, "/metrics");
      text = r.body;
      return r.status == 200 &&
             text.find("topicflow_sink_commit_seconds_count") != std::string::npos;
    })) << text;
    for (const char* name :
         {"topicflow_sink_messages_received_total", "topicflow_sink_updates_committed_total",
          "topicflow_sink_batches_committed_total", "topicflow_sink_busy_retries_total",
          "topicflow_sink_decode_errors_total", "topicflow_sink_tasks_dispatched_total",
          "topicflow_sink_tasks_redelivered_total", "topicflow_sink_tasks_retried_total",
          "topicflow_sink_leases_expired_total", "topicflow_sink_duplicate_deliveries_total",
          "topicflow_sink_stale_updates_total", "topicflow_sink_bogus_updates_total"}) {
      expect_metric(text, name, "counter");
    }
    for (const char* name : {"topicflow_sink_tasks_in_transit", "topicflow_sink_buffered_updates",
                             "topicflow_sink_workers"}) {
      expect_metric(text, name, "gauge");
    }
    EXPECT_NE(text.find("# TYPE topicflow_topics gauge\n"), std::string::npos) << text;
    expect_metric(text, "topicflow_sink_batch_size", "histogram");
    expect_metric(text, "topicflow_sink_commit_seconds", "histogram");
    expect_healthy(cfg.metrics_port);
    stop.trigger();
    thread.join();
  }
}

TEST(Metrics, HistogramBucketsAreCumulative) {
  tf::Histogram h({0.1, 1});
  h.observe(0.05);
  h.observe(0.5);
  h.observe(0.5);
  h.observe(5);
  tf::MetricsText m;
  h.render(m, "x_seconds", "test");
  EXPECT_EQ(m.str(),
            "# HELP topicflow_x_seconds test\n# TYPE topicflow_x_seconds histogram\n"
            "topicflow_x_seconds_bucket{le=\"0.1\"} 1\ntopicflow_x_seconds_bucket{le=\"1\"} 3\n"
            "topicflow_x_seconds_bucket{le=\"+Inf\"} 4\ntopicflow_x_seconds_sum 6.05\n"
            "topicflow_x_seconds_count 4\n");
}

}  // namespace
