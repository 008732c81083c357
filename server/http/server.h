// A small HTTP/1.1 server for what distd shows to browsers and scrapers: the metrics and the
// dashboard. It is read-only (GET and HEAD), serves one request a connection, and is bounded
// everywhere: at most `max_connections` at once (more are answered 503), a request head of at
// most 8 KiB read within 5 s, and writes that give up on a reader stalled for 10 s.
//
// It listens on loopback only: what it serves is plain HTTP, and who may read it is told by
// who the peer is (peer.h, asked when the connection is accepted) or by a token, never by
// where it connects from. Peers of other uids get a share of the connections, so that they
// cannot hold them all. A request whose
// Host is not a loopback name is refused, so that a web page of another site cannot read it
// through a name that resolves to 127.0.0.1 (DNS rebinding).
#ifndef DISTD_SERVER_HTTP_SERVER_H_
#define DISTD_SERVER_HTTP_SERVER_H_

#include <sys/types.h>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/address.h"

namespace distd::http {

struct Request {
  std::string method;                                     // GET or HEAD
  std::string path;                                       // the target up to '?'
  std::string query;                                      // after '?', undecoded
  absl::flat_hash_map<std::string, std::string> headers;  // names in lower case
  std::optional<uid_t> peer_uid;  // who connected, when the kernel could tell
};

struct Response {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

// The connection of an answer made of server-sent events.
class EventStream {
 public:
  virtual ~EventStream() = default;
  // Sends one event (`data` may have several lines); false once the client went, a write
  // stalled, or the server is stopping.
  virtual bool Send(absl::string_view event, absl::string_view data) = 0;
  // Waits for up to `timeout`: false at once if the client went or the server is stopping.
  virtual bool Wait(absl::Duration timeout) = 0;
};

struct Route {
  // The answer, or for a stream, whether it may begin: any status but 200 is the answer.
  std::function<Response(const Request&)> serve;
  // Set for an answer of server-sent events, which runs until it returns.
  std::function<void(const Request&, EventStream&)> stream;
};

struct ServerOptions {
  int max_connections = 32;
  // Of those, how many may be of other uids than `own_uid` (or of peers the kernel cannot
  // name), which need a token to be served at all.
  int max_connections_of_others = 8;
  std::optional<uid_t> own_uid;
  absl::Duration read_timeout = absl::Seconds(5);
  absl::Duration write_timeout = absl::Seconds(10);
};

class Server {
 public:
  // Listens on `address`, a tcp: address whose host is a numeric loopback address (port 0
  // picks one); InvalidArgument for another, FailedPrecondition if it cannot be bound.
  // `name` is for the log ("--metrics-listen").
  static absl::StatusOr<std::unique_ptr<Server>> Open(const std::string& name,
                                                      const Address& address,
                                                      std::map<std::string, Route> routes,
                                                      ServerOptions options = {});
  ~Server();

  void Start();
  // Ends every connection (streams included) and waits for their threads.
  void Stop();

  int port() const { return port_; }

 private:
  class Connection;
  Server(std::string name, std::map<std::string, Route> routes, ServerOptions options);
  void Accept();
  void Serve(int fd, std::optional<uid_t> peer_uid);
  void Reap(bool all) ABSL_LOCKS_EXCLUDED(mu_);

  const std::string name_;
  const std::map<std::string, Route> routes_;
  const ServerOptions options_;
  int listen_fd_ = -1;
  int port_ = 0;
  int wake_read_ = -1;
  int wake_write_ = -1;
  std::thread acceptor_;
  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  struct Worker {
    std::thread thread;
    int fd = -1;
    bool own = false;  // of own_uid
    bool done = false;
  };
  std::vector<std::unique_ptr<Worker>> workers_ ABSL_GUARDED_BY(mu_);
};

// The parts of the request head `head` (up to the blank line); InvalidArgument if it is not
// HTTP/1.x, or too long in one of its parts. For tests and the fuzzer.
absl::StatusOr<Request> ParseRequestHead(absl::string_view head);

// Whether a Host header names this host by a loopback name: localhost, 127.x.y.z or [::1],
// without a port or with `port` (any, if 0).
bool IsLoopbackHost(absl::string_view host, int port = 0);

}  // namespace distd::http

#endif  // DISTD_SERVER_HTTP_SERVER_H_
