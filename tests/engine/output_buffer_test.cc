#include "server/engine/output_buffer.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace distd::engine {
namespace {

TEST(OutputBufferTest, KeepsEverythingWithinTheLimits) {
  OutputBuffer buffer(8, 8);
  buffer.Append("hello ");
  buffer.Append("world");
  EXPECT_EQ(buffer.Text(), "hello world");
  EXPECT_EQ(buffer.total(), 11u);
  EXPECT_EQ(buffer.omitted(), 0u);
}

TEST(OutputBufferTest, KeepsHeadAndTailAndMarksWhatWasLeftOut) {
  OutputBuffer buffer(4, 4);
  for (char c = 'a'; c <= 'z'; ++c) buffer.Append(std::string(1, c));
  EXPECT_EQ(buffer.total(), 26u);
  EXPECT_EQ(buffer.omitted(), 18u);
  EXPECT_EQ(buffer.Text(), "abcd\n[distd: 18 bytes of output omitted]\nwxyz");
}

TEST(OutputBufferTest, LargeChunksWrapTheTail) {
  OutputBuffer buffer(3, 5);
  buffer.Append("0123456789");  // head 012, tail 56789, 34 left out
  EXPECT_EQ(buffer.Text(), "012\n[distd: 2 bytes of output omitted]\n56789");
  buffer.Append("ab");  // tail 789ab
  EXPECT_EQ(buffer.Text(), "012\n[distd: 4 bytes of output omitted]\n789ab");
  buffer.Append(std::string(100, 'z') + "END!!");
  EXPECT_EQ(buffer.Text(), "012\n[distd: 109 bytes of output omitted]\nEND!!");
}

TEST(OutputBufferTest, MarkerFollowsACompleteLine) {
  OutputBuffer buffer(4, 2);
  buffer.Append("ab\ncdefgh");
  EXPECT_EQ(buffer.Text(), "ab\nc\n[distd: 3 bytes of output omitted]\ngh");
}

TEST(OutputBufferTest, ZeroTailKeepsOnlyTheHead) {
  OutputBuffer buffer(2, 0);
  buffer.Append("abcdef");
  EXPECT_EQ(buffer.Text(), "ab\n[distd: 4 bytes of output omitted]\n");
}

TEST(OutputBufferTest, CountsWhatItHoldsAgainstTheBudgetAndGivesItBack) {
  OutputBudget budget;
  {
    OutputBuffer a(100, 100, &budget);
    OutputBuffer b(100, 100, &budget);
    a.Append(std::string(150, 'a'));
    EXPECT_GE(budget.used, 150u);
    EXPECT_EQ(budget.used, a.held() + b.held());
    b.Append(std::string(500, 'b'));
    EXPECT_EQ(budget.used, a.held() + b.held());
    b.Drop("over the memory budget");
    EXPECT_TRUE(b.dropped());
    EXPECT_EQ(b.held(), 0u);
    EXPECT_EQ(budget.used, a.held());
    EXPECT_EQ(b.Text(), "[output dropped: over the memory budget]\n");
    EXPECT_EQ(b.total(), 500u);
    EXPECT_EQ(b.omitted(), 500u);
    b.Append("more");  // counted, not kept
    EXPECT_EQ(b.total(), 504u);
    EXPECT_EQ(budget.used, a.held());
  }
  EXPECT_EQ(budget.used, 0u);
  // A stream that printed nothing stays empty when dropped.
  OutputBuffer quiet(10, 10, &budget);
  quiet.Drop("over the memory budget");
  EXPECT_EQ(quiet.Text(), "");
}

}  // namespace
}  // namespace distd::engine
