#pragma once
// A fresh directory under the system temp dir (mkdtemp: unique even across parallel ctest jobs),
// removed with everything in it when the test is done. keep_on_failure() keeps it, and says
// where, when the current test failed: the logs of the processes a test started live there.

#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <stdexcept>
#include <string>

namespace topicflow::testing {

class TempDir {
 public:
  // The directory is <temp>/topicflow-<label>-XXXXXX.
  explicit TempDir(const std::string& label = "test") {
    std::string pattern =
        (std::filesystem::temp_directory_path() / ("topicflow-" + label + "-XXXXXX")).string();
    if (::mkdtemp(pattern.data()) == nullptr)
      throw std::runtime_error("mkdtemp failed for " + pattern);
    path_ = pattern;
  }
  ~TempDir() {
    if (keep_on_failure_ && ::testing::Test::HasFailure()) {
      std::cerr << "test files kept in " << path_.string() << "\n";
      return;
    }
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  void keep_on_failure() noexcept { keep_on_failure_ = true; }

  [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }
  // <dir>/<name>, not created.
  [[nodiscard]] std::string file(const std::string& name) const { return (path_ / name).string(); }
  // Writes `content` to <dir>/<name> and returns its path.
  std::string write(const std::string& name, const std::string& content) const {
    const auto path = file(name);
    std::ofstream(path, std::ios::binary) << content;
    return path;
  }

 private:
  std::filesystem::path path_;
  bool keep_on_failure_ = false;
};

}  // namespace topicflow::testing
