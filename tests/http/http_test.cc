// The HTTP server (limits, refusals, streams), who may read it, the JSON it writes and the
// metrics, which follow an engine over fakes.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/http/access.h"
#include "server/http/dashboard.h"
#include "server/http/json.h"
#include "server/http/metrics.h"
#include "server/http/peer.h"
#include "server/http/server.h"
#include "tests/engine/engine_test_util.h"

namespace distd::http {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

int Connect(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  timeval timeout = {10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  return fd;
}

std::string ReadAll(int fd) {
  std::string out;
  char buffer[4096];
  ssize_t n;
  while ((n = read(fd, buffer, sizeof(buffer))) > 0) out.append(buffer, static_cast<size_t>(n));
  return out;
}

// One request, sent whole, and everything the server answers until it closes.
std::string Exchange(int port, const std::string& request) {
  const int fd = Connect(port);
  EXPECT_EQ(send(fd, request.data(), request.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(request.size()));
  std::string answer = ReadAll(fd);
  close(fd);
  return answer;
}

std::string Get(int port, const std::string& path, const std::string& extra = "") {
  return Exchange(port, absl::StrCat("GET ", path, " HTTP/1.1\r\nHost: 127.0.0.1:", port, "\r\n",
                                     extra, "\r\n"));
}

// Get, again while the answer is 503: the end of a connection that held a place is noted by
// its thread, a moment after the client sees it.
std::string GetOnceFree(int port, const std::string& path) {
  std::string answer;
  for (int attempt = 0; attempt < 200; ++attempt) {
    answer = Get(port, path);
    if (!absl::StartsWith(answer, "HTTP/1.1 503")) break;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return answer;
}

Address Loopback() {
  Address address;
  address.kind = Address::Kind::kTcp;
  address.host = "127.0.0.1";
  address.port = 0;  // any
  return address;
}

class HttpServerTest : public ::testing::Test {
 protected:
  void Open(ServerOptions options = {}) {
    std::map<std::string, Route> routes;
    routes["/hello"].serve = [this](const Request& request) {
      peer_uid_ = request.peer_uid.has_value() ? static_cast<int>(*request.peer_uid) : -1;
      return Response{200, "text/plain", "hello\n"};
    };
    routes["/events"].serve = [](const Request&) { return Response{}; };
    routes["/events"].stream = [this](const Request&, EventStream& stream) {
      for (int i = 0; stream.Send("tick", absl::StrCat(i, "\nsecond line")); ++i) {
        if (!stream.Wait(absl::Milliseconds(20))) break;
      }
      streams_ended_.fetch_add(1);
    };
    absl::StatusOr<std::unique_ptr<Server>> server =
        Server::Open("--test", Loopback(), std::move(routes), options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    server_->Start();
    port_ = server_->port();
  }

  // A connection that sends half a request and holds its place until the read timeout.
  int HoldAPlace() {
    const int fd = Connect(port_);
    EXPECT_EQ(send(fd, "GET /hel", 8, MSG_NOSIGNAL), 8);
    return fd;
  }

  std::unique_ptr<Server> server_;
  int port_ = 0;
  std::atomic<int> peer_uid_{-2};
  std::atomic<int> streams_ended_{0};
};

TEST_F(HttpServerTest, ServesItsRoutesAndRefusesTheRest) {
  Open();
  std::string answer = Get(port_, "/hello");
  EXPECT_THAT(answer, StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_THAT(answer, HasSubstr("\r\nContent-Length: 6\r\n"));
  EXPECT_THAT(answer, HasSubstr("\r\nX-Content-Type-Options: nosniff\r\n"));
  EXPECT_TRUE(absl::EndsWith(answer, "\r\n\r\nhello\n"));
  // The kernel tells who connected: this test's own uid.
  EXPECT_EQ(peer_uid_.load(), static_cast<int>(getuid()));
  answer =
      Exchange(port_, absl::StrCat("HEAD /hello HTTP/1.1\r\nHost: localhost:", port_, "\r\n\r\n"));
  EXPECT_THAT(answer, StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_TRUE(absl::EndsWith(answer, "\r\n\r\n"));
  EXPECT_THAT(Get(port_, "/nope"), StartsWith("HTTP/1.1 404 "));
  EXPECT_THAT(Exchange(port_, "POST /hello HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"),
              StartsWith("HTTP/1.1 405 "));
  // A page of another site, through a name that resolves to loopback, is refused.
  EXPECT_THAT(Exchange(port_, "GET /hello HTTP/1.1\r\nHost: evil.example:80\r\n\r\n"),
              StartsWith("HTTP/1.1 421 "));
  EXPECT_THAT(Exchange(port_, "GET /hello HTTP/1.1\r\n\r\n"), StartsWith("HTTP/1.1 421 "));
  EXPECT_THAT(Exchange(port_, "GET /hello\r\n\r\n"), StartsWith("HTTP/1.1 400 "));
  EXPECT_THAT(Exchange(port_, "GET /hello HTTP/1.1\r\nHost: a\r\nHost: 127.0.0.1\r\n\r\n"),
              StartsWith("HTTP/1.1 400 "));
  EXPECT_THAT(Exchange(port_, absl::StrCat("GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\nX: ",
                                           std::string(9000, 'x'), "\r\n\r\n")),
              StartsWith("HTTP/1.1 431 "));
}

TEST_F(HttpServerTest, ASlowOrIdleClientIsCutOffAndTheBoundHolds) {
  ServerOptions options;
  options.max_connections = 2;
  options.read_timeout = absl::Milliseconds(300);
  Open(options);
  // Two connections that send half a head hold both places...
  const int a = HoldAPlace();
  const int b = Connect(port_);
  // ...so a third is answered at once, 503, while they wait. (Once they are accepted: the
  // server accepts in order, so the third is accepted after both.)
  std::string third = Get(port_, "/hello");
  EXPECT_THAT(third, StartsWith("HTTP/1.1 503 "));
  // Each is cut off after the read timeout, with 408.
  EXPECT_THAT(ReadAll(a), StartsWith("HTTP/1.1 408 "));
  EXPECT_THAT(ReadAll(b), StartsWith("HTTP/1.1 408 "));
  close(a);
  close(b);
  EXPECT_THAT(GetOnceFree(port_, "/hello"), StartsWith("HTTP/1.1 200 "));
}

TEST_F(HttpServerTest, AStreamRunsUntilItsClientGoesOrTheServerStops) {
  Open();
  // A client that reads two events and goes: the stream's handler sees it and ends.
  int fd = Connect(port_);
  std::string request = absl::StrCat("GET /events HTTP/1.1\r\nHost: 127.0.0.1:", port_, "\r\n\r\n");
  ASSERT_EQ(send(fd, request.data(), request.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(request.size()));
  std::string seen;
  char buffer[4096];
  while (!absl::StrContains(seen, "data: 1\n")) {
    const ssize_t n = read(fd, buffer, sizeof(buffer));
    ASSERT_GT(n, 0) << seen;
    seen.append(buffer, static_cast<size_t>(n));
  }
  EXPECT_THAT(seen, HasSubstr("Content-Type: text/event-stream\r\n"));
  EXPECT_THAT(seen, Not(HasSubstr("Content-Length")));
  EXPECT_THAT(seen, HasSubstr("event: tick\ndata: 0\ndata: second line\n\n"));
  close(fd);
  for (int attempt = 0; attempt < 500 && streams_ended_.load() == 0; ++attempt) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_EQ(streams_ended_.load(), 1);
  // A stream still open when the server stops is ended, and Stop returns.
  fd = Connect(port_);
  ASSERT_EQ(send(fd, request.data(), request.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(request.size()));
  ASSERT_GT(read(fd, buffer, sizeof(buffer)), 0);
  const absl::Time before = absl::Now();
  server_->Stop();
  EXPECT_LT(absl::Now() - before, absl::Seconds(5));
  EXPECT_EQ(streams_ended_.load(), 2);
  ReadAll(fd);  // and the client sees the end
  close(fd);
}

TEST_F(HttpServerTest, OtherUidsGetAShareOfTheConnections) {
  // This test's connections are another uid's to this server.
  Open(ServerOptions{.max_connections_of_others = 1, .own_uid = getuid() + 1});
  const int idle = HoldAPlace();
  EXPECT_THAT(Get(port_, "/hello"), StartsWith("HTTP/1.1 503 "));
  close(idle);
  EXPECT_THAT(GetOnceFree(port_, "/hello"), StartsWith("HTTP/1.1 200 "));
  // The peer was named when the connection was accepted.
  EXPECT_EQ(peer_uid_.load(), static_cast<int>(getuid()));
}

TEST_F(HttpServerTest, DistdsOwnUidIsNotHeldToTheShare) {
  Open(ServerOptions{.max_connections_of_others = 0, .own_uid = getuid()});
  const int idle = HoldAPlace();
  EXPECT_THAT(Get(port_, "/hello"), StartsWith("HTTP/1.1 200 "));
  close(idle);
}

TEST_F(HttpServerTest, AHostWithAnotherPortIsRefused) {
  Open();
  EXPECT_THAT(Exchange(port_, absl::StrCat("GET /hello HTTP/1.1\r\nHost: 127.0.0.1:", port_ + 1,
                                           "\r\n\r\n")),
              StartsWith("HTTP/1.1 421 "));
}

TEST(HttpServerOpenTest, IPv6LoopbackIsThatAddressOnly) {
  const int probe = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in6 any6 = {};
  any6.sin6_family = AF_INET6;
  any6.sin6_addr = in6addr_loopback;
  const bool v6 = probe >= 0 && bind(probe, reinterpret_cast<sockaddr*>(&any6), sizeof(any6)) == 0;
  if (probe >= 0) close(probe);
  if (!v6) GTEST_SKIP() << "no IPv6 loopback here";
  Address address = Loopback();
  address.host = "[::1]";
  absl::StatusOr<std::unique_ptr<Server>> server = Server::Open("--http-listen", address, {});
  ASSERT_TRUE(server.ok()) << server.status();
  // Reachable on ::1, and not on 127.0.0.1 (a wildcard socket would be both).
  const int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in6 to = any6;
  to.sin6_port = htons(static_cast<uint16_t>((*server)->port()));
  EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof(to)), 0);
  close(fd);
  const int v4 = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in to4 = {};
  to4.sin_family = AF_INET;
  to4.sin_port = to.sin6_port;
  to4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_NE(connect(v4, reinterpret_cast<sockaddr*>(&to4), sizeof(to4)), 0);
  close(v4);
  address.host = "[::1";
  EXPECT_FALSE(Server::Open("--http-listen", address, {}).ok());
}

TEST(HttpServerOpenTest, OnlyLoopbackIsServed) {
  Address wide = Loopback();
  wide.host = "0.0.0.0";
  absl::StatusOr<std::unique_ptr<Server>> server = Server::Open("--http-listen", wide, {});
  ASSERT_FALSE(server.ok());
  EXPECT_THAT(server.status().message(), HasSubstr("loopback"));
}

TEST(RequestHeadTest, PartsAreParsedAndMistakesNamed) {
  absl::StatusOr<Request> request =
      ParseRequestHead("GET /a/b?x=1 HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer t");
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_EQ(request->method, "GET");
  EXPECT_EQ(request->path, "/a/b");
  EXPECT_EQ(request->query, "x=1");
  EXPECT_EQ(request->headers.at("host"), "localhost");
  EXPECT_EQ(request->headers.at("authorization"), "Bearer t");
  EXPECT_FALSE(ParseRequestHead("GET http://x/ HTTP/1.1").ok());
  EXPECT_FALSE(ParseRequestHead("GET / HTTP/2").ok());
  EXPECT_FALSE(ParseRequestHead("GET / HTTP/1.1\r\nno colon").ok());
  EXPECT_FALSE(ParseRequestHead("GET / HTTP/1.1\r\nBad Name: x").ok());
  EXPECT_FALSE(ParseRequestHead("GET / HTTP/1.1\r\nAuthorization: a\r\nauthorization: b").ok());
}

TEST(LoopbackHostTest, OnlyLoopbackNames) {
  for (const char* host :
       {"localhost", "LOCALHOST:8080", "127.0.0.1", "127.1.2.3:9", "[::1]", "[::1]:8080"}) {
    EXPECT_TRUE(IsLoopbackHost(host)) << host;
  }
  for (const char* host : {"", "evil.example", "localhost.evil.example", "128.0.0.1", "[::2]",
                           "127.0.0.1:x", "[::1", "10.0.0.1:80", "localhost:", "[::1]x"}) {
    EXPECT_FALSE(IsLoopbackHost(host)) << host;
  }
  EXPECT_TRUE(IsLoopbackHost("localhost", 8080));
  EXPECT_TRUE(IsLoopbackHost("127.0.0.1:8080", 8080));
  EXPECT_FALSE(IsLoopbackHost("127.0.0.1:8081", 8080));
  EXPECT_FALSE(IsLoopbackHost("[::1]:80", 8080));
}

TEST(JsonTest, StringsAreEscapedAndMadeUtf8) {
  std::string out;
  AppendJsonString(&out, "a\"b\\c\nd\te\x01</script>&");
  EXPECT_EQ(out, "\"a\\\"b\\\\c\\nd\\te\\u0001\\u003c/script\\u003e\\u0026\"");
  out.clear();
  AppendJsonString(&out, "\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");  // é € 😀 are kept
  EXPECT_EQ(out, "\"\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"");
  out.clear();
  // A lone continuation byte, an overlong '/', a surrogate, a truncated sequence.
  AppendJsonString(&out, "\x80|\xc0\xaf|\xed\xa0\x80|\xe2\x82");
  EXPECT_EQ(out, "\"\\ufffd|\\ufffd\\ufffd|\\ufffd\\ufffd\\ufffd|\\ufffd\\ufffd\"");
}

TEST(AccessTest, DistdsOwnUidIsAnAdminAndOthersNeedAToken) {
  Request request;
  request.peer_uid = getuid();
  absl::StatusOr<service::Authorized> own = Authorize(request, getuid(), nullptr);
  ASSERT_TRUE(own.ok()) << own.status();
  EXPECT_TRUE(own->access.admin);
  request.peer_uid = getuid() + 1;
  absl::StatusOr<service::Authorized> other = Authorize(request, getuid(), nullptr);
  EXPECT_TRUE(absl::IsUnauthenticated(other.status())) << other.status();
  EXPECT_EQ(Refusal(other.status()).status, 401);
  request.peer_uid.reset();
  EXPECT_FALSE(Authorize(request, getuid(), nullptr).ok());
  // A token, with no token file to check it against, is refused too.
  request.peer_uid = getuid();
  request.headers["authorization"] = "Bearer 0123456789abcdef";
  EXPECT_TRUE(absl::IsUnauthenticated(Authorize(request, getuid(), nullptr).status()));
}

TEST(PeerTest, TheKernelNamesTheUidOfTheOtherEnd) {
  const int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(listen(listener, 1), 0);
  ASSERT_EQ(getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  const int client = Connect(ntohs(addr.sin_port));
  const int accepted = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
  ASSERT_GE(accepted, 0);
  absl::StatusOr<uid_t> uid = LoopbackPeerUid(accepted);
  ASSERT_TRUE(uid.ok()) << uid.status();
  EXPECT_EQ(*uid, getuid());
  // A socket that is not a TCP connection is not asked about.
  EXPECT_TRUE(absl::IsNotFound(LoopbackPeerUid(listener).status()));
  // Once the other end is closed (an orphan, which the kernel says is root's), nobody is.
  close(client);
  EXPECT_TRUE(absl::IsNotFound(LoopbackPeerUid(accepted).status()));
  for (int fd : {accepted, listener}) close(fd);
}

// --- the metrics ---------------------------------------------------------------------------

using engine::FakeEngine;
using engine::Spec;

// The value of the sample `name` (with its labels, as written) in a scrape; -1 if absent.
double Sample(const std::string& scrape, const std::string& name) {
  const std::string key = name + " ";
  size_t at = 0;
  while ((at = scrape.find(key, at)) != std::string::npos) {
    if (at == 0 || scrape[at - 1] == '\n') return std::stod(scrape.substr(at + key.size()));
    at += key.size();
  }
  return -1;
}

class MetricsTest : public ::testing::Test {
 protected:
  MetricsTest() : fake_(Options()), metrics_(fake_.engine.get()) {
    fake_.engine->AddObserver(&metrics_);
  }
  ~MetricsTest() override { fake_.engine->RemoveObserver(&metrics_); }

  static engine::EngineOptions Options() {
    engine::EngineOptions options;
    options.jobs = 2;
    options.grace = absl::Seconds(5);
    return options;
  }

  std::vector<engine::JobId> Submit(const std::string& build, std::vector<std::string> programs) {
    std::vector<engine::JobSpec> specs;
    for (const std::string& program : programs) specs.push_back(Spec({program}));
    absl::StatusOr<std::vector<engine::JobId>> ids =
        fake_.engine->Submit(build, std::move(specs), engine::Caller{0, "test"});
    EXPECT_TRUE(ids.ok()) << ids.status();
    return ids.ok() ? *ids : std::vector<engine::JobId>();
  }

  FakeEngine fake_;
  Metrics metrics_;
};

TEST_F(MetricsTest, CountsGaugesAndTimesFollowTheEngine) {
  std::vector<engine::JobId> ids = Submit("b", {"a", "b", "c", "d"});
  std::string scrape = metrics_.Scrape();
  EXPECT_EQ(Sample(scrape, "distd_jobs_queued_total"), 4);
  EXPECT_EQ(Sample(scrape, "distd_pool_jobs"), 2);
  EXPECT_EQ(Sample(scrape, "distd_pool_running"), 2);
  EXPECT_EQ(Sample(scrape, "distd_build_jobs_running{build=\"b\"}"), 2);
  EXPECT_EQ(Sample(scrape, "distd_build_jobs_queued{build=\"b\"}"), 2);
  EXPECT_EQ(Sample(scrape, "distd_builds{state=\"running\"}"), 1);
  // a runs 2 s and succeeds; c then starts, having waited 2 s.
  fake_.clock->Advance(absl::Seconds(2));
  ASSERT_TRUE(fake_.spawner->Exit(ids[0], 0));
  // An abort: b and c get SIGTERM, d is cancelled, and 0.25 s later both have ended.
  engine::Answer abort;
  fake_.engine->AbortAsync("b", engine::Reason("stop"), abort.Callback());
  fake_.clock->Advance(absl::Milliseconds(250));
  ASSERT_EQ(fake_.spawner->DeliverSignals(), 2);
  ASSERT_TRUE(abort.done());
  scrape = metrics_.Scrape();
  EXPECT_EQ(Sample(scrape, "distd_jobs_finished_total{outcome=\"succeeded\"}"), 1);
  EXPECT_EQ(Sample(scrape, "distd_jobs_finished_total{outcome=\"killed\"}"), 2);
  EXPECT_EQ(Sample(scrape, "distd_jobs_finished_total{outcome=\"cancelled\"}"), 1);
  EXPECT_EQ(Sample(scrape, "distd_job_queue_wait_seconds_count"), 3);
  EXPECT_DOUBLE_EQ(Sample(scrape, "distd_job_queue_wait_seconds_sum"), 2.0);
  EXPECT_EQ(Sample(scrape, "distd_job_run_seconds_count"), 3);
  EXPECT_DOUBLE_EQ(Sample(scrape, "distd_job_run_seconds_sum"), 2.0 + 2.25 + 0.25);
  EXPECT_EQ(Sample(scrape, "distd_builds_stopped_total{cause=\"abort\"}"), 1);
  EXPECT_EQ(Sample(scrape, "distd_build_stop_seconds_count{cause=\"abort\"}"), 1);
  EXPECT_DOUBLE_EQ(Sample(scrape, "distd_build_stop_seconds_sum{cause=\"abort\"}"), 0.25);
  EXPECT_EQ(Sample(scrape, "distd_builds{state=\"dead\"}"), 1);
  // A build with no work left has no per-build gauges.
  EXPECT_EQ(Sample(scrape, "distd_build_jobs_running{build=\"b\"}"), -1);
}

TEST_F(MetricsTest, AFailureAndASpawnErrorAreCountedByKind) {
  fake_.spawner->FailStart("missing", absl::NotFoundError("no such program"));
  fake_.spawner->FailStart("broken", absl::PermissionDeniedError("not executable"));
  engine::JobSpec unchecked = Spec({"missing"}, /*check=*/false);
  ASSERT_TRUE(fake_.engine->Submit("s", {unchecked}, engine::Caller{0, "test"}).ok());
  std::vector<engine::JobId> ids = Submit("f", {"x", "broken"});
  // "broken" could not start, which fails f at once (it is checked); x is stopped.
  fake_.clock->Advance(absl::Milliseconds(10));
  ASSERT_EQ(fake_.spawner->DeliverSignals(), 1);
  const std::string scrape = metrics_.Scrape();
  EXPECT_EQ(Sample(scrape, "distd_spawn_errors_total{reason=\"not_found\"}"), 1);
  EXPECT_EQ(Sample(scrape, "distd_spawn_errors_total{reason=\"other\"}"), 1);
  EXPECT_EQ(Sample(scrape, "distd_jobs_finished_total{outcome=\"cannot_start\"}"), 2);
  // Only x ran; the two that could not start did not.
  EXPECT_EQ(Sample(scrape, "distd_job_run_seconds_count"), 1);
  EXPECT_EQ(Sample(scrape, "distd_builds_stopped_total{cause=\"failure\"}"), 1);
  EXPECT_EQ(Sample(scrape, "distd_build_stop_seconds_count{cause=\"failure\"}"), 1);
  EXPECT_DOUBLE_EQ(Sample(scrape, "distd_build_stop_seconds_sum{cause=\"failure\"}"), 0.01);
  // Every family has its help and type lines, as Prometheus wants.
  EXPECT_THAT(scrape, HasSubstr("# TYPE distd_job_run_seconds histogram\n"));
  EXPECT_THAT(scrape, HasSubstr("# TYPE distd_pool_running gauge\n"));
  EXPECT_THAT(scrape, HasSubstr("# HELP distd_jobs_finished_total "));
}

TEST_F(MetricsTest, TheDashboardShowsACallerOnlyWhatItMaySee) {
  Dashboard dashboard(fake_.engine.get(), nullptr, getuid(), nullptr);
  std::vector<engine::JobId> ci = Submit("ci-1", {"cc", "ld"});
  Submit("other", {"make"});
  ASSERT_TRUE(fake_.spawner->Output(ci[0], engine::OutputStream::kStderr, "x.c: <error>\n"));
  ASSERT_TRUE(fake_.spawner->Exit(ci[0], 2));
  ASSERT_EQ(fake_.spawner->DeliverSignals(), 1);  // ld, stopped by the failure
  service::Authorized admin;
  admin.access.admin = true;
  std::string state = dashboard.StateJson(admin);
  EXPECT_THAT(state, HasSubstr("\"name\":\"ci-1\",\"state\":\"dead\""));
  EXPECT_THAT(state, HasSubstr("\"name\":\"other\",\"state\":\"running\""));
  EXPECT_THAT(state, HasSubstr("\"reason\":\"exit code 2: cc\""));
  EXPECT_THAT(state, HasSubstr("\"stderr\":\"x.c: \\u003cerror\\u003e\\n\""));
  EXPECT_THAT(state, HasSubstr("\"argv\":[\"make\"]"));  // running, in other
  service::Authorized ci_only;
  ci_only.access.builds = "ci-";
  state = dashboard.StateJson(ci_only);
  EXPECT_THAT(state, HasSubstr("ci-1"));
  EXPECT_THAT(state, Not(HasSubstr("other")));
  EXPECT_THAT(state, Not(HasSubstr("make")));
}

}  // namespace
}  // namespace distd::http
