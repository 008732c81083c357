// What of distctl can be tested without a daemon: the flag parser, global options, output
// helpers, -C resolution. The commands themselves are tested black-box against a distd.
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "client/args.h"
#include "client/commands.h"
#include "client/print.h"
#include "client/run.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace distd::client {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

struct Parsed {
  bool bg = false;
  std::string dir;
  std::vector<std::string> env;
  std::vector<std::string> positional;
  absl::Status status;
  bool help = false;
};

Parsed Parse(std::vector<std::string> args, bool stop_at_positional = true) {
  Parsed parsed;
  ArgParser parser;
  parser.Flag({"--bg"}, [&] { parsed.bg = true; });
  parser.Option({"-C", "--dir"}, "DIR", [&](const std::string& value) {
    parsed.dir = value;
    return absl::OkStatus();
  });
  parser.Option({"-e"}, "NAME=VALUE", [&](const std::string& value) {
    if (value.find('=') == std::string::npos) return absl::InvalidArgumentError("no '='");
    parsed.env.push_back(value);
    return absl::OkStatus();
  });
  parsed.status = parser.Parse(args, stop_at_positional, &parsed.positional);
  parsed.help = parser.help();
  return parsed;
}

TEST(ArgParserTest, FlagsAndValuesInEveryForm) {
  Parsed parsed = Parse({"--bg", "-C", "a", "-eX=1", "-e", "Y=2", "cmd"});
  ASSERT_TRUE(parsed.status.ok()) << parsed.status;
  EXPECT_TRUE(parsed.bg);
  EXPECT_EQ(parsed.dir, "a");
  EXPECT_THAT(parsed.env, ElementsAre("X=1", "Y=2"));
  EXPECT_THAT(parsed.positional, ElementsAre("cmd"));

  parsed = Parse({"--dir=b", "-Cc"});
  ASSERT_TRUE(parsed.status.ok()) << parsed.status;
  EXPECT_EQ(parsed.dir, "c");
  parsed = Parse({"--dir="});
  ASSERT_TRUE(parsed.status.ok()) << parsed.status;
  EXPECT_EQ(parsed.dir, "");
}

TEST(ArgParserTest, TheCommandEndsTheFlags) {
  Parsed parsed = Parse({"--bg", "cc", "-c", "--bg", "x.c"});
  ASSERT_TRUE(parsed.status.ok()) << parsed.status;
  EXPECT_THAT(parsed.positional, ElementsAre("cc", "-c", "--bg", "x.c"));
  parsed = Parse({"--", "-weird", "--bg"});
  ASSERT_TRUE(parsed.status.ok()) << parsed.status;
  EXPECT_FALSE(parsed.bg);
  EXPECT_THAT(parsed.positional, ElementsAre("-weird", "--bg"));
  parsed = Parse({"--bg", "--"});
  ASSERT_TRUE(parsed.status.ok()) << parsed.status;
  EXPECT_THAT(parsed.positional, IsEmpty());
}

TEST(ArgParserTest, InterspersedWhenAsked) {
  Parsed parsed = Parse({"12", "--bg", "-", "--", "--x"}, /*stop_at_positional=*/false);
  ASSERT_TRUE(parsed.status.ok()) << parsed.status;
  EXPECT_TRUE(parsed.bg);
  EXPECT_THAT(parsed.positional, ElementsAre("12", "-", "--x"));
}

TEST(ArgParserTest, ValuesMayLookLikeFlags) {
  Parsed parsed = Parse({"-C", "--bg"});
  ASSERT_TRUE(parsed.status.ok()) << parsed.status;
  EXPECT_EQ(parsed.dir, "--bg");
  EXPECT_FALSE(parsed.bg);
}

TEST(ArgParserTest, ErrorsSayWhatWasWrong) {
  EXPECT_EQ(Parse({"--nope"}).status.message(), "unknown flag --nope");
  EXPECT_EQ(Parse({"--nope=3"}).status.message(), "unknown flag --nope");
  EXPECT_EQ(Parse({"-bg"}).status.message(), "unknown flag -bg");
  EXPECT_EQ(Parse({"-C"}).status.message(), "flag -C needs a value (DIR)");
  EXPECT_EQ(Parse({"--bg=yes"}).status.message(), "flag --bg takes no value (in \"--bg=yes\")");
  EXPECT_EQ(Parse({"-e", "X"}).status.message(), "bad value for -e: no '='");
  EXPECT_TRUE(absl::IsInvalidArgument(Parse({"--nope"}).status));
}

TEST(ArgParserTest, HelpStopsParsing) {
  Parsed parsed = Parse({"--bg", "--help", "--nope"});
  EXPECT_TRUE(parsed.status.ok());
  EXPECT_TRUE(parsed.help);
  EXPECT_TRUE(Parse({"-h"}).help);
  // After the command, --help is the command's.
  parsed = Parse({"cmd", "--help"});
  EXPECT_FALSE(parsed.help);
  EXPECT_THAT(parsed.positional, ElementsAre("cmd", "--help"));
}

