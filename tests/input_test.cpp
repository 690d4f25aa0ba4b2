// Producer input: text and JSON Lines parsing, validation errors with FILE:LINE, stdin spooling.
#include <topicflow/input.hpp>

#include "support/temp_dir.hpp"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace tf = topicflow;
namespace fs = std::filesystem;

namespace {

using TempDir = topicflow::testing::TempDir;

std::vector<tf::Topic> read_all(const tf::InputSource& input) {
  std::vector<tf::Topic> topics;
  auto reader = input.open();
  while (auto t = reader.next()) topics.push_back(*t);
  return topics;
}

std::string show(const std::vector<tf::Topic>& topics) {
  std::string out;
  for (const auto& t : topics) out += "[" + t.key + " => " + t.payload + "] ";
  return out;
}

// The InputError message of validating `content` as `name`, or "" when it validated.
std::string validation_error(const TempDir& dir, const std::string& name,
                             const std::string& content, std::string_view format = "auto") {
  const auto file = dir.write(name, content);
  try {
    tf::InputSource input(file, format);
    (void)input.validate();
  } catch (const tf::InputError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(Input, FormatFollowsTheFileNameUnlessForced) {
  EXPECT_EQ(tf::resolve_format("topics.jsonl", "auto"), tf::InputFormat::jsonl);
  EXPECT_EQ(tf::resolve_format("topics.txt", "auto"), tf::InputFormat::text);
  EXPECT_EQ(tf::resolve_format("topics.json", "auto"), tf::InputFormat::text)
      << ".json is not JSON Lines";
  EXPECT_EQ(tf::resolve_format("-", "auto"), tf::InputFormat::text);
  EXPECT_EQ(tf::resolve_format("topics.txt", "jsonl"), tf::InputFormat::jsonl);
  EXPECT_EQ(tf::resolve_format("topics.jsonl", "text"), tf::InputFormat::text);
  EXPECT_THROW((void)tf::resolve_format("x", "csv"), std::invalid_argument);
}

TEST(Input, TextLineIsKeyAndPayload) {
  TempDir dir;
  tf::InputSource input(dir.write("t.txt", "alpha\nbeta gamma\n{\"not\": \"json\"}\n"));
  const auto topics = read_all(input);
  ASSERT_EQ(topics.size(), 3u) << show(topics);
  EXPECT_EQ(topics[0], (tf::Topic{"alpha", "alpha"}));
  EXPECT_EQ(topics[1], (tf::Topic{"beta gamma", "beta gamma"}))
      << "inner spaces are part of the key";
  EXPECT_EQ(topics[2], (tf::Topic{R"({"not": "json"})", R"({"not": "json"})"}))
      << "a .txt file is never parsed as JSON";
}

TEST(Input, TextSkipsBlankLinesAndStripsCarriageReturns) {
  TempDir dir;
  tf::InputSource input(dir.write("t.txt", "\n\none\r\n  \r\n\t\ntwo\r\n\nthree"));
  const auto topics = read_all(input);
  ASSERT_EQ(topics.size(), 3u) << show(topics);
  EXPECT_EQ(topics[0].key, "one");
  EXPECT_EQ(topics[1].key, "two") << "CRLF line endings must not leave a \\r in the key";
  EXPECT_EQ(topics[2].key, "three") << "the last line needs no newline";
  const auto stats = input.validate();
  EXPECT_EQ(stats.topics, 3u);
  EXPECT_EQ(stats.lines, 8u);
}

TEST(Input, Utf8BomAtTheStartIsSkipped) {
  TempDir dir;
  tf::InputSource input(dir.write("t.txt",
                                  "\xEF\xBB\xBF"
                                  "first\nsecond\n"));
  const auto topics = read_all(input);
  ASSERT_EQ(topics.size(), 2u) << show(topics);
  EXPECT_EQ(topics[0].key, "first");
}

TEST(Input, JsonlStringPayloadIsItsContent) {
  TempDir dir;
  tf::InputSource input(dir.write("t.jsonl", R"({"key": "k1", "payload": "hello \"world\"\n"})"
                                             "\r\n\n"
                                             R"({"payload": "p2", "key": "k2", "extra": true})"
                                             "\n"));
  const auto topics = read_all(input);
  ASSERT_EQ(topics.size(), 2u) << show(topics);
  EXPECT_EQ(topics[0], (tf::Topic{"k1", "hello \"world\"\n"}));
  EXPECT_EQ(topics[1], (tf::Topic{"k2", "p2"})) << "member order and extra members do not matter";
}

TEST(Input, JsonlNonStringPayloadIsKeptAsCompactJson) {
  TempDir dir;
  tf::InputSource input(dir.write("t.jsonl",
                                  R"({"key":"obj","payload":{ "z": 1, "a": [1, 2, {"b": null}] }})"
                                  "\n"
                                  R"({"key":"num","payload":42})"
                                  "\n"
                                  R"({"key":"arr","payload":["x", true]})"
                                  "\n"
                                  R"({"key":"nul","payload":null})"
                                  "\n"));
  const auto topics = read_all(input);
  ASSERT_EQ(topics.size(), 4u) << show(topics);
  EXPECT_EQ(topics[0].payload, R"({"z":1,"a":[1,2,{"b":null}]})")
      << "object kept as JSON text, members in input order";
  EXPECT_EQ(topics[1].payload, "42");
  EXPECT_EQ(topics[2].payload, R"(["x",true])");
  EXPECT_EQ(topics[3].payload, "null");
}

TEST(Input, FormatJsonlAppliesToAnyFileName) {
  TempDir dir;
  tf::InputSource input(dir.write("t.txt", R"({"key":"k","payload":"p"})"
                                           "\n"),
                        "jsonl");
  const auto topics = read_all(input);
  ASSERT_EQ(topics.size(), 1u) << show(topics);
  EXPECT_EQ(topics[0], (tf::Topic{"k", "p"}));
}

TEST(Input, MalformedJsonlIsReportedWithItsLineNumber) {
  TempDir dir;
  const auto error = validation_error(dir, "bad.jsonl",
                                      R"({"key":"a","payload":"1"})"
                                      "\n\n"
                                      R"({"key":"b","payload":)"
                                      "\n"
                                      R"({"key":"c","payload":"3"})"
                                      "\n");
  const auto file = (dir.path() / "bad.jsonl").string();
  EXPECT_EQ(error.rfind(file + ":3: invalid JSON", 0), 0u) << "got: " << error;
}

TEST(Input, JsonlShapeErrorsNameTheProblem) {
  TempDir dir;
  struct Case {
    std::string line;
    std::string reason;
  };
  const std::vector<Case> cases = {
      {R"(["key", "payload"])", "expected a JSON object"},
      {R"({"payload":"p"})", R"(missing "key")"},
      {R"({"key":7,"payload":"p"})", R"("key" must be a string)"},
      {R"({"key":"k"})", R"(missing "payload")"},
      {R"({"key":"","payload":"p"})", "empty key"},
  };
  for (const auto& c : cases) {
    const auto error = validation_error(dir, "shape.jsonl",
                                        R"({"key":"ok","payload":"fine"})"
                                        "\n" +
                                            c.line + "\n");
    EXPECT_NE(error.find(":2: " + c.reason), std::string::npos)
        << "line " << c.line << " gave: " << error;
  }
}

TEST(Input, InvalidUtf8IsRejectedInBothFormats) {
  TempDir dir;
  const auto text_error = validation_error(dir, "bad.txt", "good\nbad \xC3\x28 key\n");
  EXPECT_NE(text_error.find("bad.txt:2: key is not valid UTF-8"), std::string::npos)
      << "got: " << text_error;
  const auto json_error =
      validation_error(dir, "bad.jsonl", "{\"key\":\"k\xED\xA0\x80\",\"payload\":\"p\"}\n");
  EXPECT_NE(json_error.find("bad.jsonl:1: "), std::string::npos) << "got: " << json_error;
  EXPECT_NE(json_error.find("UTF-8"), std::string::npos)
      << "a surrogate must be named as bad UTF-8, got: " << json_error;
}

TEST(Input, OversizedKeysAndPayloadsAreRejected) {
  TempDir dir;
  const tf::wire::Limits limits;
  const std::string long_key(limits.max_key_bytes + 1, 'k');
  const auto text_error = validation_error(dir, "long.txt", "short\n" + long_key + "\n");
  EXPECT_NE(text_error.find("long.txt:2: "), std::string::npos) << "got: " << text_error;
  EXPECT_NE(text_error.find(std::to_string(limits.max_key_bytes)), std::string::npos)
      << "got: " << text_error;

  const std::string exact_key(limits.max_key_bytes, 'k');
  EXPECT_EQ(validation_error(dir, "exact.txt", exact_key + "\r\n"), "")
      << "a key of exactly the limit is fine";

  const std::string big_payload(limits.max_payload_bytes + 1, 'p');
  const auto json_error =
      validation_error(dir, "big.jsonl", R"({"key":"k","payload":")" + big_payload + "\"}\n");
  EXPECT_NE(json_error.find("big.jsonl:1: payload is"), std::string::npos)
      << "got: " << json_error.substr(0, 200);
}

