// Remote callers: the service in-process behind a TCP listener on loopback with TLS, with a
// CA, certificates and tokens made for the test by the openssl command line; every refusal
// must come with its code and run nothing.
#include "server/service/remote.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "distd/v1/distd.grpc.pb.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "server/service/peers.h"
#include "server/service/queue_keeper.h"
#include "server/service/service.h"
#include "server/spawn/clock.h"
#include "server/spawn/spawner.h"

namespace distd {
namespace {

using ::testing::HasSubstr;

constexpr char kCiToken[] = "ci-token-0123456789abcdef";
constexpr char kAdminToken[] = "admin-token-0123456789abcdef";
constexpr char kOpenToken[] = "open-token-0123456789abcdef";

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

void WriteFile(const std::string& path, const std::string& text, mode_t mode) {
  std::ofstream(path) << text;
  chmod(path.c_str(), mode);
}

// The CA, distd's certificate, and client certificates: one the CA signed (ci-agent), one
// it signed that has expired (old-agent), and one of another CA (stranger).
class Certificates {
 public:
  static const Certificates& Get() {
    static const Certificates* certificates = new Certificates();
    return *certificates;
  }
  std::string dir;
  bool ok = false;
  std::string Path(const std::string& name) const { return dir + "/" + name; }
  std::string Pem(const std::string& name) const { return ReadAll(Path(name)); }

 private:
  Certificates() {
    char pattern[] = "/tmp/distd-remote-certs-XXXXXX";
    if (mkdtemp(pattern) == nullptr) return;
    dir = pattern;
    const std::string script = absl::StrCat(R"(set -e; umask 077; cd ')", dir, R"(';
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"; }
ca() { key "$1.key"; openssl req -x509 -new -key "$1.key" -subj "/CN=$1" -days 2 -out "$1.crt"; }
# sign NAME CA DAYS EXT
sign() { key "$1.key"; openssl req -new -key "$1.key" -subj "/CN=$1" -out "$1.csr";
  printf '%s\n' "$4" > "$1.ext";
  openssl x509 -req -in "$1.csr" -CA "$2.crt" -CAkey "$2.key" -CAcreateserial -days "$3" \
    -extfile "$1.ext" -out "$1.crt"; }
ca ca; ca other-ca
sign distd ca 2 "subjectAltName=IP:127.0.0.1"
sign ci-agent ca 2 "extendedKeyUsage=clientAuth"
sign old-agent ca -1 "extendedKeyUsage=clientAuth"
sign stranger other-ca 2 "extendedKeyUsage=clientAuth"
)");
    std::FILE* shell = popen("bash -s >/dev/null 2>&1", "w");
    if (shell == nullptr) return;
    std::fputs(script.c_str(), shell);
    ok = pclose(shell) == 0;
  }
};

class RemoteTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const Certificates& certificates = Certificates::Get();
    if (!certificates.ok) GTEST_SKIP() << "the openssl command line could not make certificates";
    char pattern[] = "/tmp/distd-remote-test-XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
    WriteFile(dir_ + "/tokens",
              absl::StrCat("# the test's tokens\n", "ci ", kCiToken, " builds=ci-\n", "boss ",
                           kAdminToken, " admin\n", "open ", kOpenToken, "\n",
                           "ci-agent - builds=agent-\n"),
              0600);
    options_.tls_cert = certificates.Path("distd.crt");
    options_.tls_key = certificates.Path("distd.key");
    options_.tls_client_ca = certificates.Path("ca.crt");
    options_.token_file = dir_ + "/tokens";
  }

