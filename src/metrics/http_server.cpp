// The --metrics-addr HTTP/1.1 endpoint (metrics/http_server.h).
#include "metrics/http_server.h"

#include <pthread.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <list>

#include "core/capabilities.h"
#include "bdt/errors.h"
#include "metrics/exposition.h"

namespace bdt::metrics {

// ---- address --------------------------------------------------------------------

ListenAddress parse_listen_address(std::string_view s) {
  auto bad = [&](std::string_view why) {
    return InputError(fmt::format("--metrics-addr '{}': {} (expected HOST:PORT, [IPV6]:PORT or :PORT)", s, why));
  };
  if (s.empty()) throw bad("empty");
  ListenAddress a;
  std::string_view port;
  if (s.front() == '[') {
    auto close = s.find(']');
    if (close == std::string_view::npos) throw bad("no closing ']'");
    a.host = std::string(s.substr(1, close - 1));
    if (a.host.empty()) throw bad("empty IPv6 address");
    if (close + 1 >= s.size() || s[close + 1] != ':') throw bad("no port after ']'");
    port = s.substr(close + 2);
  } else {
    auto colon = s.rfind(':');
    if (colon == std::string_view::npos) throw bad("no port");
    a.host = std::string(s.substr(0, colon));
    if (a.host.find(':') != std::string::npos) throw bad("an IPv6 address needs brackets, e.g. [::1]:9089");
    port = s.substr(colon + 1);
  }
  if (port.empty() || port.size() > 5) throw bad("bad port");
  unsigned v = 0;
  for (char c : port) {
    if (c < '0' || c > '9') throw bad("bad port");
    v = v * 10 + static_cast<unsigned>(c - '0');
  }
  if (v > 65535) throw bad("port out of range (0-65535)");
  a.port = static_cast<uint16_t>(v);
  return a;
}

namespace {

std::string sockaddr_string(const sockaddr_storage& ss) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET6) {
    const auto* s6 = reinterpret_cast<const sockaddr_in6*>(&ss);
    inet_ntop(AF_INET6, &s6->sin6_addr, buf, sizeof buf);
    return fmt::format("[{}]:{}", buf, ntohs(s6->sin6_port));
  }
  const auto* s4 = reinterpret_cast<const sockaddr_in*>(&ss);
  inet_ntop(AF_INET, &s4->sin_addr, buf, sizeof buf);
  return fmt::format("{}:{}", buf, ntohs(s4->sin_port));
}

// Binds and listens on one address; returns the fd or -errno.
int bind_listen(int family, const sockaddr* sa, socklen_t len) {
  int fd = ::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  int one = 1, zero = 0;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (family == AF_INET6) {
    // The wildcard "::" also takes IPv4 (":PORT"); a specific v6 address is v6 only.
    const auto* s6 = reinterpret_cast<const sockaddr_in6*>(sa);
    bool any = IN6_IS_ADDR_UNSPECIFIED(&s6->sin6_addr);
    ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, any ? &zero : &one, sizeof one);
  }
  if (::bind(fd, sa, len) != 0 || ::listen(fd, 64) != 0) {
    int e = errno;
    ::close(fd);
    return -e;
  }
  return fd;
}

[[noreturn]] void bind_failed(std::string_view addr, int err) {
  if (err == EADDRINUSE) throw InputError(fmt::format("--metrics-addr {}: address already in use (another exporter on this port?)", addr));
  if (err == EADDRNOTAVAIL) throw InputError(fmt::format("--metrics-addr {}: no such local address on this host", addr));
  if (err == EACCES || err == EPERM)
    throw KernelError(fmt::format("--metrics-addr {}: not permitted to bind ({}); ports below 1024 need root or CAP_NET_BIND_SERVICE", addr, strerror(err)));
  throw InputError(fmt::format("--metrics-addr {}: cannot listen: {}", addr, strerror(err)));
}

std::string_view reason_phrase(int status) {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 431: return "Request Header Fields Too Large";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
  }
  return "Error";
}

bool is_token_char(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '-' || c == '_'; }

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

// ---- request / response -------------------------------------------------------------

