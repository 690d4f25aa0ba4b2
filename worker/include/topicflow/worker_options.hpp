#pragma once
// The worker's command-line options, defined once: topicflow-worker and every custom worker
// (run_worker) take them, `topicflow run` the ones it passes on (add_options_subset), and the
// README's topicflow-worker table is generated from them (--help-markdown).

#include <topicflow/worker.hpp>

namespace CLI {
class App;
}

namespace topicflow {

// Adds the worker's own options bound to `config` (flag, TOPICFLOW_<FLAG>, default, range,
// help), --handler included. The endpoint, CURVE and logging options are add_common_options'
// (config.hpp).
void add_worker_options(CLI::App& app, WorkerConfig& config);

}  // namespace topicflow
