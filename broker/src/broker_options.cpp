#include <topicflow/broker_options.hpp>
#include <topicflow/config.hpp>

namespace topicflow {

void add_broker_options(CLI::App& app, BrokerConfig& c) {
  add_flag_option(app, "--hwm", c.hwm, "tasks queued in the broker's frontend")
      ->check(CLI::Range(0, 10000000));
  add_flag_option(app, "--backend-hwm", c.backend_hwm,
                  "tasks queued per worker connection (small: no hoarding)")
      ->check(CLI::Range(1, 1000000));
  add_metrics_options(app, c.metrics_port, c.metrics_address);
}

}  // namespace topicflow