TEST(Input, MissingFileAndDirectoryGiveOneLineErrors) {
  TempDir dir;
  const auto missing = (dir.path() / "nope.txt").string();
  try {
    tf::InputSource input(missing);
    FAIL() << "opening a missing file must throw";
  } catch (const tf::InputError& e) {
    EXPECT_NE(std::string(e.what()).find(missing + ": cannot open"), std::string::npos) << e.what();
  }
  try {
    tf::InputSource input(dir.path().string());
    FAIL() << "opening a directory must throw";
  } catch (const tf::InputError& e) {
    EXPECT_NE(std::string(e.what()).find("is a directory"), std::string::npos) << e.what();
  }
}

TEST(Input, StdinIsSpooledFromAPipeAndCanBeReadTwice) {
  TempDir dir;
  ASSERT_EQ(::setenv("TMPDIR", dir.path().c_str(), 1), 0);
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  // More than a pipe buffer, so the writer blocks until the spool reads it.
  std::string content;
  for (int i = 0; i < 20000; ++i) content += "topic-" + std::to_string(i) + "\r\n";
  std::thread writer([&] {
    std::size_t off = 0;
    while (off < content.size()) {
      const auto n = ::write(fds[1], content.data() + off, content.size() - off);
      if (n <= 0) break;
      off += static_cast<std::size_t>(n);
    }
    ::close(fds[1]);
  });
  {
    tf::InputSource input("-", "auto", fds[0]);
    writer.join();
    ::close(fds[0]);
    EXPECT_TRUE(input.spooled());
    EXPECT_EQ(input.name(), "<stdin>");
    EXPECT_EQ(input.validate().topics, 20000u) << "first pass";
    const auto topics = read_all(input);
    ASSERT_EQ(topics.size(), 20000u) << "second pass over the spool";
    EXPECT_EQ(topics.front().key, "topic-0");
    EXPECT_EQ(topics.back().key, "topic-19999");
    std::size_t left = 0;
    for ([[maybe_unused]] const auto& entry : fs::directory_iterator(dir.path())) ++left;
    EXPECT_EQ(left, 0u) << "the spool file must not be visible in TMPDIR";
  }
  ::unsetenv("TMPDIR");
}

