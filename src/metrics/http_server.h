// The --metrics-addr HTTP/1.1 endpoint: GET /metrics serves the latest
// exposition the trace loop published. Own code on POSIX sockets: one thread,
// one poll() loop, non-blocking sockets, bounded request size, per-connection
// deadlines, a cap on open connections. The trace loop never waits for it:
// publish() only swaps a string under a mutex and writes to an eventfd.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

namespace bdt::metrics {

// "HOST:PORT", "[V6ADDR]:PORT" or ":PORT" (all interfaces: IPv6 and IPv4 when
// the host has IPv6, else IPv4). Throws InputError with a one-line reason.
struct ListenAddress {
  std::string host;  // "" = all interfaces
  uint16_t port = 0;
};
ListenAddress parse_listen_address(std::string_view s);

// What a request asks for, parsed from the bytes received so far.
struct Request {
  enum class State { Incomplete, Ok, Bad, TooLarge } state = State::Incomplete;
  std::string method, target;  // when Ok
  std::string error;           // when Bad: why
};
// Parses an HTTP/1.x request head (request line + headers up to the empty
// line). Bytes past the head (a body) are ignored. max_head: larger heads are
// TooLarge.
Request parse_request(std::string_view data, size_t max_head);

struct Response {
  int status = 200;
  std::string content_type;
  std::string body;
  bool head_only = false;
  bool metrics = false;  // the /metrics exposition (worth waiting for a fresh one)
};
// The response to a parsed request, given the current exposition and the
// landing page served at / ("" = none: 404).
Response respond(const Request& r, const std::string& metrics_body, std::string_view landing_page = {});
std::string serialize(const Response& r);  // status line, headers, body

class Server {
 public:
  struct Options {
    size_t max_request_bytes = 8192;   // request head cap (431 beyond)
    int request_timeout_ms = 5000;     // whole request must arrive within this (else closed)
    int write_timeout_ms = 10000;      // response must be taken within this (else closed)
    size_t max_connections = 32;       // more are accepted and closed at once (503)
    int fresh_wait_ms = 300;           // a scrape waits this long for a fresh snapshot
    std::string landing_page;          // HTML served at / ("" = 404 there)
  };
  // Binds and listens (throws InputError on a bad address / port in use,
  // KernelError when not permitted) and starts the server thread.
  static std::unique_ptr<Server> start(std::string_view addr, Options o);
  static std::unique_ptr<Server> start(std::string_view addr) { return start(addr, Options{}); }
  ~Server();  // stops the thread, closes every socket
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // "127.0.0.1:9089", "[::1]:9089", "[::]:9089" (the bound port, also for port 0).
  std::string bound_address() const { return bound_; }
  uint16_t port() const { return port_; }

  // The trace loop: publish a new exposition (cheap), and ask whether a
  // scrape is waiting for one (then publish soon).
  void publish(std::string body);
  bool wants_fresh() const { return wanted_.load(std::memory_order_relaxed); }

  uint64_t requests() const { return requests_.load(); }
  uint64_t rejected() const { return rejected_.load(); }  // malformed, oversized, timed out, over cap

 private:
  Server(int fd, int wake_fd, Options o);
  void run();
  struct Conn;
  int listen_fd_ = -1, wake_fd_ = -1;
  Options opts_;
  std::string bound_;
  uint16_t port_ = 0;
  std::mutex mu_;
  std::shared_ptr<const std::string> body_;
  uint64_t generation_ = 0;
  std::atomic<bool> wanted_{false}, stop_{false};
  std::atomic<uint64_t> requests_{0}, rejected_{0};
  std::thread thread_;
};

}  // namespace bdt::metrics
