#pragma once
// The producer's command-line options, defined once: topicflow-producer takes all of them,
// `topicflow run` --job and --format (add_options_subset), and the README's topicflow-producer
// table is generated from them (--help-markdown). The input FILE is the program's positional
// argument, not one of these.

#include <topicflow/producer.hpp>

namespace CLI {
class App;
}

namespace topicflow {

// Adds the producer's own options bound to `config` (flag, TOPICFLOW_<FLAG>, default, range,
// help). The endpoint, CURVE and logging options are add_common_options' (config.hpp).
void add_producer_options(CLI::App& app, ProducerConfig& config);

}  // namespace topicflow
