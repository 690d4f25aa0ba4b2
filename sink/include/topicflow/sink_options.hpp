#pragma once
// The sink's command-line options, defined once: topicflow-sink takes all of them, `topicflow
// run` the ones it passes on (add_options_subset), and the README's topicflow-sink table is
// generated from them (--help-markdown).

#include <topicflow/sink.hpp>

namespace CLI {
class App;
}

namespace topicflow {

// Adds the sink's own options bound to `config`: each with its TOPICFLOW_<FLAG> variable, its
// default (config's value), its range and its help. The endpoint, CURVE and logging options are
// add_common_options' (config.hpp).
void add_sink_options(CLI::App& app, SinkConfig& config);

}  // namespace topicflow
