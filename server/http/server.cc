#include "server/http/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <system_error>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "server/http/peer.h"
#include "spdlog/spdlog.h"

namespace distd::http {
namespace {

constexpr size_t kMaxHead = 8192;
constexpr size_t kMaxHeaders = 64;

const char* Reason(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 421:
      return "Misdirected Request";
    case 431:
      return "Request Header Fields Too Large";
    case 503:
      return "Service Unavailable";
    default:
      return "Error";
  }
}

int64_t MillisLeft(absl::Time deadline) {
  const absl::Duration left = deadline - absl::Now();
  return left <= absl::ZeroDuration() ? 0 : absl::ToInt64Milliseconds(left) + 1;
}

// Writes all of `data` by `deadline`; false if the reader went or stalled.
bool WriteAll(int fd, absl::string_view data, absl::Time deadline) {
  while (!data.empty()) {
    const ssize_t n = send(fd, data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      data.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno != EAGAIN) return false;
    pollfd p = {fd, POLLOUT, 0};
    const int64_t left = MillisLeft(deadline);
    if (left == 0 || poll(&p, 1, static_cast<int>(left)) <= 0 || (p.revents & POLLOUT) == 0) {
      return false;
    }
  }
  return true;
}

std::string Head(int status, absl::string_view content_type, size_t length, bool stream) {
  std::string head =
      absl::StrCat("HTTP/1.1 ", status, " ", Reason(status), "\r\nContent-Type: ", content_type,
                   "\r\nCache-Control: no-store"
                   "\r\nX-Content-Type-Options: nosniff"
                   "\r\nX-Frame-Options: DENY"
                   "\r\nReferrer-Policy: no-referrer"
                   "\r\nContent-Security-Policy: default-src 'self'; "
                   "style-src 'self' 'unsafe-inline'; frame-ancestors 'none'"
                   "\r\nConnection: close\r\n");
  if (!stream) absl::StrAppend(&head, "Content-Length: ", length, "\r\n");
  if (status == 401) absl::StrAppend(&head, "WWW-Authenticate: Bearer\r\n");
  if (status == 405) absl::StrAppend(&head, "Allow: GET, HEAD\r\n");
  head.append("\r\n");
  return head;
}

Response Error(int status, absl::string_view message) {
  return Response{status, "text/plain; charset=utf-8", absl::StrCat(message, "\n")};
}

// Before close(): what the client sent and we did not read would make close() send a reset,
// and the client might then lose the answer. Waits up to `wait` for the client to finish.
void Drain(int fd, absl::Duration wait) {
  shutdown(fd, SHUT_WR);
  char buffer[1024];
  const absl::Time deadline = absl::Now() + wait;
  for (int i = 0; i < 64; ++i) {
    if (recv(fd, buffer, sizeof(buffer), MSG_DONTWAIT) > 0) continue;
    if (errno != EAGAIN) break;
    pollfd p = {fd, POLLIN, 0};
    const int64_t left = MillisLeft(deadline);
    if (left == 0 || poll(&p, 1, static_cast<int>(left)) <= 0) break;
  }
}

// A connection answered at once, without a thread: the acceptor waits for nothing.
void Refuse(int fd, const Response& response) {
  WriteAll(
      fd, Head(response.status, response.content_type, response.body.size(), false) + response.body,
      absl::Now() + absl::Milliseconds(100));
  Drain(fd, absl::ZeroDuration());
  close(fd);
}

}  // namespace