Request parse_request(std::string_view data, size_t max_head) {
  Request r;
  // Not even the start of a method (a TLS handshake, binary junk): say so at
  // once instead of waiting for a head that will never come.
  if (!data.empty() && !is_token_char(data.front())) {
    r.state = Request::State::Bad;
    r.error = "not an HTTP request";
    return r;
  }
  size_t end = data.find("\r\n\r\n");
  size_t end_len = 4;
  size_t lf = data.find("\n\n");  // bare-LF clients
  if (lf != std::string_view::npos && (end == std::string_view::npos || lf < end)) {
    end = lf;
    end_len = 2;
  }
  if (end == std::string_view::npos) {
    if (data.size() > max_head) r.state = Request::State::TooLarge;
    return r;
  }
  if (end + end_len > max_head) {
    r.state = Request::State::TooLarge;
    return r;
  }
  auto bad = [&](std::string why) {
    r.state = Request::State::Bad;
    r.error = std::move(why);
    return r;
  };
  std::string_view head = data.substr(0, end);
  size_t eol = head.find('\n');
  std::string_view line = head.substr(0, eol);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  for (char c : line)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return bad("control character in the request line");
  size_t sp1 = line.find(' ');
  if (sp1 == std::string_view::npos || sp1 == 0) return bad("no method");
  size_t sp2 = line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || sp2 == sp1 + 1) return bad("no request target");
  std::string_view method = line.substr(0, sp1), target = line.substr(sp1 + 1, sp2 - sp1 - 1),
                   version = line.substr(sp2 + 1);
  for (char c : method)
    if (!is_token_char(c)) return bad("bad method");
  if (target.front() != '/' || target.find(' ') != std::string_view::npos) return bad("request target is not a path");
  if (version != "HTTP/1.1" && version != "HTTP/1.0") return bad("not HTTP/1.0 or HTTP/1.1");
  // Header lines: "name: value"; folded or nameless lines are malformed.
  std::string_view rest = eol == std::string_view::npos ? std::string_view{} : head.substr(eol + 1);
  while (!rest.empty()) {
    size_t n = rest.find('\n');
    std::string_view h = rest.substr(0, n);
    rest = n == std::string_view::npos ? std::string_view{} : rest.substr(n + 1);
    if (!h.empty() && h.back() == '\r') h.remove_suffix(1);
    if (h.empty()) continue;
    size_t colon = h.find(':');
    if (colon == std::string_view::npos || colon == 0 || h.front() == ' ' || h.front() == '\t')
      return bad("malformed header line");
    for (char c : h.substr(0, colon))
      if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) return bad("malformed header name");
  }
  r.state = Request::State::Ok;
  r.method = std::string(method);
  r.target = std::string(target);
  return r;
}

Response respond(const Request& r, const std::string& metrics_body, std::string_view landing_page) {
  Response out;
  out.content_type = "text/plain; charset=utf-8";
  switch (r.state) {
    case Request::State::Incomplete:
    case Request::State::Bad:
      out.status = 400;
      out.body = fmt::format("bad request: {}\n", r.error.empty() ? "incomplete" : r.error);
      return out;
    case Request::State::TooLarge:
      out.status = 431;
      out.body = "request head too large\n";
      return out;
    case Request::State::Ok: break;
  }
  std::string_view path = r.target;
  if (auto q = path.find('?'); q != std::string_view::npos) path = path.substr(0, q);
  const bool landing = path == "/" && !landing_page.empty();
  if (path != "/metrics" && !landing) {
    out.status = 404;
    out.body = "not found: this exporter serves /metrics\n";
    return out;
  }
  if (r.method != "GET" && r.method != "HEAD") {
    out.status = 405;
    out.body = "only GET and HEAD\n";
    return out;
  }
  out.head_only = r.method == "HEAD";
  if (landing) {
    out.content_type = "text/html; charset=utf-8";
    out.body = std::string(landing_page);
    return out;
  }
  out.content_type = std::string(kContentType);
  out.body = metrics_body;
  out.metrics = true;
  return out;
}

std::string serialize(const Response& r) {
  std::string s = fmt::format("HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{}Connection: close\r\n\r\n",
                              r.status, reason_phrase(r.status), r.content_type, r.body.size(),
                              r.status == 405 ? "Allow: GET, HEAD\r\n" : "");
  if (!r.head_only) s += r.body;
  return s;
}

// ---- server -------------------------------------------------------------------------

struct Server::Conn {
  enum class St { Reading, Waiting, Writing, Draining } st = St::Reading;
  int fd = -1;
  std::string in, out;
  size_t out_off = 0;
  int64_t deadline = 0;     // ms (steady clock): close when passed
  int64_t wait_until = 0;   // Waiting: serve whatever is there at this time
  uint64_t wait_gen = 0;    // Waiting: a snapshot newer than this is fresh
  Request req;
};

