#include "common/shell_words.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace distd {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

std::vector<std::string> Split(absl::string_view line) {
  absl::StatusOr<std::vector<std::string>> words = SplitShellWords(line);
  EXPECT_TRUE(words.ok()) << "\"" << line << "\": " << words.status();
  return words.ok() ? *words : std::vector<std::string>{"<error>"};
}

std::string SplitError(absl::string_view line) {
  absl::StatusOr<std::vector<std::string>> words = SplitShellWords(line);
  EXPECT_TRUE(absl::IsInvalidArgument(words.status())) << "\"" << line << "\"";
  return std::string(words.status().message());
}

std::vector<BatchLine> Batch(absl::string_view text) {
  absl::StatusOr<std::vector<BatchLine>> lines = ParseBatch(text);
  EXPECT_TRUE(lines.ok()) << lines.status();
  return lines.ok() ? *lines : std::vector<BatchLine>{};
}

std::string BatchError(absl::string_view text) {
  absl::StatusOr<std::vector<BatchLine>> lines = ParseBatch(text);
  EXPECT_TRUE(absl::IsInvalidArgument(lines.status()));
  return std::string(lines.status().message());
}

TEST(SplitShellWordsTest, SplitsOnBlanks) {
  EXPECT_THAT(Split("cc -c x.c"), ElementsAre("cc", "-c", "x.c"));
  EXPECT_THAT(Split("  cc\t-c \t x.c  "), ElementsAre("cc", "-c", "x.c"));
  EXPECT_THAT(Split(""), IsEmpty());
  EXPECT_THAT(Split(" \t "), IsEmpty());
}

TEST(SplitShellWordsTest, SingleQuotesKeepEverything) {
  EXPECT_THAT(Split("echo 'a b'"), ElementsAre("echo", "a b"));
  EXPECT_THAT(Split(R"('a\b' '"' '$x' '#')"), ElementsAre(R"(a\b)", "\"", "$x", "#"));
  EXPECT_THAT(Split("x'a b'y"), ElementsAre("xa by"));
}

TEST(SplitShellWordsTest, DoubleQuotesProcessTheirEscapes) {
  EXPECT_THAT(Split(R"("a b")"), ElementsAre("a b"));
  EXPECT_THAT(Split(R"("\"")"), ElementsAre("\""));
  EXPECT_THAT(Split(R"("\\")"), ElementsAre("\\"));
  EXPECT_THAT(Split(R"("\$HOME")"), ElementsAre("$HOME"));
  EXPECT_THAT(Split(R"("\`")"), ElementsAre("`"));
  EXPECT_THAT(Split("\"a\\\nb\""), ElementsAre("ab"));
  // Any other backslash is kept with the character after it.
  EXPECT_THAT(Split(R"("a\b\n")"), ElementsAre(R"(a\b\n)"));
  EXPECT_THAT(Split(R"("it's")"), ElementsAre("it's"));
  EXPECT_THAT(Split("\"a\nb\""), ElementsAre("a\nb"));
}

TEST(SplitShellWordsTest, BackslashOutsideQuotesEscapesTheNextByte) {
  EXPECT_THAT(Split(R"(a\ b)"), ElementsAre("a b"));
  EXPECT_THAT(Split(R"(\'x \" \\ \#)"), ElementsAre("'x", "\"", "\\", "#"));
  EXPECT_THAT(Split(R"(\n)"), ElementsAre("n"));
  EXPECT_THAT(Split("ab\\\ncd"), ElementsAre("abcd"));
}

TEST(SplitShellWordsTest, EmptyQuotesAreWords) {
  EXPECT_THAT(Split("''"), ElementsAre(""));
  EXPECT_THAT(Split(R"("")"), ElementsAre(""));
  EXPECT_THAT(Split(R"(a '' "" b)"), ElementsAre("a", "", "", "b"));
  EXPECT_THAT(Split("''#"), ElementsAre("#"));
}

TEST(SplitShellWordsTest, HashStartsACommentOnlyAtTheStartOfAWord) {
  EXPECT_THAT(Split("a # b"), ElementsAre("a"));
  EXPECT_THAT(Split("a#b"), ElementsAre("a#b"));
  EXPECT_THAT(Split("# all of it"), IsEmpty());
  EXPECT_THAT(Split("a\t#b 'unterminated"), ElementsAre("a"));
  EXPECT_THAT(Split("a '#' b"), ElementsAre("a", "#", "b"));
}

TEST(SplitShellWordsTest, ExpandsNothing) {
  EXPECT_THAT(Split("echo $HOME `id` *.c ~ a|b a;b a>b"),
              ElementsAre("echo", "$HOME", "`id`", "*.c", "~", "a|b", "a;b", "a>b"));
}

TEST(SplitShellWordsTest, KeepsArbitraryBytes) {
  std::string line("a\0b \xff\x80", 6);
  EXPECT_THAT(Split(line), ElementsAre(std::string("a\0b", 3), "\xff\x80"));
}

TEST(SplitShellWordsTest, UnterminatedQuotesAndTrailingBackslashAreErrors) {
  EXPECT_EQ(SplitError("echo 'abc"), "unterminated \"'\"");
  EXPECT_EQ(SplitError("echo \"abc"), "unterminated '\"'");
  EXPECT_EQ(SplitError(R"(echo "abc\")"), "unterminated '\"'");
  EXPECT_EQ(SplitError(R"(echo abc\)"), "trailing backslash");
  EXPECT_EQ(SplitError("'"), "unterminated \"'\"");
}

TEST(ParseBatchTest, OneCommandALineWithLineNumbers) {
  std::vector<BatchLine> lines = Batch("cc -c a.c\ncc -c b.c\n");
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0].line, 1);
  EXPECT_THAT(lines[0].words, ElementsAre("cc", "-c", "a.c"));
  EXPECT_EQ(lines[1].line, 2);
  EXPECT_THAT(lines[1].words, ElementsAre("cc", "-c", "b.c"));
}

TEST(ParseBatchTest, NoNewlineAtTheEnd) {
  std::vector<BatchLine> lines = Batch("true\nfalse");
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_THAT(lines[1].words, ElementsAre("false"));
  EXPECT_EQ(lines[1].line, 2);
}

TEST(ParseBatchTest, SkipsBlankAndCommentLines) {
  std::vector<BatchLine> lines =
      Batch("# header\n\n   \n\t# indented\nfirst\n\n# x\nsecond # tail\n");
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0].line, 5);
  EXPECT_THAT(lines[0].words, ElementsAre("first"));
  EXPECT_EQ(lines[1].line, 8);
  EXPECT_THAT(lines[1].words, ElementsAre("second"));
  EXPECT_THAT(Batch(""), IsEmpty());
  EXPECT_THAT(Batch("\n\n# only comments\n"), IsEmpty());
}

TEST(ParseBatchTest, BackslashNewlineContinuesTheCommand) {
  std::vector<BatchLine> lines = Batch("cc -c \\\n  x.c \\\n  -o x.o\nnext\n");
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0].line, 1);
  EXPECT_THAT(lines[0].words, ElementsAre("cc", "-c", "x.c", "-o", "x.o"));
  EXPECT_EQ(lines[1].line, 4);
  EXPECT_THAT(lines[1].words, ElementsAre("next"));
}

