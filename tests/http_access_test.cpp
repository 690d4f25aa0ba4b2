// Who may write through the sink's HTTP server: read-only mode, cross-site browsers, the token.
#include "http_access.hpp"

#include <gtest/gtest.h>

namespace topicflow::sink::http {
namespace {

const WriteHeaders kCurl{"", "", "127.0.0.1:8080", ""};

TEST(HttpAccess, AnOpenServerTakesWritesFromAnyClientWithoutAnOrigin) {
  EXPECT_FALSE(refuse_write(false, "", kCurl).has_value());
}

TEST(HttpAccess, AReadOnlyServerRefusesEveryWriteEvenWithTheToken) {
  const auto r = refuse_write(true, "s3cret", {"", "", "h", "Bearer s3cret"});
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 403);
  EXPECT_EQ(r->reason, "this server is read-only (--http-read-only)");
}

TEST(HttpAccess, TheDashboardsOwnOriginMayWriteWhateverTheCase) {
  EXPECT_FALSE(
      refuse_write(false, "", {"same-origin", "http://127.0.0.1:8080", "127.0.0.1:8080", ""})
          .has_value());
  EXPECT_FALSE(
      refuse_write(false, "", {"", "http://LocalHost:8080", "localhost:8080", ""}).has_value());
}

TEST(HttpAccess, ACrossSiteBrowserRequestIsRefused) {
  const auto by_fetch_site = refuse_write(false, "", {"cross-site", "", "127.0.0.1:8080", ""});
  ASSERT_TRUE(by_fetch_site.has_value());
  EXPECT_EQ(by_fetch_site->status, 403);
  const auto by_origin = refuse_write(false, "", {"", "http://evil.example", "127.0.0.1:8080", ""});
  ASSERT_TRUE(by_origin.has_value());
  EXPECT_EQ(by_origin->status, 403);
  EXPECT_EQ(by_origin->reason,
            "cross-site request refused (Origin http://evil.example is not this server)");
  const auto other_port =
      refuse_write(false, "", {"", "http://127.0.0.1:9999", "127.0.0.1:8080", ""});
  EXPECT_TRUE(other_port.has_value()) << "another port is another origin";
}

TEST(HttpAccess, WithATokenOnlyItsBearerWritesAndOthersAreAskedForIt) {
  EXPECT_FALSE(refuse_write(false, "s3cret", {"", "", "h", "Bearer s3cret"}).has_value());
  for (const auto* header : {"", "Bearer", "Bearer ", "Bearer s3cre", "Bearer s3cret2",
                             "bearer s3cret", "Basic s3cret", "s3cret"}) {
    const auto r = refuse_write(false, "s3cret", {"", "", "h", header});
    ASSERT_TRUE(r.has_value()) << header;
    EXPECT_EQ(r->status, 401) << header;
    EXPECT_TRUE(r->ask_for_token) << header;
  }
}

TEST(HttpAccess, LowerIsAsciiLowerCase) {
  EXPECT_EQ(lower("Application/JSON; Charset=UTF-8"), "application/json; charset=utf-8");
  EXPECT_EQ(lower("LocalHost:8080"), "localhost:8080");
}

TEST(HttpAccess, ConstantTimeEqualIsEquality) {
  EXPECT_TRUE(constant_time_equal("", ""));
  EXPECT_TRUE(constant_time_equal("abc", "abc"));
  EXPECT_FALSE(constant_time_equal("abc", "abd"));
  EXPECT_FALSE(constant_time_equal("abc", "abcabc")) << "a repeated prefix is not the token";
  EXPECT_FALSE(constant_time_equal("", "a"));
  EXPECT_FALSE(constant_time_equal("a", ""));
}

}  // namespace
}  // namespace topicflow::sink::http
