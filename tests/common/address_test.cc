#include "common/address.h"

#include <unistd.h>

#include <cstdlib>
#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace distd {
namespace {

using ::testing::HasSubstr;

std::string ParseError(absl::string_view text) {
  absl::StatusOr<Address> address = ParseAddress(text);
  EXPECT_TRUE(absl::IsInvalidArgument(address.status())) << text;
  return std::string(address.status().message());
}

TEST(ParseAddressTest, Unix) {
  absl::StatusOr<Address> address = ParseAddress("unix:/run/distd.sock");
  ASSERT_TRUE(address.ok()) << address.status();
  EXPECT_EQ(address->kind, Address::Kind::kUnix);
  EXPECT_EQ(address->path, "/run/distd.sock");
  EXPECT_EQ(address->ToString(), "unix:/run/distd.sock");
  EXPECT_EQ(address->GrpcTarget(), "unix:/run/distd.sock");
}

TEST(ParseAddressTest, UnixRelativePath) {
  absl::StatusOr<Address> address = ParseAddress("unix:d.sock");
  ASSERT_TRUE(address.ok()) << address.status();
  EXPECT_EQ(address->path, "d.sock");
}

TEST(ParseAddressTest, UnixPathLimitIsSunPath) {
  // sun_path holds 108 bytes including the terminating NUL.
  std::string longest = "/" + std::string(106, 'a');
  ASSERT_EQ(longest.size(), 107u);
  EXPECT_TRUE(ParseAddress("unix:" + longest).ok());
  EXPECT_THAT(ParseError("unix:" + longest + "a"), HasSubstr("108 bytes; the limit is 107"));
}

TEST(ParseAddressTest, UnixErrors) {
  EXPECT_THAT(ParseError("unix:"), HasSubstr("without a path"));
  EXPECT_THAT(ParseError(std::string("unix:/a\0b", 9)), HasSubstr("NUL"));
}

TEST(ParseAddressTest, TcpIpv4AndNames) {
  absl::StatusOr<Address> address = ParseAddress("tcp:127.0.0.1:7070");
  ASSERT_TRUE(address.ok()) << address.status();
  EXPECT_EQ(address->kind, Address::Kind::kTcp);
  EXPECT_EQ(address->host, "127.0.0.1");
  EXPECT_EQ(address->port, 7070);
  EXPECT_EQ(address->ToString(), "tcp:127.0.0.1:7070");
  EXPECT_EQ(address->GrpcTarget(), "127.0.0.1:7070");

  address = ParseAddress("tcp:build-host.example:1");
  ASSERT_TRUE(address.ok()) << address.status();
  EXPECT_EQ(address->host, "build-host.example");
  EXPECT_EQ(address->port, 1);
  EXPECT_TRUE(ParseAddress("tcp:h:65535").ok());
}

TEST(ParseAddressTest, TcpIpv6NeedsBrackets) {
  absl::StatusOr<Address> address = ParseAddress("tcp:[::1]:7070");
  ASSERT_TRUE(address.ok()) << address.status();
  EXPECT_EQ(address->host, "[::1]");
  EXPECT_EQ(address->port, 7070);
  EXPECT_EQ(address->ToString(), "tcp:[::1]:7070");
  EXPECT_EQ(address->GrpcTarget(), "[::1]:7070");
  EXPECT_THAT(ParseError("tcp:::1:7070"), HasSubstr("must be in brackets"));
  EXPECT_THAT(ParseError("tcp:fe80::1:7070"), HasSubstr("must be in brackets"));
}

TEST(ParseAddressTest, TcpErrors) {
  EXPECT_THAT(ParseError("tcp:"), HasSubstr("HOST:PORT"));
  EXPECT_THAT(ParseError("tcp:localhost"), HasSubstr("HOST:PORT"));
  EXPECT_THAT(ParseError("tcp::7070"), HasSubstr("HOST:PORT"));
  EXPECT_THAT(ParseError("tcp:h:0"), HasSubstr("not in 1..65535"));
  EXPECT_THAT(ParseError("tcp:h:65536"), HasSubstr("not in 1..65535"));
  EXPECT_THAT(ParseError("tcp:h:-1"), HasSubstr("not in 1..65535"));
  EXPECT_THAT(ParseError("tcp:h:http"), HasSubstr("not in 1..65535"));
  EXPECT_THAT(ParseError("tcp:h:"), HasSubstr("not in 1..65535"));
  EXPECT_THAT(ParseError("tcp:h:99999999999999999999"), HasSubstr("not in 1..65535"));
  EXPECT_THAT(ParseError("tcp:h: 80"), HasSubstr("not in 1..65535"));
  EXPECT_THAT(ParseError("tcp:h:+80"), HasSubstr("not in 1..65535"));
  EXPECT_THAT(ParseError("tcp:[]:80"), HasSubstr("without a host"));
  EXPECT_THAT(ParseError("tcp:a host:80"), HasSubstr("not a host name"));
}

TEST(ParseAddressTest, NeedsAScheme) {
  EXPECT_THAT(ParseError("/run/distd.sock"), HasSubstr("must start with unix: or tcp:"));
  EXPECT_THAT(ParseError(""), HasSubstr("must start with unix: or tcp:"));
  EXPECT_THAT(ParseError("UNIX:/x"), HasSubstr("must start with unix: or tcp:"));
  EXPECT_THAT(ParseError("http://h:80"), HasSubstr("must start with unix: or tcp:"));
}

// Sets (or, with nullopt, unsets) an environment variable for the life of the object.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, std::optional<std::string> value) : name_(name) {
    if (const char* old = std::getenv(name); old != nullptr) old_ = old;
    if (value.has_value()) {
      setenv(name, value->c_str(), 1);
    } else {
      unsetenv(name);
    }
  }
  ~ScopedEnv() {
    if (old_.has_value()) {
      setenv(name_, old_->c_str(), 1);
    } else {
      unsetenv(name_);
    }
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::optional<std::string> old_;
};