absl::StatusOr<Request> ParseRequestHead(absl::string_view head) {
  std::vector<absl::string_view> lines = absl::StrSplit(head, "\r\n");
  if (lines.empty()) return absl::InvalidArgumentError("an empty request");
  std::vector<absl::string_view> first = absl::StrSplit(lines[0], ' ');
  if (first.size() != 3 || first[0].empty() || first[1].empty()) {
    return absl::InvalidArgumentError("the request line is not METHOD TARGET VERSION");
  }
  if (first[2] != "HTTP/1.1" && first[2] != "HTTP/1.0") {
    return absl::InvalidArgumentError("not HTTP/1.0 or HTTP/1.1");
  }
  Request request;
  request.method = std::string(first[0]);
  if (first[1][0] != '/') return absl::InvalidArgumentError("the target is not a path");
  const size_t question = first[1].find('?');
  request.path = std::string(first[1].substr(0, question));
  if (question != absl::string_view::npos)
    request.query = std::string(first[1].substr(question + 1));
  for (size_t i = 1; i < lines.size(); ++i) {
    if (lines[i].empty()) continue;
    if (request.headers.size() >= kMaxHeaders)
      return absl::InvalidArgumentError("too many headers");
    const size_t colon = lines[i].find(':');
    if (colon == 0 || colon == absl::string_view::npos) {
      return absl::InvalidArgumentError("a header line without a name");
    }
    absl::string_view name = lines[i].substr(0, colon);
    if (name.find_first_of(" \t") != absl::string_view::npos) {
      return absl::InvalidArgumentError("a header name with a space in it");
    }
    std::string key = absl::AsciiStrToLower(name);
    // A repeated Host or Authorization could make two readers see two requests.
    if (request.headers.contains(key) && (key == "host" || key == "authorization")) {
      return absl::InvalidArgumentError(absl::StrCat("two ", key, " headers"));
    }
    request.headers[key] = std::string(absl::StripAsciiWhitespace(lines[i].substr(colon + 1)));
  }
  return request;
}

bool IsLoopbackHost(absl::string_view host, int port) {
  absl::string_view name = host;
  absl::string_view port_text;
  bool has_port = false;
  if (absl::StartsWith(name, "[")) {
    const size_t close = name.find(']');
    if (close == absl::string_view::npos) return false;
    absl::string_view rest = name.substr(close + 1);
    name = name.substr(1, close - 1);
    if (!rest.empty()) {
      if (!absl::ConsumePrefix(&rest, ":")) return false;
      port_text = rest;
      has_port = true;
    }
    if (name != "::1") return false;
  } else {
    const size_t colon = name.rfind(':');
    if (colon != absl::string_view::npos) {
      port_text = name.substr(colon + 1);
      has_port = true;
      name = name.substr(0, colon);
    }
    in_addr addr = {};
    if (!absl::EqualsIgnoreCase(name, "localhost") &&
        !(inet_pton(AF_INET, std::string(name).c_str(), &addr) == 1 &&
          (ntohl(addr.s_addr) >> 24) == 127)) {
      return false;
    }
  }
  if (!has_port) return true;
  int number = 0;
  return absl::SimpleAtoi(port_text, &number) && (port == 0 || number == port);
}

class Server::Connection final : public EventStream {
 public:
  Connection(int fd, int wake, absl::Duration write_timeout)
      : fd_(fd), wake_(wake), write_timeout_(write_timeout) {}

  bool Send(absl::string_view event, absl::string_view data) override {
    std::string text = absl::StrCat("event: ", event, "\n");
    for (absl::string_view line : absl::StrSplit(data, '\n')) {
      absl::StrAppend(&text, "data: ", line, "\n");
    }
    text.push_back('\n');
    return Write(text);
  }

  bool Wait(absl::Duration timeout) override {
    const absl::Time deadline = absl::Now() + timeout;
    while (true) {
      pollfd fds[2] = {{fd_, POLLIN, 0}, {wake_, POLLIN, 0}};
      const int ready = poll(fds, 2, static_cast<int>(MillisLeft(deadline)));
      if (ready < 0 && errno == EINTR) continue;
      if (ready == 0) return true;
      if (ready < 0 || fds[1].revents != 0) return false;
      char buffer[512];
      // An event stream's client sends nothing more: anything but data is its going.
      const ssize_t n = recv(fd_, buffer, sizeof(buffer), MSG_DONTWAIT);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) return false;
    }
  }

  bool Write(absl::string_view data) { return WriteAll(fd_, data, absl::Now() + write_timeout_); }

 private:
  const int fd_;
  const int wake_;
  const absl::Duration write_timeout_;
};