TEST(GlobalFlagsTest, FlagsWinAndNoteWhereTheyCameFrom) {
  GlobalOptions global;
  global.addr = "unix:/from/env";
  global.addr_source = "DISTD_ADDR";
  ArgParser parser;
  AddGlobalFlags(&parser, &global);
  std::vector<std::string> rest;
  ASSERT_TRUE(parser.Parse({"--addr", "unix:/x", "--build=b1", "wait"}, true, &rest).ok());
  EXPECT_EQ(global.addr, "unix:/x");
  EXPECT_EQ(global.addr_source, "--addr");
  EXPECT_EQ(global.build, "b1");
  EXPECT_TRUE(global.build_given);
  EXPECT_THAT(rest, ElementsAre("wait"));
  EXPECT_FALSE(parser.Parse({"--build="}, true, &rest).ok());
}

TEST(DurationTest, PositiveAndFinite) {
  EXPECT_EQ(*ParsePositiveDuration("500ms"), absl::Milliseconds(500));
  EXPECT_EQ(*ParsePositiveDuration("1m30s"), absl::Seconds(90));
  EXPECT_EQ(ParsePositiveDuration("0s").status().message(), "\"0s\" is not more than 0");
  EXPECT_EQ(ParsePositiveDuration("-1s").status().message(), "\"-1s\" is not more than 0");
  EXPECT_EQ(ParsePositiveDuration("inf").status().message(), "\"inf\" is not finite");
  EXPECT_EQ(ParsePositiveDuration("5").status().message(),
            "\"5\" is not a duration such as 500ms, 2s or 1m");
  EXPECT_FALSE(ParsePositiveDuration("").ok());
}

TEST(DurationTest, MillisecondsRoundUp) {
  EXPECT_EQ(ToApiMilliseconds(absl::Seconds(2)), 2000);
  EXPECT_EQ(ToApiMilliseconds(absl::Microseconds(1)), 1);
  EXPECT_EQ(ToApiMilliseconds(absl::Microseconds(1500)), 2);
}

TEST(ResolveDirectoryTest, AgainstTheCwdLexically) {
  EXPECT_EQ(ResolveDirectory("/src/proj", "sub"), "/src/proj/sub");
  EXPECT_EQ(ResolveDirectory("/src/proj", "../other/./x/"), "/src/other/x");
  EXPECT_EQ(ResolveDirectory("/src/proj", "/abs//dir/.."), "/abs");
  EXPECT_EQ(ResolveDirectory("/src", "../../.."), "/");
  EXPECT_EQ(ResolveDirectory("/", "."), "/");
}

TEST(ShellQuoteTest, QuotesOnlyWhatNeedsIt) {
  EXPECT_EQ(ShellQuote("cc"), "cc");
  EXPECT_EQ(ShellQuote("-DX=1,2:/a.b@%+_"), "-DX=1,2:/a.b@%+_");
  EXPECT_EQ(ShellQuote(""), "''");
  EXPECT_EQ(ShellQuote("a b"), "'a b'");
  EXPECT_EQ(ShellQuote("it's"), "'it'\\''s'");
  EXPECT_EQ(ShellQuote("$HOME"), "'$HOME'");
  EXPECT_EQ(ShellJoin(std::vector<std::string>{"sh", "-c", "exit 3"}), "sh -c 'exit 3'");
}

TEST(PrintTest, OneLineAndElide) {
  EXPECT_EQ(OneLine("a\nb\tc\x7f"), "a?b?c?");
  EXPECT_EQ(Elide("abcdef", 6), "abcdef");
  EXPECT_EQ(Elide("abcdefg", 6), "abc...");
  EXPECT_EQ(Elide("abcdefg", 2), "..");
  // "é" is two bytes: never cut in the middle.
  EXPECT_EQ(Elide("ab\xc3\xa9xyz", 6), "ab...");
}

TEST(PrintTest, FormatElapsed) {
  EXPECT_EQ(FormatElapsed(absl::Milliseconds(850)), "850ms");
  EXPECT_EQ(FormatElapsed(absl::Milliseconds(12345)), "12.3s");
  EXPECT_EQ(FormatElapsed(absl::Seconds(245)), "4m05s");
  EXPECT_EQ(FormatElapsed(absl::Minutes(127)), "2h07m");
  EXPECT_EQ(FormatElapsed(-absl::Seconds(1)), "0ms");
}

TEST(PrintTest, FormatTable) {
  EXPECT_EQ(FormatTable({{"A", "BB", "C"}, {"long", "x", ""}}), "A     BB  C\nlong  x\n");
}

}  // namespace
}  // namespace distd::client
