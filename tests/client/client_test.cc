// What of distctl can be tested without a daemon: the command line, global options, output
// helpers, -C resolution. The commands themselves are tested black-box against a distd.
#include <pty.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "client/cli.h"
#include "client/commands.h"
#include "client/print.h"
#include "client/relay.h"
#include "client/run.h"
#include "client/stop.h"
#include "common/exit_codes.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace distd::client {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// One distctl command line, parsed as main parses it, with what it printed.
struct Parsed {
  std::optional<int> code;  // nullopt: a command is to run
  std::string out;
  std::string err;
  GlobalOptions global;
  std::vector<std::string> run_argv;  // run's CMD, if run was parsed
  bool has_action = false;
};

Parsed Parse(std::vector<std::string> args, std::map<std::string, std::string> env = {}) {
  CommandLine command_line;
  Parsed parsed;
  testing::internal::CaptureStdout();
  testing::internal::CaptureStderr();
  parsed.code = command_line.Parse(args, [&env](const char* name) -> const char* {
    auto it = env.find(name);
    return it == env.end() ? nullptr : it->second.c_str();
  });
  parsed.has_action = static_cast<bool>(command_line.action());
  // `help` is the one command that needs no daemon: it runs here.
  if (!parsed.code.has_value() && !args.empty() && args[0] == "help") {
    parsed.code = command_line.action()();
  }
  parsed.out = testing::internal::GetCapturedStdout();
  parsed.err = testing::internal::GetCapturedStderr();
  parsed.global = command_line.global();
  if (const CLI::App* run = command_line.Find({"run"}); run != nullptr && run->parsed()) {
    parsed.run_argv = run->get_option("CMD")->results();
  }
  return parsed;
}

TEST(CommandLineTest, GlobalOptionsGoAnywhereAndTheLastWins) {
  Parsed parsed = Parse({"--addr", "unix:/a", "--build=b1", "status", "--build", "b2"});
  ASSERT_EQ(parsed.code, std::nullopt) << parsed.err;
  EXPECT_TRUE(parsed.has_action);
  EXPECT_EQ(parsed.global.addr, "unix:/a");
  EXPECT_EQ(parsed.global.addr_source, "--addr");
  EXPECT_EQ(parsed.global.build, "b2");
  EXPECT_TRUE(parsed.global.build_given);

  // A global option's value is not the command, whatever it reads.
  parsed = Parse({"--build", "run", "wait", "--addr=unix:/w"});
  ASSERT_EQ(parsed.code, std::nullopt) << parsed.err;
  EXPECT_EQ(parsed.global.build, "run");
  EXPECT_EQ(parsed.global.addr, "unix:/w");
  EXPECT_TRUE(parsed.run_argv.empty());

  parsed = Parse({"build", "close", "x", "--addr", "unix:/c"});
  ASSERT_EQ(parsed.code, std::nullopt) << parsed.err;
  EXPECT_EQ(parsed.global.addr, "unix:/c");
  EXPECT_FALSE(parsed.global.build_given);
  EXPECT_EQ(parsed.global.build, "default");
}

TEST(CommandLineTest, TheEnvironmentGivesDefaultsAndFlagsWin) {
  const std::map<std::string, std::string> env = {{"DISTD_ADDR", "unix:/env"},
                                                  {"DISTD_BUILD", "from-env"}};
  Parsed parsed = Parse({"wait"}, env);
  ASSERT_EQ(parsed.code, std::nullopt) << parsed.err;
  EXPECT_EQ(parsed.global.addr, "unix:/env");
  EXPECT_EQ(parsed.global.addr_source, "DISTD_ADDR");
  EXPECT_EQ(parsed.global.build, "from-env");
  EXPECT_TRUE(parsed.global.build_given);

  parsed = Parse({"wait", "--addr", "unix:/flag", "--build", "b"}, env);
  ASSERT_EQ(parsed.code, std::nullopt) << parsed.err;
  EXPECT_EQ(parsed.global.addr, "unix:/flag");
  EXPECT_EQ(parsed.global.addr_source, "--addr");
  EXPECT_EQ(parsed.global.build, "b");

  // Set but empty is a mistake, not the default build.
  parsed = Parse({"wait"}, {{"DISTD_BUILD", ""}});
  EXPECT_EQ(parsed.code, kExitUsage);
  EXPECT_THAT(parsed.err, HasSubstr("DISTD_BUILD: the build name is empty"));
  EXPECT_FALSE(parsed.has_action);
}