TEST(DefaultSocketPathTest, DistdSocketWins) {
  ScopedEnv socket("DISTD_SOCKET", "/x/y.sock");
  ScopedEnv runtime("XDG_RUNTIME_DIR", "/run/user/1000");
  EXPECT_EQ(DefaultSocketPath(), "/x/y.sock");
}

TEST(DefaultSocketPathTest, ThenXdgRuntimeDir) {
  ScopedEnv socket("DISTD_SOCKET", std::nullopt);
  ScopedEnv runtime("XDG_RUNTIME_DIR", "/run/user/1000");
  EXPECT_EQ(DefaultSocketPath(), "/run/user/1000/distd/distd.sock");
}

TEST(DefaultSocketPathTest, EmptyDistdSocketIsIgnored) {
  ScopedEnv socket("DISTD_SOCKET", "");
  ScopedEnv runtime("XDG_RUNTIME_DIR", "/run/user/7");
  EXPECT_EQ(DefaultSocketPath(), "/run/user/7/distd/distd.sock");
}

TEST(DefaultSocketPathTest, ThenTmpPerUid) {
  ScopedEnv socket("DISTD_SOCKET", std::nullopt);
  ScopedEnv runtime("XDG_RUNTIME_DIR", std::nullopt);
  EXPECT_EQ(DefaultSocketPath(), absl::StrCat("/tmp/distd-", getuid(), "/distd.sock"));
}

TEST(DefaultSocketPathTest, RelativeXdgRuntimeDirIsIgnored) {
  ScopedEnv socket("DISTD_SOCKET", std::nullopt);
  ScopedEnv runtime("XDG_RUNTIME_DIR", "run/user");
  EXPECT_EQ(DefaultSocketPath(), absl::StrCat("/tmp/distd-", getuid(), "/distd.sock"));
}

TEST(LoopbackTest, OnlyNumericLoopbackAddressesAre) {
  EXPECT_TRUE(IsLoopbackAddress("127.0.0.1"));
  EXPECT_TRUE(IsLoopbackAddress("127.255.0.9"));
  EXPECT_TRUE(IsLoopbackAddress("[::1]"));
  EXPECT_TRUE(IsLoopbackAddress("::1"));
  EXPECT_FALSE(IsLoopbackAddress("localhost"));
  EXPECT_FALSE(IsLoopbackAddress("128.0.0.1"));
  EXPECT_FALSE(IsLoopbackAddress("0.0.0.0"));
  EXPECT_FALSE(IsLoopbackAddress("[::]"));
  EXPECT_FALSE(IsLoopbackAddress("127.1"));
  EXPECT_FALSE(IsLoopbackAddress("[::1"));
  EXPECT_FALSE(IsLoopbackAddress("10.0.0.1"));
  EXPECT_FALSE(IsLoopbackAddress("[::ffff:127.0.0.1]"));
}

}  // namespace
}  // namespace distd
