// The request target and query parameters as the sink's HTTP routes see them.
#include "http_request.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace topicflow::sink::http {
namespace {

TEST(HttpRequest, SegmentsAreDecodedOneByOneSoAKeyMayHoldASlash) {
  const auto t = parse_target("/v1/jobs/a%2Fb/topics/k%20%E2%82%AC");
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->segments,
            (std::vector<std::string>{"v1", "jobs", "a/b", "topics", "k \xE2\x82\xAC"}));
  EXPECT_TRUE(t->query.empty());
}

TEST(HttpRequest, ATrailingSlashAddsNoSegmentAndTheRootHasNone) {
  EXPECT_EQ(parse_target("/v1/jobs/")->segments, (std::vector<std::string>{"v1", "jobs"}));
  EXPECT_TRUE(parse_target("/")->segments.empty());
}

TEST(HttpRequest, QueryPlusIsASpaceThereButNotInThePath) {
  const auto t = parse_target("/a+b?from=x+y%2B&status=failed&flag&=ignored");
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->segments, (std::vector<std::string>{"a+b"}));
  EXPECT_EQ(t->query.at("from"), "x y+");
  EXPECT_EQ(t->query.at("status"), "failed");
  EXPECT_EQ(t->query.at("flag"), "") << "a name without '=' has an empty value";
  EXPECT_EQ(t->query.size(), 3U) << "an empty name is dropped";
}

TEST(HttpRequest, BadPercentEncodingOrNoLeadingSlashIsNoTarget) {
  EXPECT_FALSE(parse_target("/v1/jobs/%zz").has_value());
  EXPECT_FALSE(parse_target("/v1/jobs?x=%4").has_value());
  EXPECT_FALSE(parse_target("v1/jobs").has_value());
  EXPECT_FALSE(parse_target("").has_value());
}

TEST(HttpRequest, IntParamTakesTheFallbackOrAnIntegerInRange) {
  const auto t = *parse_target("/x?limit=250&low=0");
  httplib::Response res;
  EXPECT_EQ(int_param(t, "limit", 1, 1000, 100, res), 250);
  EXPECT_EQ(int_param(t, "absent", 1, 1000, 100, res), 100);
  EXPECT_EQ(int_param(t, "low", 0, 5, 3, res), 0);
  EXPECT_EQ(res.status, -1) << "nothing answered yet";
}

TEST(HttpRequest, IntParamOutOfRangeOrNotAnIntegerIsA400WithTheRange) {
  for (const auto* query : {"limit=0", "limit=1001", "limit=12x", "limit=", "limit=1e3",
                            "limit=99999999999999999999"}) {
    const auto t = *parse_target(std::string("/x?") + query);
    httplib::Response res;
    EXPECT_FALSE(int_param(t, "limit", 1, 1000, 100, res).has_value()) << query;
    EXPECT_EQ(res.status, 400) << query;
    EXPECT_EQ(res.body, R"({"error":"limit must be an integer from 1 to 1000"})") << query;
  }
}

TEST(HttpRequest, FailAnswersAOneLineJsonError) {
  httplib::Response res;
  EXPECT_TRUE(fail(res, 404, "no job named \"x\""));
  EXPECT_EQ(res.status, 404);
  EXPECT_EQ(res.get_header_value("Content-Type"), "application/json");
  EXPECT_EQ(res.body, R"({"error":"no job named \"x\""})");
}

}  // namespace
}  // namespace topicflow::sink::http
