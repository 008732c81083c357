#include "server/engine/validate.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace distd::engine {
namespace {

using ::testing::HasSubstr;

JobSpec Good() {
  JobSpec spec;
  spec.argv = {"cc", "-c", "x.c"};
  spec.cwd = "/src";
  return spec;
}

TEST(ValidateNameTest, AcceptsOrdinaryNames) {
  Limits limits;
  for (const char* name : {"default", "ci/1234", "user@host:main", "a.b_c-d+e", "X"}) {
    EXPECT_TRUE(ValidateName("build", name, limits).ok()) << name;
  }
}

TEST(ValidateNameTest, RefusesBadNamesSayingWhy) {
  Limits limits;
  EXPECT_THAT(ValidateName("build", "", limits).message(), HasSubstr("build name is empty"));
  EXPECT_THAT(ValidateName("build", "a b", limits).message(), HasSubstr("outside"));
  EXPECT_THAT(ValidateName("group", "-x", limits).message(), HasSubstr("must not start"));
  EXPECT_THAT(ValidateName("build", ".hidden", limits).message(), HasSubstr("must not start"));
  EXPECT_THAT(ValidateName("build", std::string(129, 'a'), limits).message(),
              HasSubstr("129 bytes; the limit is 128"));
  EXPECT_TRUE(absl::IsInvalidArgument(ValidateName("build", "a\nb", limits)));
}

TEST(ValidateJobSpecTest, AcceptsAGoodSpec) {
  JobSpec spec = Good();
  auto env = std::make_shared<std::vector<std::string>>();
  env->push_back("PATH=/usr/bin");
  env->push_back("EMPTY=");
  spec.env = env;
  spec.timeout = absl::Seconds(30);
  spec.group = "compile";
  EXPECT_TRUE(ValidateJobSpec(spec, Limits()).ok());
}

TEST(ValidateJobSpecTest, CountsBytesNotArguments) {
  // As many short arguments as execve takes: more than 65,536 of them.
  JobSpec spec = Good();
  Limits limits;
  limits.max_exec_bytes = 2 * 1024 * 1024;
  spec.argv.resize(100'000, "x");
  EXPECT_TRUE(ValidateJobSpec(spec, limits).ok());
  spec.argv.resize(300'000, "x");
  EXPECT_THAT(ValidateJobSpec(spec, limits).message(), HasSubstr("the limit is 2097152"));
}

TEST(ValidateJobSpecTest, RefusesBadSpecsSayingWhy) {
  Limits limits;
  auto check = [&](JobSpec spec, const char* expected) {
    absl::Status status = ValidateJobSpec(spec, limits);
    EXPECT_TRUE(absl::IsInvalidArgument(status)) << status;
    EXPECT_THAT(status.message(), HasSubstr(expected));
  };
  JobSpec empty = Good();
  empty.argv.clear();
  check(empty, "empty command");
  JobSpec empty_program = Good();
  empty_program.argv[0].clear();
  check(empty_program, "empty program");
  JobSpec huge = Good();
  huge.argv.push_back(std::string(8 * 1024 * 1024, 'x'));
  check(huge, "argument 3");
  JobSpec nul = Good();
  nul.argv.push_back(std::string("a\0b", 3));
  check(nul, "NUL");
  JobSpec relative = Good();
  relative.cwd = "src";
  check(relative, "not an absolute path");
  JobSpec bad_env = Good();
  bad_env.env = std::make_shared<std::vector<std::string>>(std::vector<std::string>{"NOEQUALS"});
  check(bad_env, "NAME=VALUE");
  JobSpec many = Good();
  many.argv = std::vector<std::string>(limits.max_exec_bytes / 100, std::string(100, 'a'));
  check(many, "arguments and environment take");
  JobSpec bad_umask = Good();
  bad_umask.settings =
      std::make_shared<ProcessSettings>(ProcessSettings{.umask = 01000, .limits = {}});
  check(bad_umask, "umask 1000");
  JobSpec unknown_limit = Good();
  unknown_limit.settings = std::make_shared<ProcessSettings>(
      ProcessSettings{.umask = {}, .limits = {{.resource = -1, .soft = 5}}});
  check(unknown_limit, "unknown kind");
  JobSpec twice = Good();
  twice.settings = std::make_shared<ProcessSettings>(ProcessSettings{
      .umask = {}, .limits = {{.resource = 7, .soft = 5}, {.resource = 7, .soft = 6}}});
  check(twice, "twice");
  JobSpec negative = Good();
  negative.timeout = absl::Seconds(-1);
  check(negative, "timeout");
  JobSpec bad_group = Good();
  bad_group.group = "a b";
  check(bad_group, "group name");
}

}  // namespace
}  // namespace distd::engine