TEST(ParseBatchTest, ContinuationAtTheEndOfTheFileIsFine) {
  std::vector<BatchLine> lines = Batch("echo a \\\n");
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_THAT(lines[0].words, ElementsAre("echo", "a"));
}

TEST(ParseBatchTest, CommandStartsOnTheLineOfItsFirstWord) {
  std::vector<BatchLine> lines = Batch("\\\n\\\necho x\n");
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0].line, 3);
}

TEST(ParseBatchTest, NewlinesInsideQuotesSpanLines) {
  std::vector<BatchLine> lines = Batch("printf 'a\nb'\necho \"c\nd\" e\nlast\n");
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0].line, 1);
  EXPECT_THAT(lines[0].words, ElementsAre("printf", "a\nb"));
  EXPECT_EQ(lines[1].line, 3);
  EXPECT_THAT(lines[1].words, ElementsAre("echo", "c\nd", "e"));
  EXPECT_EQ(lines[2].line, 5);
  EXPECT_THAT(lines[2].words, ElementsAre("last"));
}

TEST(ParseBatchTest, ErrorsNameTheLine) {
  EXPECT_EQ(BatchError("ok\nok\necho \"abc\n"), "line 3: unterminated '\"'");
  EXPECT_EQ(BatchError("ok\n\necho 'abc\nmore\n"), "line 3: unterminated \"'\"");
  EXPECT_EQ(BatchError("ok\necho abc\\"), "line 2: backslash at the end of the file");
  // A quote opened after a continuation names the line it was opened on.
  EXPECT_EQ(BatchError("echo \\\n 'x\n"), "line 2: unterminated \"'\"");
}

TEST(ParseBatchTest, NothingIsReturnedOnError) { EXPECT_FALSE(ParseBatch("good\nbad '\n").ok()); }

// Every byte value in every position of short inputs, as a cheap stand-in for the fuzzer:
// nothing may crash, and a successful split never yields an empty command in a batch.
TEST(ParseBatchTest, SurvivesEveryShortInput) {
  const std::string alphabet = std::string("ab \t\n\\'\"#$`\0\xff", 13);
  std::string input;
  for (char a : alphabet) {
    for (char b : alphabet) {
      for (char c : alphabet) {
        for (char d : alphabet) {
          input = {a, b, c, d};
          absl::StatusOr<std::vector<BatchLine>> lines = ParseBatch(input);
          if (lines.ok()) {
            for (const BatchLine& line : *lines) {
              EXPECT_FALSE(line.words.empty());
              EXPECT_GE(line.line, 1);
              EXPECT_LE(line.line, 5);
            }
          } else {
            EXPECT_THAT(lines.status().message(), HasSubstr("line "));
          }
          (void)SplitShellWords(input);
        }
      }
    }
  }
}

}  // namespace
}  // namespace distd