TEST(CommandLineTest, RunsCommandKeepsItsFlags) {
  Parsed parsed = Parse({"run", "--bg", "cc", "-c", "--bg", "x.c"});
  ASSERT_EQ(parsed.code, std::nullopt) << parsed.err;
  EXPECT_THAT(parsed.run_argv, ElementsAre("cc", "-c", "--bg", "x.c"));
  parsed = Parse({"run", "-e", "X=1", "-eY=2", "--", "-weird", "--help"});
  ASSERT_EQ(parsed.code, std::nullopt) << parsed.err;
  EXPECT_THAT(parsed.run_argv, ElementsAre("-weird", "--help"));
  // After CMD, --help is the command's.
  parsed = Parse({"run", "cmd", "--help"});
  ASSERT_EQ(parsed.code, std::nullopt) << parsed.err;
  EXPECT_EQ(parsed.out, "");
  EXPECT_THAT(parsed.run_argv, ElementsAre("cmd", "--help"));
}

TEST(CommandLineTest, UsageErrorsSayWhatWasWrong) {
  const std::pair<std::vector<std::string>, std::string> cases[] = {
      {{"--nope"}, "distctl: unknown flag --nope\n"},
      {{"run", "--nope=3", "--", "true"}, "distctl: run: unknown flag --nope\n"},
      {{"-bg"}, "distctl: unknown flag -bg\n"},
      {{"frobnicate"}, "distctl: unknown command \"frobnicate\"\n"},
      {{}, "distctl: missing command (run, wait, abort, status, logs, build)\n"},
      {{"build"}, "distctl: build: missing command (list, close)\n"},
      {{"build", "close"}, "distctl: build close: NAME is required\n"},
      {{"wait", "x"}, "distctl: wait: unexpected argument \"x\"\n"},
      {{"run", "-C"}, "distctl: run: -C: 1 required DIR missing\n"},
      {{"run", "-e", "X", "true"}, "distctl: run: -e: \"X\" is not NAME=VALUE\n"},
      {{"run", "--timeout", "soon", "true"},
       "distctl: run: --timeout: \"soon\" is not a duration such as 500ms, 2s or 1m\n"},
      {{"run", "-f", "jobs.txt"}, "distctl: run: -f requires --bg\n"},
      {{"run", "--bg", "-f", "jobs.txt", "true"},
       "distctl: run: give either -f FILE or a command, not both (found \"true\" after the "
       "flags)\n"},
      {{"run", "--"},
       "distctl: run: empty command: no program given: distctl run [FLAGS] -- CMD\n"},
      {{"logs", "0"}, "distctl: logs: JOB must be a job id (a number > 0), not \"0\"\n"},
      {{"--build", "", "wait"}, "distctl: --build: the build name is empty\n"},
      {{"abort", "--grace", "0s"}, "distctl: abort: --grace: \"0s\" is not more than 0\n"},
      {{"help", "nope"}, "distctl: help: unknown command \"nope\"\n"},
  };
  for (const auto& [args, message] : cases) {
    Parsed parsed = Parse(args);
    EXPECT_EQ(parsed.code, kExitUsage) << testing::PrintToString(args);
    EXPECT_FALSE(parsed.has_action) << testing::PrintToString(args);
    EXPECT_THAT(parsed.err, StartsWith(message)) << testing::PrintToString(args);
    // And where to read more.
    EXPECT_THAT(parsed.err, HasSubstr("--help' for usage")) << testing::PrintToString(args);
  }
}