TEST(Input, StdinErrorsNameStdin) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  const std::string content = "{\"key\":\"a\",\"payload\":1}\nnot json\n";
  ASSERT_EQ(::write(fds[1], content.data(), content.size()), static_cast<ssize_t>(content.size()));
  ::close(fds[1]);
  tf::InputSource input("-", "jsonl", fds[0]);
  ::close(fds[0]);
  try {
    (void)input.validate();
    FAIL() << "line 2 is not JSON";
  } catch (const tf::InputError& e) {
    EXPECT_EQ(std::string(e.what()).rfind("<stdin>:2: invalid JSON", 0), 0u) << e.what();
  }
}

TEST(Input, NamedPipeIsSpooledToo) {
  TempDir dir;
  const auto fifo = (dir.path() / "topics.fifo").string();
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  std::thread writer([&] {
    std::ofstream out(fifo);
    out << "x\ny\n";
  });
  tf::InputSource input(fifo);
  writer.join();
  EXPECT_TRUE(input.spooled()) << "a FIFO cannot be read twice, it must be spooled";
  EXPECT_EQ(input.validate().topics, 2u);
  EXPECT_EQ(read_all(input).size(), 2u);
}

TEST(Input, ReadersAreIndependent) {
  TempDir dir;
  tf::InputSource input(dir.write("t.txt", "a\nb\nc\n"));
  auto first = input.open();
  auto second = input.open();
  ASSERT_EQ(first.next()->key, "a");
  ASSERT_EQ(first.next()->key, "b");
  EXPECT_EQ(second.next()->key, "a") << "a second reader starts from the beginning";
  EXPECT_EQ(first.next()->key, "c");
  EXPECT_EQ(first.line(), 3u);
  EXPECT_FALSE(first.next().has_value());
}

TEST(Input, LongLinesAcrossReadBuffersAreWhole) {
  TempDir dir;
  // 64 KiB read buffer: payloads of 100 KB straddle buffer boundaries.
  std::string content;
  for (int i = 0; i < 5; ++i) {
    content += R"({"key":"k)" + std::to_string(i) + R"(","payload":")" +
               std::string(100000, static_cast<char>('a' + i)) + "\"}\n";
  }
  tf::InputSource input(dir.write("long.jsonl", content));
  const auto topics = read_all(input);
  ASSERT_EQ(topics.size(), 5u);
  for (std::size_t i = 0; i < topics.size(); ++i) {
    EXPECT_EQ(topics[i].key, "k" + std::to_string(i));
    EXPECT_EQ(topics[i].payload, std::string(100000, static_cast<char>('a' + i)))
        << "payload " << i;
  }
}

TEST(Input, ParseLineIsTheSingleLineContract) {
  EXPECT_FALSE(tf::parse_line("", tf::InputFormat::text).has_value());
  EXPECT_FALSE(tf::parse_line(" \t\r", tf::InputFormat::jsonl).has_value());
  EXPECT_EQ(tf::parse_line("k\r", tf::InputFormat::text), (tf::Topic{"k", "k"}));
  EXPECT_THROW((void)tf::parse_line("{}", tf::InputFormat::jsonl), tf::InputError);
}