absl::StatusOr<std::unique_ptr<Server>> Server::Open(const std::string& name,
                                                     const Address& address,
                                                     std::map<std::string, Route> routes,
                                                     ServerOptions options) {
  if (address.kind != Address::Kind::kTcp || !IsLoopbackAddress(address.host)) {
    return absl::InvalidArgumentError(absl::StrCat(
        name, " ", address.ToString(),
        ": plain HTTP is served on a numeric loopback address only (tcp:127.0.0.1:PORT or "
        "tcp:[::1]:PORT); put a TLS proxy in front of it for other machines"));
  }
  std::unique_ptr<Server> server(new Server(name, std::move(routes), options));
  absl::string_view host = address.host;
  const bool v6 = absl::ConsumePrefix(&host, "[") && absl::ConsumeSuffix(&host, "]");
  const std::string host_text(host);
  sockaddr_storage addr = {};
  socklen_t len = 0;
  int parsed = 0;
  if (v6) {
    auto& in6 = reinterpret_cast<sockaddr_in6&>(addr);
    in6.sin6_family = AF_INET6;
    in6.sin6_port = htons(static_cast<uint16_t>(address.port));
    parsed = inet_pton(AF_INET6, host_text.c_str(), &in6.sin6_addr);
    len = sizeof(in6);
  } else {
    auto& in = reinterpret_cast<sockaddr_in&>(addr);
    in.sin_family = AF_INET;
    in.sin_port = htons(static_cast<uint16_t>(address.port));
    parsed = inet_pton(AF_INET, host_text.c_str(), &in.sin_addr);
    len = sizeof(in);
  }
  // Never the wildcard address by mistake.
  if (parsed != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, " ", address.ToString(), ": not a numeric address"));
  }
  server->listen_fd_ = socket(addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  const int one = 1;
  if (server->listen_fd_ < 0 ||
      setsockopt(server->listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
      (v6 && setsockopt(server->listen_fd_, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) != 0) ||
      bind(server->listen_fd_, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
      listen(server->listen_fd_, 64) != 0 ||
      getsockname(server->listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat(name, " ", address.ToString(), ": cannot listen: ", strerror(errno)));
  }
  server->port_ = ntohs(v6 ? reinterpret_cast<sockaddr_in6&>(addr).sin6_port
                           : reinterpret_cast<sockaddr_in&>(addr).sin_port);
  int wake[2];
  if (pipe2(wake, O_CLOEXEC | O_NONBLOCK) != 0) {
    return absl::FailedPreconditionError(absl::StrCat(name, ": pipe: ", strerror(errno)));
  }
  server->wake_read_ = wake[0];
  server->wake_write_ = wake[1];
  return server;
}

Server::Server(std::string name, std::map<std::string, Route> routes, ServerOptions options)
    : name_(std::move(name)), routes_(std::move(routes)), options_(options) {}

Server::~Server() {
  Stop();
  for (int fd : {wake_read_, wake_write_}) {
    if (fd >= 0) close(fd);
  }
}

void Server::Start() {
  acceptor_ = std::thread([this] { Accept(); });
}

void Server::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    stopping_ = true;
    // Blocked reads and writes end at once; waiting streams see the wake pipe.
    for (auto& worker : workers_) {
      if (!worker->done) shutdown(worker->fd, SHUT_RDWR);
    }
  }
  if (wake_write_ >= 0) {
    char byte = 0;
    [[maybe_unused]] ssize_t n = write(wake_write_, &byte, 1);
  }
  if (acceptor_.joinable()) acceptor_.join();
  // Nothing is accepted any more: connections are refused rather than left unanswered.
  if (listen_fd_ >= 0) {
    close(listen_fd_);
    listen_fd_ = -1;
  }
  Reap(true);
}

