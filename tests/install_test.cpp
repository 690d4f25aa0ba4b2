// The handler SDK as a user gets it: this build installed into a temporary prefix,
// examples/custom-worker configured and built against the installed tree only
// (find_package(topicflow) through CMAKE_PREFIX_PATH), and the worker it builds run in a real
// pipeline (sink, broker and producer of this build). Asserts the database's final state.
// Labels e2e and install.
#include "support/system.hpp"

#include <nlohmann/json.hpp>

#include <gtest/gtest.h>

#include <cctype>
#include <chrono>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

namespace topicflow::testing {
namespace {

using namespace std::chrono_literals;

const std::string kTopics = std::string(TOPICFLOW_EXAMPLES_DIR) + "/topics.txt";

int word_count(const std::string& text) {
  std::istringstream in(text);
  int n = 0;
  for (std::string w; in >> w;) ++n;
  return n;
}

std::string upper(std::string text) {
  for (auto& c : text) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return text;
}

TEST(InstalledSdk, CustomWorkerBuiltAgainstTheInstallCompletesEveryTopic) {
  System sys;
  const auto prefix = (sys.dir() / "prefix").string();
  const auto build = (sys.dir() / "custom-worker-build").string();
  const std::string cmake = TOPICFLOW_CMAKE_COMMAND;

  // 1. Install.
  const auto install = sys.run({cmake, "--install", TOPICFLOW_BUILD_DIR, "--prefix", prefix}, 120s);
  ASSERT_EQ(install.status.shell_code(), 0) << install.describe();
  for (const char* file :
       {"include/topicflow/run_worker.hpp", "include/topicflow/handler.hpp",
        "include/topicflow/config.hpp", "lib/libtopicflow_common.a",
        "lib/libtopicflow_worker_core.a", "lib/cmake/topicflow/topicflowConfig.cmake",
        "lib/cmake/topicflow/topicflowConfigVersion.cmake",
        "lib/cmake/topicflow/topicflowTargets.cmake", "bin/topicflow-worker", "bin/topicflow-sink",
        "bin/topicflow-broker", "bin/topicflow-producer", "bin/topicflow"}) {
    // GNUInstallDirs may pick lib64 on some systems; this project's Debian build uses lib.
    EXPECT_TRUE(std::filesystem::exists(prefix + "/" + file))
        << file << " not installed; " << install.describe();
  }

  // 2. Configure and build the example against the prefix alone: the source tree's include
  // directories are nowhere on its command lines.
  const auto configure = sys.run(
      {cmake, "-S", std::string(TOPICFLOW_EXAMPLES_DIR) + "/custom-worker", "-B", build, "-G",
       TOPICFLOW_CMAKE_GENERATOR, "-DCMAKE_PREFIX_PATH=" + prefix,
       "-DCMAKE_BUILD_TYPE=" TOPICFLOW_BUILD_TYPE, "-DCMAKE_CXX_COMPILER=" TOPICFLOW_CXX_COMPILER,
       "-DCMAKE_CXX_FLAGS=" TOPICFLOW_CXX_FLAGS,
       "-DCMAKE_EXE_LINKER_FLAGS=" TOPICFLOW_EXE_LINKER_FLAGS},
      120s);
  ASSERT_EQ(configure.status.shell_code(), 0) << configure.describe();
  const auto compile = sys.run({cmake, "--build", build, "-j", "2", "--verbose"}, 300s);
  ASSERT_EQ(compile.status.shell_code(), 0) << compile.describe();
  EXPECT_NE(compile.out.find(prefix + "/include"), std::string::npos)
      << "the example should compile against the installed headers; " << compile.describe();
  EXPECT_EQ(compile.out.find("/common/include"), std::string::npos)
      << "the example must not see the source tree's headers; " << compile.describe();
  const auto worker = build + "/wordstats-worker";
  ASSERT_TRUE(std::filesystem::exists(worker)) << compile.describe();

  // 3. The stock worker's command line, plus the example's own flag.
  const auto help = sys.run({worker, "--help"}, 30s);
  ASSERT_EQ(help.status.shell_code(), 0) << help.describe();
  for (const char* flag : {"--backend", "--sink", "--concurrency", "--lease-ms",
                           "--task-timeout-ms", "--metrics-port", "--log-level", "--max-words"}) {
    EXPECT_NE(help.out.find(flag), std::string::npos)
        << flag << " missing from --help; " << help.describe();
  }
  EXPECT_EQ(help.out.find("--handler"), std::string::npos)
      << "the handler is built in; " << help.describe();
  const auto bad = sys.run({worker, "--concurrency", "zero"}, 30s);
  EXPECT_EQ(bad.status.shell_code(), 2) << bad.describe();

  // 4. A real pipeline: stock sink and broker, two custom workers, the producer waits for all.
  sys.start("sink", "topicflow-sink", {"--db", sys.db()});
  sys.start("broker", "topicflow-broker", {});
  sys.start("worker1", worker, {"--concurrency", "4"});
  sys.start("worker2", worker, {"--concurrency", "4"});
  std::vector<std::string> producer{bin("topicflow-producer"), kTopics, "--wait", "--progress",
                                    "none"};
  for (auto& a : sys.endpoint_args()) producer.push_back(a);
  const auto produced = sys.run(producer, 180s);
  ASSERT_EQ(produced.status.shell_code(), 0) << produced.describe() << "\nworker1 log:\n"
                                             << sys.log("worker1");
  sys.stop_all();

  DbReader db(sys.db());
  EXPECT_TRUE(all_completed(db, "default", 288));
  const auto results = db.results("default");
  ASSERT_EQ(results.size(), 288U);
  for (const auto& [key, result] : results) {
    nlohmann::json doc;
    ASSERT_NO_THROW(doc = nlohmann::json::parse(result))
        << key << ": result is not JSON: " << result;
    EXPECT_EQ(doc.at("words").get<int>(), word_count(key)) << key << ": " << result;
    EXPECT_EQ(doc.at("characters").get<std::size_t>(), key.size()) << key << ": " << result;
    EXPECT_EQ(doc.at("upper").get<std::string>(), upper(key)) << key << ": " << result;
  }
  // The workers ran the example's handler (its describe() in their start-up line).
  for (const char* name : {"worker1", "worker2"}) {
    EXPECT_NE(sys.log(name).find("handler wordstats"), std::string::npos) << name << " log:\n"
                                                                          << sys.log(name);
  }
}

}  // namespace
}  // namespace topicflow::testing
