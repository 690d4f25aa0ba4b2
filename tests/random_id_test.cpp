// random_id(): the ids that keep two runs apart (submission ids, ack channels, broker instances).
#include <topicflow/random_id.hpp>

#include <gtest/gtest.h>

#include <set>
#include <string>

namespace topicflow {
namespace {

TEST(RandomId, SixteenLowercaseHexDigits) {
  const auto id = random_id();
  EXPECT_EQ(id.size(), 16U) << id;
  EXPECT_EQ(id.find_first_not_of("0123456789abcdef"), std::string::npos) << id;
}

TEST(RandomId, EveryCallGivesANewId) {
  std::set<std::string> ids;
  for (int i = 0; i < 1000; ++i) ids.insert(random_id());
  EXPECT_EQ(ids.size(), 1000U) << "two calls gave the same id";
}

}  // namespace
}  // namespace topicflow