void Server::Reap(bool all) {
  std::vector<std::unique_ptr<Worker>> finished;
  {
    absl::MutexLock lock(&mu_);
    for (auto it = workers_.begin(); it != workers_.end();) {
      if (all || (*it)->done) {
        finished.push_back(std::move(*it));
        it = workers_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& worker : finished) worker->thread.join();
}

void Server::Accept() {
  pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_read_, POLLIN, 0}};
  while (true) {
    const int ready = poll(fds, 2, 1000);
    if (ready < 0 && errno != EINTR) {
      spdlog::error("{}: poll: {}", name_, strerror(errno));
      return;
    }
    if (fds[1].revents != 0) return;
    Reap(false);
    if (ready <= 0 || fds[0].revents == 0) continue;
    const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) {
      if (errno == EMFILE || errno == ENFILE) poll(nullptr, 0, 100);  // let fds free up
      continue;
    }
    // Who connected, asked at once, while the connection surely stands.
    std::optional<uid_t> uid;
    if (absl::StatusOr<uid_t> found = LoopbackPeerUid(fd); found.ok()) uid = *found;
    const bool own = uid.has_value() && options_.own_uid.has_value() && *uid == *options_.own_uid;
    bool refused = false;
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) {
        close(fd);
        return;
      }
      size_t busy = 0;
      size_t others = 0;
      for (const auto& worker : workers_) {
        if (worker->done) continue;
        ++busy;
        if (!worker->own) ++others;
      }
      // Others than distd's own user (who may yet have a token) get a share, so that they
      // cannot hold every place.
      refused = busy >= static_cast<size_t>(options_.max_connections) ||
                (!own && others >= static_cast<size_t>(options_.max_connections_of_others));
      if (!refused) {
        auto worker = std::make_unique<Worker>();
        worker->fd = fd;
        worker->own = own;
        Worker* w = worker.get();
        try {
          w->thread = std::thread([this, w, uid] {
            Serve(w->fd, uid);
            Drain(w->fd, absl::Milliseconds(200));
            absl::MutexLock done_lock(&mu_);
            close(w->fd);
            w->done = true;
          });
          workers_.push_back(std::move(worker));
        } catch (const std::system_error& error) {
          spdlog::warn("{}: cannot start a thread for a connection: {}", name_, error.what());
          refused = true;
        }
      }
    }
    if (refused) Refuse(fd, Error(503, "too many connections: try again later"));
  }
}

void Server::Serve(int fd, std::optional<uid_t> peer_uid) {
  Connection connection(fd, wake_read_, options_.write_timeout);
  const auto answer = [&connection](const Request* request, const Response& response) {
    const bool head_only = request != nullptr && request->method == "HEAD";
    connection.Write(Head(response.status, response.content_type, response.body.size(), false) +
                     (head_only ? "" : response.body));
  };
  // The head, within the read timeout and 8 KiB.
  std::string head;
  const absl::Time deadline = absl::Now() + options_.read_timeout;
  while (head.find("\r\n\r\n") == std::string::npos) {
    if (head.size() >= kMaxHead) return answer(nullptr, Error(431, "the request head is too long"));
    pollfd fds[2] = {{fd, POLLIN, 0}, {wake_read_, POLLIN, 0}};
    const int64_t left = MillisLeft(deadline);
    if (left == 0) return answer(nullptr, Error(408, "the request took too long"));
    const int ready = poll(fds, 2, static_cast<int>(left));
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0 || fds[1].revents != 0) return;
    if (ready == 0) continue;
    char buffer[2048];
    const ssize_t n = recv(fd, buffer, std::min(sizeof(buffer), kMaxHead - head.size()), 0);
    if (n == 0) return;
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      return;
    }
    head.append(buffer, static_cast<size_t>(n));
  }
  head.resize(head.find("\r\n\r\n"));
  absl::StatusOr<Request> request = ParseRequestHead(head);
  if (!request.ok()) return answer(nullptr, Error(400, request.status().message()));
  if (request->method != "GET" && request->method != "HEAD") {
    return answer(&*request, Error(405, "only GET and HEAD are served"));
  }
  auto host = request->headers.find("host");
  if (host == request->headers.end() || !IsLoopbackHost(host->second, port_)) {
    return answer(&*request,
                  Error(421, "the Host must be a loopback name (localhost, 127.0.0.1, [::1])"));
  }
  auto route = routes_.find(request->path);
  if (route == routes_.end()) return answer(&*request, Error(404, "no such page"));
  request->peer_uid = peer_uid;
  Response response = route->second.serve(*request);
  if (response.status != 200 || !route->second.stream || request->method == "HEAD") {
    if (route->second.stream && response.status == 200) {
      response.content_type = "text/event-stream";
    }
    return answer(&*request, response);
  }
  if (!connection.Write(Head(200, "text/event-stream", 0, true))) return;
  route->second.stream(*request, connection);
}

}  // namespace distd::http
