// topicflow-worker: pulls tasks from the broker, runs a handler on each, reports to the sink.
// The program is topicflow::stock_worker_main() (worker/src/run_worker.cpp): run_worker() with
// the --handler specs, which custom worker binaries call with their own handler.
#include <topicflow/run_worker.hpp>

int main(int argc, char** argv) { return topicflow::stock_worker_main(argc, argv); }