TEST(CommandLineTest, HelpIsGeneratedWithTheExitCodes) {
  Parsed parsed = Parse({"--help"});
  ASSERT_EQ(parsed.code, kExitOk);
  EXPECT_FALSE(parsed.has_action);
  EXPECT_THAT(parsed.out, StartsWith("usage: distctl [FLAGS] COMMAND\n"));
  for (const char* text : {"\ncommands:\n", "\n  run ", "\n  build ", "\nexit codes:", "124", "125",
                           "126", "127", "128+N", "--addr ADDR", "DISTD_BUILD"}) {
    EXPECT_THAT(parsed.out, HasSubstr(text));
  }
  // A command's help is its own, with the global options.
  parsed = Parse({"run", "--help"});
  ASSERT_EQ(parsed.code, kExitOk);
  EXPECT_THAT(parsed.out, StartsWith("usage: distctl run [FLAGS] [CMD...]\n"));
  EXPECT_THAT(parsed.out, HasSubstr("\n  --timeout DUR "));
  EXPECT_THAT(parsed.out, HasSubstr("\n  --build NAME "));
  Parsed help = Parse({"help", "run"});
  EXPECT_EQ(help.code, kExitOk);
  EXPECT_EQ(help.out, parsed.out);
  EXPECT_THAT(Parse({"help", "build", "close"}).out,
              StartsWith("usage: distctl build close [FLAGS] NAME\n"));
  EXPECT_EQ(Parse({"--version"}).out, "distctl " DISTD_VERSION "\n");
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

TEST(PrintTest, ColourTakesNoWidthAndIsOffUnlessAsked) {
  EXPECT_EQ(Paint("dead", Colour::kRed, false), "dead");
  EXPECT_EQ(Paint("dead", Colour::kRed, true), "\x1b[31mdead\x1b[0m");
  const std::string plain = FormatTable({{"a", "dead", "x"}, {"bb", "running", "y"}});
  const std::string coloured = FormatTable({{"a", Paint("dead", Colour::kRed, true), "x"},
                                            {"bb", Paint("running", Colour::kGreen, true), "y"}});
  // The same columns: only the codes differ.
  std::string stripped = coloured;
  for (const char* code : {"\x1b[31m", "\x1b[32m", "\x1b[0m"}) {
    for (size_t at; (at = stripped.find(code)) != std::string::npos;) {
      stripped.erase(at, std::strlen(code));
    }
  }
  EXPECT_EQ(stripped, plain);
}

TEST(PrintTest, ColourOnlyOnATerminalAndNotWithNoColor) {
  int leader = -1;
  int follower = -1;
  ASSERT_EQ(openpty(&leader, &follower, nullptr, nullptr, nullptr), 0);
  const char* term = getenv("TERM");
  const std::string saved_term = term != nullptr ? term : "";
  const char* no_colour = getenv("NO_COLOR");
  const std::string saved_no_colour = no_colour != nullptr ? no_colour : "";
  setenv("TERM", "xterm", 1);
  unsetenv("NO_COLOR");
  EXPECT_TRUE(ColourOn(follower));
  int pipe_fds[2];
  ASSERT_EQ(pipe(pipe_fds), 0);
  EXPECT_FALSE(ColourOn(pipe_fds[1]));  // not a terminal
  setenv("NO_COLOR", "", 1);            // empty: as if unset
  EXPECT_TRUE(ColourOn(follower));
  setenv("NO_COLOR", "1", 1);
  EXPECT_FALSE(ColourOn(follower));
  unsetenv("NO_COLOR");
  setenv("TERM", "dumb", 1);
  EXPECT_FALSE(ColourOn(follower));
  if (term != nullptr)
    setenv("TERM", saved_term.c_str(), 1);
  else
    unsetenv("TERM");
  if (no_colour != nullptr) setenv("NO_COLOR", saved_no_colour.c_str(), 1);
  for (int fd : {leader, follower, pipe_fds[0], pipe_fds[1]}) close(fd);
}

TEST(CallStopTest, EachRequestCountsAndTheFirstReasonWins) {
  std::vector<int> calls;
  CallStop stop([&](int nth) { calls.push_back(nth); });
  stop.Stop(SIGINT);
  stop.Stop(SIGTERM);
  EXPECT_THAT(calls, testing::ElementsAre(1, 2));
  EXPECT_EQ(stop.Finish(), SIGINT);
  EXPECT_EQ(stop.Finish(), SIGINT);
}

TEST(CallStopTest, ARequestAfterTheEndChangesNothing) {
  std::vector<int> calls;
  CallStop stop([&](int nth) { calls.push_back(nth); });
  EXPECT_EQ(stop.Finish(), 0);
  stop.Stop(SIGINT);
  EXPECT_TRUE(calls.empty());
  EXPECT_EQ(stop.Finish(), 0);
}

TEST(CallStopTest, ExitCodes) {
  EXPECT_EQ(StopExitCode(SIGINT), 130);
  EXPECT_EQ(StopExitCode(SIGPIPE), 141);
  EXPECT_EQ(StopExitCode(kStopOwnFault), kExitDistdError);
}

// Points fd 1 or 2 at a pipe for the life of the object, and back after.
class Redirect {
 public:
  explicit Redirect(int fd) : fd_(fd), saved_(dup(fd)) {
    EXPECT_EQ(pipe(pipe_), 0);
    EXPECT_EQ(dup2(pipe_[1], fd_), fd_);
    close(pipe_[1]);
  }
  ~Redirect() {
    dup2(saved_, fd_);
    close(saved_);
    if (pipe_[0] >= 0) close(pipe_[0]);
  }
  void CloseReader() {
    close(pipe_[0]);
    pipe_[0] = -1;
  }
  std::string Drain() {
    dup2(saved_, fd_);  // the pipe's last writer gone: read to its end
    std::string out;
    char buf[256];
    for (ssize_t n; (n = read(pipe_[0], buf, sizeof buf)) > 0;) out.append(buf, n);
    return out;
  }

 private:
  const int fd_;
  const int saved_;
  int pipe_[2] = {-1, -1};
};

v1::Output Piece(v1::Stream stream, std::string data) {
  v1::Output output;
  output.set_stream(stream);
  output.set_data(std::move(data));
  return output;
}

TEST(OutputRelayTest, AGoneReaderStopsForSigpipeAndDropsOnlyItsStream) {
  const auto old = std::signal(SIGPIPE, SIG_IGN);  // as distctl's main has it
  std::vector<int> calls;
  CallStop stop([&](int nth) { calls.push_back(nth); });
  OutputRelay relay(&stop);
  std::string err;
  {
    Redirect out(STDOUT_FILENO);
    Redirect errs(STDERR_FILENO);
    out.CloseReader();
    relay.Write(Piece(v1::STDOUT, "lost\n"));
    relay.Write(Piece(v1::STDOUT, "dropped, no second stop\n"));
    relay.Write(Piece(v1::STDERR, "still here\n"));
    err = errs.Drain();
  }
  std::signal(SIGPIPE, old);
  EXPECT_THAT(calls, testing::ElementsAre(1));
  EXPECT_EQ(stop.Finish(), SIGPIPE);
  EXPECT_EQ(err, "still here\n");
}

v1::JobResult Ended(v1::Outcome outcome, int exit_code, int signal = 0) {
  v1::JobResult result;
  result.set_job_id(7);
  result.set_outcome(outcome);
  result.set_exit_code(exit_code);
  result.set_signal(signal);
  return result;
}

TEST(JobExitCodeTest, TheClientsDialectFromTheFacts) {
  EXPECT_EQ(JobExitCode(Ended(v1::SUCCEEDED, 0)), 0);
  EXPECT_EQ(JobExitCode(Ended(v1::FAILED, 3)), 3);
  EXPECT_EQ(JobExitCode(Ended(v1::KILLED, -1, SIGTERM)), 128 + SIGTERM);
  EXPECT_EQ(JobExitCode(Ended(v1::TIMED_OUT, -1, SIGTERM)), kExitTimedOut);
  EXPECT_EQ(JobExitCode(Ended(v1::TIMED_OUT, 0)), kExitTimedOut);  // exited on the TERM
  v1::JobResult missing = Ended(v1::CANNOT_START, -1);
  missing.set_program_not_found(true);
  EXPECT_EQ(JobExitCode(missing), kExitNotFound);
  EXPECT_EQ(JobExitCode(Ended(v1::CANNOT_START, -1)), kExitCannotRun);
  EXPECT_EQ(JobExitCode(Ended(v1::CANCELLED, -1)), kExitDistdError);
  EXPECT_EQ(JobExitCode(Ended(v1::LOST, -1)), kExitDistdError);
}

TEST(JobExitCodeTest, NonsenseFromDistdIsItsFault) {
  EXPECT_EQ(JobExitCode(Ended(v1::FAILED, 256)), kExitDistdError);
  EXPECT_EQ(JobExitCode(Ended(v1::FAILED, -1)), kExitDistdError);
  EXPECT_EQ(JobExitCode(Ended(v1::KILLED, -1, 200)), kExitDistdError);
  EXPECT_EQ(JobExitCode(Ended(v1::OUTCOME_NONE, 0)), kExitDistdError);
}

}  // namespace
}  // namespace distd::client
