// topicflow-worker: pulls tasks from the broker, runs a handler on each, reports to the sink.
// The program itself is topicflow::run_worker() (worker/src/run_worker.cpp), which custom worker
// binaries call with their own handler.
#include <topicflow/handler.hpp>
#include <topicflow/run_worker.hpp>

int main(int argc, char** argv) {
  topicflow::RunWorkerOptions options;
  options.program = "topicflow-worker";
  options.handler_option = true;
  return topicflow::run_worker(
      argc, argv,
      [](const topicflow::WorkerConfig& cfg) {
        return topicflow::make_handler(cfg.handler, topicflow::handler_options(cfg));
      },
      options);
}