std::unique_ptr<Server> Server::start(std::string_view addr, Options o) {
  ListenAddress la = parse_listen_address(addr);
  int fd = -1;
  if (la.host.empty()) {
    sockaddr_in6 s6{};
    s6.sin6_family = AF_INET6;
    s6.sin6_addr = in6addr_any;
    s6.sin6_port = htons(la.port);
    fd = bind_listen(AF_INET6, reinterpret_cast<sockaddr*>(&s6), sizeof s6);
    if (fd == -EAFNOSUPPORT) {  // no IPv6 on this host: IPv4 only
      sockaddr_in s4{};
      s4.sin_family = AF_INET;
      s4.sin_addr.s_addr = htonl(INADDR_ANY);
      s4.sin_port = htons(la.port);
      fd = bind_listen(AF_INET, reinterpret_cast<sockaddr*>(&s4), sizeof s4);
    }
  } else {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    addrinfo* res = nullptr;
    std::string port = std::to_string(la.port);
    int rc = ::getaddrinfo(la.host.c_str(), port.c_str(), &hints, &res);
    if (rc != 0)
      throw InputError(fmt::format("--metrics-addr {}: cannot resolve '{}': {}", addr, la.host, gai_strerror(rc)));
    fd = -EADDRNOTAVAIL;
    for (addrinfo* ai = res; ai; ai = ai->ai_next) {
      fd = bind_listen(ai->ai_family, ai->ai_addr, ai->ai_addrlen);
      if (fd >= 0) break;
    }
    ::freeaddrinfo(res);
  }
  if (fd < 0) bind_failed(addr, -fd);
  int wake = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake < 0) {
    int e = errno;
    ::close(fd);
    throw KernelError(fmt::format("--metrics-addr: eventfd: {}", strerror(e)));
  }
  std::unique_ptr<Server> s(new Server(fd, wake, o));
  s->thread_ = std::thread([p = s.get()] { p->run(); });
  return s;
}

Server::Server(int fd, int wake_fd, Options o)
    : listen_fd_(fd), wake_fd_(wake_fd), opts_(o), body_(std::make_shared<const std::string>()) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  bound_ = sockaddr_string(ss);
  port_ = ntohs(ss.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port
                                         : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
}

Server::~Server() {
  stop_ = true;
  uint64_t one = 1;
  if (::write(wake_fd_, &one, sizeof one) < 0) { /* the thread also polls with a timeout */ }
  if (thread_.joinable()) thread_.join();
  ::close(listen_fd_);
  ::close(wake_fd_);
}

void Server::publish(std::string body) {
  auto p = std::make_shared<const std::string>(std::move(body));
  {
    std::lock_guard<std::mutex> g(mu_);
    body_ = std::move(p);
    ++generation_;
  }
  wanted_.store(false, std::memory_order_relaxed);
  uint64_t one = 1;
  if (::write(wake_fd_, &one, sizeof one) < 0) { /* counter saturated: the thread is awake anyway */ }
}

