// Unit tests of the strict UTF-8 validator (common/src/utf8.cpp), checked against hand-picked
// cases and, exhaustively, against an independent oracle: the table of well-formed byte
// sequences in the Unicode Standard (chapter 3, table 3-7).

#include <topicflow/utf8.hpp>

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <vector>

using topicflow::valid_utf8;

namespace {

std::string hex(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (const char ch : bytes) {
    const auto c = static_cast<unsigned char>(ch);
    out += kDigits[c >> 4U];
    out += kDigits[c & 0xFU];
    out += ' ';
  }
  return out;
}

std::string encode(std::uint32_t cp) {
  std::string out;
  const auto byte = [&](std::uint32_t b) {
    out += static_cast<char>(static_cast<unsigned char>(b));
  };
  if (cp < 0x80) {
    byte(cp);
  } else if (cp < 0x800) {
    byte(0xC0 | (cp >> 6U));
    byte(0x80 | (cp & 0x3FU));
  } else if (cp < 0x10000) {
    byte(0xE0 | (cp >> 12U));
    byte(0x80 | ((cp >> 6U) & 0x3FU));
    byte(0x80 | (cp & 0x3FU));
  } else {
    byte(0xF0 | (cp >> 18U));
    byte(0x80 | ((cp >> 12U) & 0x3FU));
    byte(0x80 | ((cp >> 6U) & 0x3FU));
    byte(0x80 | (cp & 0x3FU));
  }
  return out;
}

// Table 3-7 "Well-Formed UTF-8 Byte Sequences", written as ranges per byte position.
bool oracle(std::string_view text) {
  std::size_t i = 0;
  const auto at = [&](std::size_t k) { return static_cast<unsigned char>(text[k]); };
  const auto in = [](unsigned char c, unsigned lo, unsigned hi) { return c >= lo && c <= hi; };
  while (i < text.size()) {
    const unsigned char b0 = at(i);
    std::size_t n = 0;
    unsigned lo1 = 0x80;
    unsigned hi1 = 0xBF;
    if (b0 <= 0x7F) {
      n = 1;
    } else if (in(b0, 0xC2, 0xDF)) {
      n = 2;
    } else if (b0 == 0xE0) {
      n = 3;
      lo1 = 0xA0;
    } else if (in(b0, 0xE1, 0xEC) || in(b0, 0xEE, 0xEF)) {
      n = 3;
    } else if (b0 == 0xED) {
      n = 3;
      hi1 = 0x9F;
    } else if (b0 == 0xF0) {
      n = 4;
      lo1 = 0x90;
    } else if (in(b0, 0xF1, 0xF3)) {
      n = 4;
    } else if (b0 == 0xF4) {
      n = 4;
      hi1 = 0x8F;
    } else {
      return false;
    }
    if (text.size() - i < n) return false;
    if (n >= 2 && !in(at(i + 1), lo1, hi1)) return false;
    for (std::size_t k = 2; k < n; ++k) {
      if (!in(at(i + k), 0x80, 0xBF)) return false;
    }
    i += n;
  }
  return true;
}

}  // namespace

TEST(Utf8, AcceptsWellFormedText) {
  const std::vector<std::string> good = {
      "",
      "plain ascii",
      std::string("embedded\0nul", 12),
      "\x7f",
      "caf\xc3\xa9",                       // é
      "\xe2\x82\xac",                      // €
      "\xf0\x9f\x98\x80",                  // 😀
      "\xc2\x80",                          // U+0080, the smallest two-byte
      "\xdf\xbf",                          // U+07FF
      "\xe0\xa0\x80",                      // U+0800, the smallest three-byte
      "\xed\x9f\xbf",                      // U+D7FF, just below the surrogates
      "\xee\x80\x80",                      // U+E000, just above them
      "\xef\xbf\xbf",                      // U+FFFF
      "\xf0\x90\x80\x80",                  // U+10000, the smallest four-byte
      "\xf4\x8f\xbf\xbf",                  // U+10FFFF, the largest code point
      "\xd0\xba\xd0\xbb\xd1\x8e\xd1\x87",  // ключ
  };
  for (const auto& text : good) {
    EXPECT_TRUE(valid_utf8(text)) << "bytes: " << hex(text);
    EXPECT_TRUE(oracle(text)) << "oracle disagrees with the test data: " << hex(text);
  }
}