  // Starts the service behind a TLS listener on 127.0.0.1 and a port of the kernel's choice.
  void Start() {
    absl::StatusOr<std::unique_ptr<service::Remote>> remote =
        service::Remote::Open(options_, {*ParseAddress("tcp:127.0.0.1:1")});
    ASSERT_TRUE(remote.ok()) << remote.status();
    remote_ = *std::move(remote);
    engine::EngineOptions options;
    options.jobs = 2;
    options.grace = absl::Seconds(2);
    options.limits = limits_;
    engine_ =
        std::make_unique<engine::Engine>(options, spawn::NewPosixSpawner(), spawn::NewRealClock());
    peers_ = std::make_unique<service::Peers>(getuid(), remote_.get());
    service_ = std::make_unique<service::Service>(service_options_, engine_.get(), peers_.get());
    grpc::ServerBuilder builder;
    builder.RegisterService(service_.get());
    builder.SetMaxReceiveMessageSize(max_request_bytes_);
    builder.AddChannelArgument(GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS, 10'000);
    builder.AddListeningPort("127.0.0.1:0", remote_->Credentials(), &port_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_NE(port_, 0);
    keeper_ = std::make_unique<service::QueueKeeper>(server_.get());
  }

  void TearDown() override {
    if (server_ != nullptr) {
      engine_->Shutdown("test over");
      keeper_.reset();
      server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
    }
    server_.reset();
    service_.reset();
    engine_.reset();
    if (!dir_.empty()) {
      ASSERT_EQ(system(("rm -rf " + dir_).c_str()), 0);
    }
  }

  std::string Target() const { return absl::StrCat("127.0.0.1:", port_); }

  // A stub over TLS that trusts the CA, with the client certificate `cert` if not empty.
  std::unique_ptr<v1::Distd::Stub> Stub(const std::string& cert = "") {
    const Certificates& certificates = Certificates::Get();
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = certificates.Pem("ca.crt");
    if (!cert.empty()) {
      ssl.pem_cert_chain = certificates.Pem(cert + ".crt");
      ssl.pem_private_key = certificates.Pem(cert + ".key");
    }
    return v1::Distd::NewStub(grpc::CreateChannel(Target(), grpc::SslCredentials(ssl)));
  }

  static void Authorize(grpc::ClientContext* context, const std::string& token) {
    if (!token.empty()) context->AddMetadata("authorization", "Bearer " + token);
    context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  }

  // A command that leaves `marker` in the test's directory if it runs.
  v1::SubmitRequest Marking(const std::string& build, const std::string& marker) {
    v1::SubmitRequest request;
    request.set_build(build);
    request.set_cwd("/");
    request.add_env("PATH=/usr/bin:/bin");
    v1::Command* command = request.add_commands();
    command->add_argv("touch");
    command->add_argv(dir_ + "/" + marker);
    return request;
  }

  grpc::Status Submit(v1::Distd::Stub* stub, const std::string& token,
                      const v1::SubmitRequest& request, v1::SubmitResponse* response) {
    grpc::ClientContext context;
    Authorize(&context, token);
    return stub->Submit(&context, request, response);
  }

  // The job's result over a Run call, or the call's status.
  grpc::Status Run(v1::Distd::Stub* stub, const std::string& token, const std::string& build,
                   const std::vector<std::string>& argv, std::string* out) {
    v1::RunRequest request;
    request.set_build(build);
    request.set_cwd("/");
    request.add_env("PATH=/usr/bin:/bin");
    for (const std::string& arg : argv) request.mutable_command()->add_argv(arg);
    grpc::ClientContext context;
    Authorize(&context, token);
    auto reader = stub->Run(&context, request);
    v1::RunEvent event;
    while (reader->Read(&event)) {
      if (event.has_output()) *out += event.output().data();
    }
    return reader->Finish();
  }

  // The status of a Wait on `build`, read to its end.
  grpc::Status Wait(v1::Distd::Stub* stub, const std::string& token, const std::string& build) {
    grpc::ClientContext context;
    Authorize(&context, token);
    v1::WaitRequest wait;
    wait.set_build(build);
    auto reader = stub->Wait(&context, wait);
    v1::WaitEvent event;
    while (reader->Read(&event)) {
    }
    return reader->Finish();
  }

  // Nothing of the refused calls ran: no marker, no build.
  void ExpectNothingRan() {
    EXPECT_EQ(access((dir_ + "/ran").c_str(), F_OK), -1) << "a refused command ran";
    EXPECT_TRUE(engine_->ListBuilds().empty());
  }

  std::string dir_;
  service::RemoteOptions options_;
  engine::Limits limits_;
  service::ServiceOptions service_options_;
  int max_request_bytes_ = service::kMaxRequestBytes;
  std::unique_ptr<service::Remote> remote_;
  std::unique_ptr<engine::Engine> engine_;
  std::unique_ptr<service::Peers> peers_;
  std::unique_ptr<service::Service> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<service::QueueKeeper> keeper_;
  int port_ = 0;
};

TEST_F(RemoteTest, ATokenOverTlsRunsAJobNamedAfterIt) {
  Start();
  auto stub = Stub();
  std::string out;
  grpc::Status status = Run(stub.get(), kCiToken, "ci-1", {"echo", "over tls"}, &out);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(out, "over tls\n");
  v1::SubmitResponse response;
  ASSERT_TRUE(Submit(stub.get(), kCiToken, Marking("ci-1", "ran"), &response).ok());
  ASSERT_EQ(response.job_ids_size(), 1);
  absl::StatusOr<engine::JobInfo> job = engine_->GetJob(response.job_ids(0));
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->caller.principal, "token:ci");
  EXPECT_EQ(job->caller.pid, 0);
}

TEST_F(RemoteTest, AClientCertificateTheCaSignedNamesTheCaller) {
  Start();
  auto stub = Stub("ci-agent");
  v1::SubmitResponse response;
  ASSERT_TRUE(Submit(stub.get(), "", Marking("agent-7", "ran"), &response).ok());
  ASSERT_EQ(response.job_ids_size(), 1);
  EXPECT_EQ(engine_->GetJob(response.job_ids(0))->caller.principal, "cert:ci-agent");
  // Its line in the token file limits it to agent-*.
  grpc::Status refused = Submit(stub.get(), "", Marking("ci-1", "ran-not"), &response);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(refused.error_message(),
              HasSubstr("cert:ci-agent may act only on builds named agent-"));
}

TEST_F(RemoteTest, NoTokenOrAWrongOneIsUnauthenticatedAndRunsNothing) {
  Start();
  auto stub = Stub();
  v1::SubmitResponse response;
  grpc::Status none = Submit(stub.get(), "", Marking("ci-1", "ran"), &response);
  EXPECT_EQ(none.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(none.error_message(), HasSubstr("needs a token"));
  grpc::Status wrong =
      Submit(stub.get(), "ci-token-0123456789abcdeX", Marking("ci-1", "ran"), &response);
  EXPECT_EQ(wrong.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(wrong.error_message(), HasSubstr("does not know this token"));
  grpc::Status shorter = Submit(stub.get(), "ci-token", Marking("ci-1", "ran"), &response);
  EXPECT_EQ(shorter.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  grpc::ClientContext context;
  context.AddMetadata("authorization", absl::StrCat("Basic ", kCiToken));
  grpc::Status basic = stub->Submit(&context, Marking("ci-1", "ran"), &response);
  EXPECT_EQ(basic.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  std::string out;
  grpc::Status run = Run(stub.get(), "", "ci-1", {"touch", dir_ + "/ran"}, &out);
  EXPECT_EQ(run.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  ExpectNothingRan();
}

TEST_F(RemoteTest, AnExpiredOrForeignClientCertificateFailsTheHandshake) {
  Start();
  for (const char* cert : {"old-agent", "stranger"}) {
    SCOPED_TRACE(cert);
    auto stub = Stub(cert);
    v1::SubmitResponse response;
    // Even with a good token: a certificate offered is verified, and a bad one refused.
    grpc::Status status = Submit(stub.get(), kOpenToken, Marking("ci-1", "ran"), &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
  }
  ExpectNothingRan();
}

TEST_F(RemoteTest, WithoutTokensACertificateIsRequired) {
  options_.token_file.clear();
  Start();
  v1::SubmitResponse response;
  grpc::Status status = Submit(Stub().get(), "", Marking("x", "ran"), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
  ExpectNothingRan();
  ASSERT_TRUE(Submit(Stub("ci-agent").get(), "", Marking("x", "ok"), &response).ok());
  EXPECT_EQ(engine_->GetJob(response.job_ids(0))->caller.principal, "cert:ci-agent");
}

TEST_F(RemoteTest, APlainTextClientAtTheTlsPortGetsNothingRun) {
  Start();
  auto stub = v1::Distd::NewStub(grpc::CreateChannel(Target(), grpc::InsecureChannelCredentials()));
  v1::SubmitResponse response;
  grpc::Status status = Submit(stub.get(), kOpenToken, Marking("ci-1", "ran"), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
  ExpectNothingRan();
}

TEST_F(RemoteTest, ATokenLimitedToOtherBuildsIsRefusedThemAndSeesOnlyItsOwn) {
  Start();
  auto stub = Stub();
  v1::SubmitResponse response;
  ASSERT_TRUE(Submit(stub.get(), kOpenToken, Marking("nightly", "nightly-ran"), &response).ok());
  grpc::Status refused = Submit(stub.get(), kCiToken, Marking("nightly", "ran"), &response);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(refused.error_message(),
              HasSubstr("token:ci may act only on builds named ci-..., not on build nightly"));
  std::string out;
  EXPECT_EQ(Run(stub.get(), kCiToken, "nightly", {"touch", dir_ + "/ran"}, &out).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  {
    grpc::ClientContext context;
    Authorize(&context, kCiToken);
    v1::AbortRequest abort;
    abort.set_build("nightly");
    v1::AbortResponse answer;
    EXPECT_EQ(stub->Abort(&context, abort, &answer).error_code(),
              grpc::StatusCode::PERMISSION_DENIED);
  }
  {
    grpc::ClientContext context;
    Authorize(&context, kCiToken);
    v1::CancelJobRequest cancel;
    cancel.set_job_id(response.job_ids(0));
    v1::CancelJobResponse answer;
    // As if it did not exist, and without naming its build.
    grpc::Status status = stub->CancelJob(&context, cancel, &answer);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
    EXPECT_THAT(status.error_message(), ::testing::Not(HasSubstr("nightly")));
  }
  {
    grpc::ClientContext context;
    Authorize(&context, kCiToken);
    v1::CancelJobRequest cancel;
    cancel.set_job_id(response.job_ids(0) + 1000);  // none yet
    v1::CancelJobResponse answer;
    EXPECT_EQ(stub->CancelJob(&context, cancel, &answer).error_code(), grpc::StatusCode::NOT_FOUND);
  }
  {
    grpc::ClientContext context;
    Authorize(&context, kCiToken);
    v1::LogsRequest logs;
    logs.set_job_id(response.job_ids(0));
    auto reader = stub->Logs(&context, logs);
    v1::LogsEvent event;
    EXPECT_FALSE(reader->Read(&event));
    EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::NOT_FOUND);
  }
  for (const char* build : {"nightly", "ci"}) {  // "ci" is not "ci-..."
    EXPECT_EQ(Wait(stub.get(), kCiToken, build).error_code(), grpc::StatusCode::PERMISSION_DENIED)
        << build;
  }
  // Its status lists its own builds only; the open token's lists every build.
  ASSERT_TRUE(Submit(stub.get(), kCiToken, Marking("ci-2", "ci-ran"), &response).ok());
  for (const auto& [token, want] :
       {std::pair{kCiToken, std::vector<std::string>{"ci-2"}},
        std::pair{kOpenToken, std::vector<std::string>{"ci-2", "nightly"}}}) {
    grpc::ClientContext context;
    Authorize(&context, token);
    v1::StatusRequest request;
    v1::StatusResponse status;
    ASSERT_TRUE(stub->Status(&context, request, &status).ok());
    std::vector<std::string> names;
    for (const v1::Build& build : status.builds()) names.push_back(build.name());
    std::sort(names.begin(), names.end());
    EXPECT_EQ(names, want) << token;
    grpc::ClientContext list_context;
    Authorize(&list_context, token);
    v1::ListBuildsResponse list;
    ASSERT_TRUE(stub->ListBuilds(&list_context, v1::ListBuildsRequest(), &list).ok());
    names.clear();
    for (const v1::Build& build : list.builds()) names.push_back(build.name());
    std::sort(names.begin(), names.end());
    EXPECT_EQ(names, want) << token;
  }
  EXPECT_EQ(access((dir_ + "/ran").c_str(), F_OK), -1) << "a refused command ran";
  EXPECT_EQ(engine_->TakeSnapshot("nightly")->builds.at(0).submitted, 1u);
}

TEST_F(RemoteTest, ClosingABuildNeedsAnAdminToken) {
  Start();
  auto stub = Stub();
  v1::SubmitResponse response;
  ASSERT_TRUE(Submit(stub.get(), kOpenToken, Marking("b", "ok"), &response).ok());
  for (const char* token : {kOpenToken, kCiToken}) {
    grpc::ClientContext context;
    Authorize(&context, token);
    v1::CloseBuildRequest close;
    close.set_build("b");
    v1::CloseBuildResponse answer;
    grpc::Status status = stub->CloseBuild(&context, close, &answer);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
    EXPECT_THAT(status.error_message(), HasSubstr("needs an admin token"));
  }
  EXPECT_EQ(engine_->ListBuilds().size(), 1u);
  ASSERT_TRUE(Wait(stub.get(), kAdminToken, "b").ok());
  grpc::ClientContext close_context;
  Authorize(&close_context, kAdminToken);
  v1::CloseBuildRequest close;
  close.set_build("b");
  v1::CloseBuildResponse answer;
  ASSERT_TRUE(stub->CloseBuild(&close_context, close, &answer).ok());
  EXPECT_EQ(answer.error().code(), v1::Error::OK) << answer.error().message();
  EXPECT_TRUE(engine_->ListBuilds().empty());
}

TEST_F(RemoteTest, LimitsAreHitOneByOneAndTheDaemonKeepsServing) {
  limits_.max_builds_per_caller = 2;
  limits_.max_arg_bytes = 1000;
  max_request_bytes_ = 64 << 10;
  std::unique_ptr<v1::Distd::Stub> stub;
  auto sleeper = [](const std::string& build, int n) {
    v1::SubmitRequest request;
    request.set_build(build);
    request.set_cwd("/");
    request.add_env("PATH=/usr/bin:/bin");
    for (int i = 0; i < n; ++i) {
      v1::Command* command = request.add_commands();
      command->add_argv("sleep");
      command->add_argv("977.4");
    }
    return request;
  };
  auto expect_error = [&](const std::string& token, const v1::SubmitRequest& request,
                          v1::Error::Code code, const std::string& words) {
    v1::SubmitResponse response;
    grpc::Status status = Submit(stub.get(), token, request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(response.error().code(), code) << response.error().message();
    EXPECT_THAT(response.error().message(), HasSubstr(words));
    EXPECT_EQ(response.job_ids_size(), 0);
  };
  auto expect_queued = [&](const std::string& token, const v1::SubmitRequest& request) {
    v1::SubmitResponse response;
    ASSERT_TRUE(Submit(stub.get(), token, request, &response).ok());
    ASSERT_FALSE(response.has_error()) << response.error().message();
  };
  limits_.max_queued_jobs = 5;
  limits_.max_queued_per_build = 3;
  Start();
  stub = Stub();
  // Two of three run (the pool), one stays queued.
  expect_queued(kOpenToken, sleeper("a", 3));
  for (int i = 0; i < 1000 && engine_->Pool().running < 2; ++i)
    absl::SleepFor(absl::Milliseconds(5));
  ASSERT_EQ(engine_->Pool().running, 2u);
  expect_error(kOpenToken, sleeper("a", 3), v1::Error::RESOURCE_EXHAUSTED,
               "build a has 1 jobs queued, the limit of a build is 3");
  expect_queued(kOpenToken, sleeper("a", 2));
  expect_queued(kOpenToken, sleeper("b", 2));
  // The caller's two builds are open: a third is refused.
  expect_error(kOpenToken, sleeper("c", 1), v1::Error::RESOURCE_EXHAUSTED,
               "token:open has 2 builds with jobs queued or running");
  // Another caller may open one, but the whole queue (5) is full.
  expect_error(kCiToken, sleeper("ci-1", 1), v1::Error::RESOURCE_EXHAUSTED, "the queue is full");
  // An argument too long for the engine, and a request too large for gRPC itself.
  v1::SubmitRequest long_argument = sleeper("b", 1);
  long_argument.mutable_commands(0)->add_argv(std::string(2000, 'x'));
  expect_error(kOpenToken, long_argument, v1::Error::INVALID_ARGUMENT,
               "is 2000 bytes; the limit is");
  v1::SubmitRequest huge = sleeper("b", 1);
  huge.add_env("BIG=" + std::string(100 << 10, 'y'));
  v1::SubmitResponse response;
  grpc::Status too_large = Submit(stub.get(), kOpenToken, huge, &response);
  EXPECT_EQ(too_large.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
      << too_large.error_message();
  // Nothing of the refused requests is queued, and distd still answers.
  EXPECT_EQ(engine_->Pool().queued, 5u);
  EXPECT_EQ(engine_->Pool().running, 2u);
  grpc::ClientContext context;
  Authorize(&context, kOpenToken);
  v1::StatusResponse status;
  ASSERT_TRUE(stub->Status(&context, v1::StatusRequest(), &status).ok());
  EXPECT_EQ(status.queued(), 5u);
  EXPECT_EQ(status.builds_size(), 2);
}

// A slow-loris client: connections that never finish their handshake, and streams that are
// never read, up to its limit of streams. Another client is served all the while, and the
// engine runs its jobs.
TEST_F(RemoteTest, AClientThatNeverReadsCannotHoldUpOthers) {
  service_options_.max_streams_per_client = 4;
  Start();
  // Raw connections that send nothing.
  std::vector<int> idle;
  for (int i = 0; i < 50; ++i) {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(fd, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<uint16_t>(port_));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
    idle.push_back(fd);
  }
  // Wait streams of the loris on a build whose job never ends, with progress, never read.
  auto loris = Stub();
  v1::SubmitResponse response;
  v1::SubmitRequest sleeper = Marking("loris", "unused");
  sleeper.mutable_commands(0)->clear_argv();
  sleeper.mutable_commands(0)->add_argv("sleep");
  sleeper.mutable_commands(0)->add_argv("977.5");
  ASSERT_TRUE(Submit(loris.get(), kOpenToken, sleeper, &response).ok());
  ASSERT_FALSE(response.has_error()) << response.error().message();
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  std::vector<std::unique_ptr<grpc::ClientReader<v1::WaitEvent>>> readers;
  for (int i = 0; i < 4; ++i) {
    contexts.push_back(std::make_unique<grpc::ClientContext>());
    Authorize(contexts.back().get(), kOpenToken);
    v1::WaitRequest wait;
    wait.set_build("loris");
    wait.set_progress(true);
    readers.push_back(loris->Wait(contexts.back().get(), wait));
    // Its first progress report says that distd holds the stream; nothing more is read.
    v1::WaitEvent first;
    ASSERT_TRUE(readers.back()->Read(&first));
  }
  // A wait on a build with nothing to wait for ends at once, if it is let in: the fifth
  // stream is refused.
  auto short_wait = [&]() { return Wait(loris.get(), kOpenToken, "loris-none"); };
  grpc::Status fifth;
  int attempts = 0;
  for (; attempts < 500 && fifth.ok(); ++attempts) {
    fifth = short_wait();
    if (fifth.ok()) absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_EQ(fifth.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
      << fifth.error_message() << " (after " << attempts
      << " attempts; the build: " << engine_->TakeSnapshot("loris")->builds.at(0).running
      << " running)";
  EXPECT_THAT(fifth.error_message(), HasSubstr("token:open has 4 streams open"));
  // Another client runs jobs, streams included, as if nobody else were there.
  auto other = Stub();
  for (int i = 0; i < 5; ++i) {
    std::string out;
    grpc::Status status = Run(other.get(), kCiToken, "ci-9", {"echo", absl::StrCat(i)}, &out);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(out, absl::StrCat(i, "\n"));
  }
  for (int fd : idle) close(fd);
  for (auto& context : contexts) context->TryCancel();
  for (auto& reader : readers) reader->Finish();
  // The loris's streams are given back when they end: it may open one again.
  grpc::Status again = short_wait();
  for (int attempt = 0; attempt < 500 && !again.ok(); ++attempt) {
    absl::SleepFor(absl::Milliseconds(10));
    again = short_wait();
  }
  EXPECT_TRUE(again.ok()) << again.error_message();
}

TEST(RemoteOpenTest, UnsafeOrIncompleteSetUpsAreRefused) {
  const Address tcp = *ParseAddress("tcp:127.0.0.1:7070");
  const Address wide = *ParseAddress("tcp:0.0.0.0:7070");
  auto refused = [](const service::RemoteOptions& options, const std::vector<Address>& listen) {
    absl::StatusOr<std::unique_ptr<service::Remote>> remote =
        service::Remote::Open(options, listen);
    EXPECT_FALSE(remote.ok());
    return remote.ok() ? std::string() : std::string(remote.status().message());
  };
  char pattern[] = "/tmp/distd-remote-open-XXXXXX";
  ASSERT_NE(mkdtemp(pattern), nullptr);
  const std::string dir = pattern;
  WriteFile(dir + "/tokens", absl::StrCat("ci ", kCiToken, "\n"), 0600);
  WriteFile(dir + "/open-tokens", absl::StrCat("ci ", kCiToken, "\n"), 0644);
  service::RemoteOptions options;
  EXPECT_THAT(refused(options, {tcp}), HasSubstr("TCP needs TLS"));
  options.insecure_loopback = true;
  EXPECT_THAT(refused(options, {tcp}), HasSubstr("must authenticate"));
  options.token_file = dir + "/tokens";
  EXPECT_THAT(refused(options, {tcp, wide}), HasSubstr("plain TCP is refused off loopback"));
  EXPECT_TRUE(service::Remote::Open(options, {tcp}).ok());
  EXPECT_THAT(refused(options, {}), HasSubstr("add --listen tcp:"));
  // With HTTP listeners alone a token file is enough, for them; a TCP flag is still refused.
  service::RemoteOptions tokens_only;
  tokens_only.token_file = dir + "/tokens";
  EXPECT_TRUE(service::Remote::Open(tokens_only, {}, /*http=*/true).ok());
  EXPECT_FALSE(service::Remote::Open(tokens_only, {}, /*http=*/false).ok());
  EXPECT_FALSE(service::Remote::Open(options, {}, /*http=*/true).ok());
  options.token_file = dir + "/open-tokens";
  EXPECT_THAT(refused(options, {tcp}), HasSubstr("others may read or write it (mode 0644)"));
  options.insecure_loopback = false;
  options.token_file = dir + "/tokens";
  options.tls_cert = dir + "/tokens";
  EXPECT_THAT(refused(options, {tcp}), HasSubstr("--tls-cert and --tls-key go together"));
  EXPECT_TRUE(service::Remote::Open(service::RemoteOptions(), {}).ok());
  ASSERT_EQ(system(("rm -rf " + dir).c_str()), 0);
}

TEST(TokenFileTest, LinesAreCheckedAndTokensNeverEchoed) {
  absl::StatusOr<std::vector<service::Credential>> parsed = service::ParseTokenFile(
      "# comment\n\nci 0123456789abcdef0 builds=ci-\n  boss 0123456789abcdef1 admin \n"
      "agent - builds=a/\n");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ASSERT_EQ(parsed->size(), 3u);
  EXPECT_EQ((*parsed)[0].name, "ci");
  EXPECT_EQ((*parsed)[0].access.builds, "ci-");
  EXPECT_FALSE((*parsed)[0].access.admin);
  EXPECT_TRUE((*parsed)[1].access.admin);
  EXPECT_TRUE((*parsed)[2].token.empty());
  const std::string secret = "0123456789abcdefSECRET";
  for (const std::string& text :
       {absl::StrCat("ci\n"), absl::StrCat("c!i ", secret, "\n"), absl::StrCat("ci short\n"),
        absl::StrCat("ci ", secret, " root\n"), absl::StrCat("ci ", secret, " builds=\n"),
        absl::StrCat("ci ", secret, "\nci ", secret, "x\n"),
        absl::StrCat("a ", secret, "\nb ", secret, "\n")}) {
    absl::StatusOr<std::vector<service::Credential>> bad = service::ParseTokenFile(text);
    ASSERT_FALSE(bad.ok()) << text;
    EXPECT_TRUE(absl::IsInvalidArgument(bad.status()));
    EXPECT_THAT(bad.status().message(), HasSubstr("line "));
    EXPECT_THAT(std::string(bad.status().message()), ::testing::Not(HasSubstr("SECRET")));
  }
}

}  // namespace
}  // namespace distd