void Server::run() {
  // This thread serves the network: it runs with no capability at all, whatever
  // the tracer's other threads keep (docs/deployment.md, "Capabilities"). It is
  // named, so tests (and ps -L) find it.
  pthread_setname_np(pthread_self(), "bdt-metrics");
  if (auto err = caps::keep_only(0); !err.empty())
    fmt::print(stderr, "btrfs-dio-trace: warning: metrics server thread keeps its capabilities: {}\n", err);
  std::list<Conn> conns;
  std::vector<pollfd> pfds;
  std::vector<Conn*> order;
  auto close_conn = [&](std::list<Conn>::iterator it) {
    ::close(it->fd);
    return conns.erase(it);
  };
  auto start_write = [&](Conn& c, const Response& r, int64_t now) {
    c.out = serialize(r);
    c.out_off = 0;
    c.st = Conn::St::Writing;
    c.deadline = now + opts_.write_timeout_ms;
  };
  while (!stop_) {
    int64_t now = now_ms();
    pfds.clear();
    order.clear();
    pfds.push_back({wake_fd_, POLLIN, 0});
    pfds.push_back({listen_fd_, POLLIN, 0});
    int64_t next = now + 1000;
    for (auto& c : conns) {
      short ev = 0;
      if (c.st == Conn::St::Reading || c.st == Conn::St::Draining) ev = POLLIN;
      if (c.st == Conn::St::Writing) ev = POLLOUT;
      next = std::min(next, c.st == Conn::St::Waiting ? c.wait_until : c.deadline);
      if (ev) {
        pfds.push_back({c.fd, ev, 0});
        order.push_back(&c);
      }
    }
    int timeout = static_cast<int>(std::max<int64_t>(0, next - now));
    int n = ::poll(pfds.data(), pfds.size(), timeout);
    if (n < 0 && errno != EINTR) break;
    if (stop_) break;
    now = now_ms();
    if (n > 0 && (pfds[0].revents & POLLIN)) {
      uint64_t v;
      while (::read(wake_fd_, &v, sizeof v) > 0) {
      }
    }
    if (n > 0 && (pfds[1].revents & POLLIN)) {
      for (int i = 0; i < 16; ++i) {
        int cfd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) break;
        if (conns.size() >= opts_.max_connections) {
          ++rejected_;
          Response r{503, "text/plain; charset=utf-8", "too many connections\n", false};
          std::string s = serialize(r);
          if (::send(cfd, s.data(), s.size(), MSG_NOSIGNAL | MSG_DONTWAIT) < 0) { /* best effort */ }
          ::close(cfd);
          continue;
        }
        Conn c;
        c.fd = cfd;
        c.deadline = now + opts_.request_timeout_ms;
        conns.push_back(std::move(c));
      }
    }
    // I/O on the connections that poll() reported.
    for (size_t i = 2; i < pfds.size(); ++i) {
      Conn& c = *order[i - 2];
      short re = pfds[i].revents;
      if (!re) continue;
      if (c.st == Conn::St::Reading || c.st == Conn::St::Draining) {
        char buf[4096];
        bool eof = false;
        for (;;) {
          ssize_t got = ::recv(c.fd, buf, sizeof buf, 0);
          if (got > 0) {
            if (c.st == Conn::St::Reading) c.in.append(buf, static_cast<size_t>(got));
            if (c.in.size() > opts_.max_request_bytes) break;
            continue;
          }
          if (got == 0 || (errno != EAGAIN && errno != EINTR)) eof = true;  // peer closed / error
          break;
        }
        if (c.st == Conn::St::Draining) {
          if (eof) c.deadline = 0;  // done: close below
          continue;
        }
        c.req = parse_request(c.in, opts_.max_request_bytes);
        if (c.req.state == Request::State::Incomplete) {
          if (eof) c.deadline = 0;  // went away mid-request
          continue;
        }
        ++requests_;
        if (c.req.state != Request::State::Ok) ++rejected_;
        Response probe = respond(c.req, std::string(), opts_.landing_page);
        if (probe.metrics) {
          std::lock_guard<std::mutex> g(mu_);
          c.st = Conn::St::Waiting;
          c.wait_gen = generation_;
          c.wait_until = now + opts_.fresh_wait_ms;
          wanted_.store(true, std::memory_order_relaxed);
        } else {
          start_write(c, probe, now);
        }
      } else if (c.st == Conn::St::Writing) {
        if (re & (POLLERR | POLLHUP)) {
          c.deadline = 0;
          continue;
        }
        while (c.out_off < c.out.size()) {
          ssize_t w = ::send(c.fd, c.out.data() + c.out_off, c.out.size() - c.out_off, MSG_NOSIGNAL);
          if (w > 0) {
            c.out_off += static_cast<size_t>(w);
            continue;
          }
          if (errno != EAGAIN && errno != EINTR) c.deadline = 0;
          break;
        }
        if (c.out_off == c.out.size()) {
          // Half-close and read until the client closes, so unread request
          // bytes cannot turn our close into a reset that cuts the response.
          ::shutdown(c.fd, SHUT_WR);
          c.st = Conn::St::Draining;
          c.deadline = now + 1000;
        }
      }
    }
    // Waiting scrapes whose fresh snapshot came (or whose wait is over), deadlines.
    std::shared_ptr<const std::string> body;
    uint64_t gen = 0;
    {
      std::lock_guard<std::mutex> g(mu_);
      body = body_;
      gen = generation_;
    }
    bool still_waiting = false;
    for (auto it = conns.begin(); it != conns.end();) {
      Conn& c = *it;
      if (c.st == Conn::St::Waiting) {
        if (gen > c.wait_gen || now >= c.wait_until) {
          start_write(c, respond(c.req, *body, opts_.landing_page), now);
        } else {
          still_waiting = true;
        }
        ++it;
        continue;
      }
      if (now >= c.deadline) {
        if (c.st == Conn::St::Reading || c.st == Conn::St::Writing) ++rejected_;  // slow, or went away
        it = close_conn(it);
        continue;
      }
      ++it;
    }
    if (still_waiting) wanted_.store(true, std::memory_order_relaxed);
  }
  for (auto it = conns.begin(); it != conns.end();) it = close_conn(it);
}

}  // namespace bdt::metrics
