#pragma once
// The broker's command-line options, defined once: topicflow-broker takes them, and the README's
// topicflow-broker table is generated from them (--help-markdown).

#include <topicflow/broker.hpp>

namespace CLI {
class App;
}

namespace topicflow {

// Adds the broker's own options bound to `config` (flag, TOPICFLOW_<FLAG>, default, range,
// help). The endpoint, CURVE and logging options are add_common_options' (config.hpp).
void add_broker_options(CLI::App& app, BrokerConfig& config);

}  // namespace topicflow