TEST(Utf8, RejectsMalformedText) {
  const std::vector<std::string> bad = {
      "\x80",                      // lone continuation byte
      "\xbf",                      // lone continuation byte
      "a\x80z",                    // continuation byte in the middle of ASCII
      "\xc0\x80",                  // overlong NUL
      "\xc1\xbf",                  // overlong U+007F
      "\xe0\x80\x80",              // overlong three-byte
      "\xe0\x9f\xbf",              // overlong U+07FF
      "\xf0\x80\x80\x80",          // overlong four-byte
      "\xf0\x8f\xbf\xbf",          // overlong U+FFFF
      "\xed\xa0\x80",              // U+D800, a high surrogate
      "\xed\xbf\xbf",              // U+DFFF, a low surrogate
      "\xed\xa0\xbd\xed\xb8\x80",  // a surrogate pair spelled in UTF-8 (CESU-8)
      "\xf4\x90\x80\x80",          // U+110000, above the range
      "\xf5\x80\x80\x80",          // lead byte F5
      "\xf8\x88\x80\x80\x80",      // five-byte form
      "\xfc\x84\x80\x80\x80\x80",  // six-byte form
      "\xfe",
      "\xff",
      "\xc3",              // truncated two-byte at the end
      "\xe2\x82",          // truncated three-byte at the end
      "\xf0\x9f\x98",      // truncated four-byte at the end
      "\xc3\x28",          // bad continuation
      "\xe2\x28\xa1",      // bad first continuation
      "\xe2\x82\x28",      // bad second continuation
      "\xf0\x9f\x98\x28",  // bad third continuation
      "ok\xc3",            // valid prefix, truncated tail
  };
  for (const auto& text : bad) {
    EXPECT_FALSE(valid_utf8(text)) << "bytes: " << hex(text);
    EXPECT_FALSE(oracle(text)) << "oracle disagrees with the test data: " << hex(text);
  }
}

TEST(Utf8, ReadsOnlyTheGivenRange) {
  // A truncated sequence must not be completed by the bytes after the view.
  const std::string buffer = "x\xe2\x82\xac";
  EXPECT_FALSE(valid_utf8(std::string_view(buffer).substr(0, 3)))
      << "view ends inside the euro sign";
  EXPECT_TRUE(valid_utf8(std::string_view(buffer).substr(0, 4)))
      << "view holds the whole euro sign";
  EXPECT_TRUE(valid_utf8(std::string_view(buffer).substr(0, 1))) << "view holds only the x";
}

TEST(Utf8, EveryCodePointEncodedIsValidExceptSurrogates) {
  for (std::uint32_t cp = 0; cp <= 0x10FFFF; ++cp) {
    const bool surrogate = cp >= 0xD800 && cp <= 0xDFFF;
    const auto text = encode(cp);
    ASSERT_EQ(valid_utf8(text), !surrogate) << "U+" << std::hex << cp << " bytes: " << hex(text);
  }
}

TEST(Utf8, AllOneTwoAndThreeByteStringsMatchTheOracle) {
  std::string text;
  for (unsigned a = 0; a < 256; ++a) {
    text.assign(1, static_cast<char>(a));
    ASSERT_EQ(valid_utf8(text), oracle(text)) << "bytes: " << hex(text);
    for (unsigned b = 0; b < 256; ++b) {
      text.assign({static_cast<char>(a), static_cast<char>(b)});
      ASSERT_EQ(valid_utf8(text), oracle(text)) << "bytes: " << hex(text);
      for (unsigned c = 0; c < 256; ++c) {
        text.assign({static_cast<char>(a), static_cast<char>(b), static_cast<char>(c)});
        // 16M cases: compare first, build the assertion only on a mismatch.
        if (valid_utf8(text) != oracle(text)) {
          FAIL() << "valid_utf8 says " << valid_utf8(text) << ", the oracle " << oracle(text)
                 << ", bytes: " << hex(text);
        }
      }
    }
  }
}

TEST(Utf8, RandomFourToEightByteStringsMatchTheOracle) {
  std::mt19937_64 rng(12345);
  // Bias towards bytes that form multi-byte sequences, where the interesting cases are.
  const std::vector<unsigned> interesting = {0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F,
                                             0xA0, 0xBF, 0xC0, 0xC1, 0xC2, 0xDF, 0xE0,
                                             0xED, 0xEF, 0xF0, 0xF4, 0xF5, 0xFF};
  std::uniform_int_distribution<std::size_t> pick(0, interesting.size() - 1);
  std::uniform_int_distribution<unsigned> any(0, 255);
  std::uniform_int_distribution<std::size_t> length(4, 8);
  std::string text;
  for (int i = 0; i < 500000; ++i) {
    text.resize(length(rng));
    for (auto& ch : text) ch = static_cast<char>(i % 2 == 0 ? interesting[pick(rng)] : any(rng));
    ASSERT_EQ(valid_utf8(text), oracle(text)) << "sample " << i << " bytes: " << hex(text);
  }
}
