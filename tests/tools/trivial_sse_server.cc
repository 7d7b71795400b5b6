// A trivial OpenAI-style streaming server for measuring the endpoint client's overhead
// (docs/endpoint.md, "Client overhead"): one thread, epoll, no model. Every request gets a
// streamed completion of --tokens chunks, the first --ttft-ms after the request arrived and
// then one every --itl-ms; each chunk's text is " t<N>" with N the CLOCK_MONOTONIC time in
// nanoseconds read just before the chunk was written, so a client on the same host can tell
// how late it saw each chunk. Prints "listening on PORT" when ready.
//
// usage: trivial_sse_server [--port P] [--tokens N] [--ttft-ms T] [--itl-ms I]
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <queue>
#include <string>
#include <unordered_map>
#include <vector>

namespace {

int64_t NowNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

struct Conn {
  std::string in;
  int sent = 0, tokens = 0;
  bool streaming = false;
  uint64_t generation = 0;
};

struct Due {
  int64_t at_ns;
  int fd;
  uint64_t generation;
  bool operator>(const Due& o) const { return at_ns > o.at_ns; }
};

struct Options {
  int port = 0, tokens = 64;
  double ttft_ms = 20, itl_ms = 20;
};

bool WriteAll(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    const ssize_t n = write(fd, s.data() + off, s.size() - off);
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

std::string Frame(const std::string& data) {
  char head[24];
  std::snprintf(head, sizeof head, "%zx\r\n", data.size());
  return head + data + "\r\n";
}

class Server {
 public:
  explicit Server(Options o) : o_(o) {}
  int Run();

 private:
  void Accept();
  void Read(int fd);
  void Fire(const Due& d);
  void Close(int fd) {
    epoll_ctl(ep_, EPOLL_CTL_DEL, fd, nullptr);
    close(fd);
    conns_.erase(fd);
  }
  void Arm() {
    itimerspec its{};
    if (!due_.empty()) {
      const int64_t wait = std::max<int64_t>(1, due_.top().at_ns - NowNs());
      its.it_value.tv_sec = wait / 1000000000;
      its.it_value.tv_nsec = wait % 1000000000;
    }
    timerfd_settime(tfd_, 0, &its, nullptr);
  }

  Options o_;
  int ep_ = -1, lfd_ = -1, tfd_ = -1;
  std::unordered_map<int, Conn> conns_;
  std::priority_queue<Due, std::vector<Due>, std::greater<Due>> due_;
};

void Server::Accept() {
  while (true) {
    const int fd = accept4(lfd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    epoll_ctl(ep_, EPOLL_CTL_ADD, fd, &ev);
    conns_[fd] = Conn{};
  }
}

void Server::Read(int fd) {
  Conn& c = conns_[fd];
  char buf[65536];
  while (true) {
    const ssize_t n = read(fd, buf, sizeof buf);
    if (n == 0) return Close(fd);
    if (n < 0) break;
    c.in.append(buf, static_cast<size_t>(n));
  }
  const size_t end = c.in.find("\r\n\r\n");
  if (end == std::string::npos || c.streaming) return;
  size_t length = 0;
  if (const char* cl = strcasestr(c.in.c_str(), "content-length:")) length = std::atoll(cl + 15);
  if (c.in.size() < end + 4 + length) return;
  const bool get = c.in.compare(0, 4, "GET ") == 0;
  const std::string body = c.in.substr(end + 4, length);
  c.in.erase(0, end + 4 + length);
  if (get) {
    const std::string models = "{\"object\":\"list\",\"data\":[{\"id\":\"trivial\"}]}";
    WriteAll(fd, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
                     std::to_string(models.size()) + "\r\n\r\n" + models);
    return;
  }
  c.tokens = o_.tokens;
  if (const size_t m = body.find("\"max_tokens\":"); m != std::string::npos) {
    c.tokens = std::max(1, std::atoi(body.c_str() + m + 13));
  }
  c.sent = 0;
  c.streaming = true;
  ++c.generation;
  WriteAll(fd,
           "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
           "Transfer-Encoding: chunked\r\n\r\n");
  due_.push({NowNs() + static_cast<int64_t>(o_.ttft_ms * 1e6), fd, c.generation});
}

void Server::Fire(const Due& d) {
  auto it = conns_.find(d.fd);
  if (it == conns_.end() || it->second.generation != d.generation) return;
  Conn& c = it->second;
  char data[256];
  const bool last = c.sent + 1 == c.tokens;
  const int64_t t = NowNs();
  std::snprintf(data, sizeof data,
                "data: {\"model\":\"trivial\",\"choices\":[{\"index\":0,\"text\":\" t%lld\","
                "\"finish_reason\":%s}]}\n\n",
                static_cast<long long>(t), last ? "\"length\"" : "null");
  std::string out = Frame(data);
  if (last) {
    char usage[160];
    std::snprintf(usage, sizeof usage,
                  "data: {\"model\":\"trivial\",\"choices\":[],\"usage\":{\"prompt_tokens\":1,"
                  "\"completion_tokens\":%d}}\n\n",
                  c.tokens);
    out += Frame(usage) + Frame("data: [DONE]\n\n") + "0\r\n\r\n";
  }
  if (!WriteAll(d.fd, out)) return Close(d.fd);
  if (++c.sent < c.tokens) {
    due_.push({d.at_ns + static_cast<int64_t>(o_.itl_ms * 1e6), d.fd, d.generation});
  } else {
    c.streaming = false;
  }
}

int Server::Run() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  lfd_ = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(lfd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(o_.port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(lfd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(lfd_, 4096) != 0) {
    std::perror("trivial_sse_server: bind/listen");
    return 1;
  }
  socklen_t len = sizeof a;
  getsockname(lfd_, reinterpret_cast<sockaddr*>(&a), &len);
  ep_ = epoll_create1(EPOLL_CLOEXEC);
  tfd_ = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  for (int fd : {lfd_, tfd_}) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    epoll_ctl(ep_, EPOLL_CTL_ADD, fd, &ev);
  }
  std::printf("listening on %d\n", ntohs(a.sin_port));
  std::fflush(stdout);
  epoll_event events[1024];
  while (true) {
    const int n = epoll_wait(ep_, events, 1024, -1);
    for (int i = 0; i < n; ++i) {
      const int fd = events[i].data.fd;
      if (fd == lfd_) {
        Accept();
      } else if (fd == tfd_) {
        uint64_t x;
        [[maybe_unused]] ssize_t r = read(tfd_, &x, sizeof x);
      } else {
        Read(fd);
      }
    }
    const int64_t now = NowNs();
    while (!due_.empty() && due_.top().at_ns <= now) {
      const Due d = due_.top();
      due_.pop();
      Fire(d);
    }
    Arm();
  }
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string f = argv[i];
    if (f == "--port") {
      o.port = std::atoi(argv[i + 1]);
    } else if (f == "--tokens") {
      o.tokens = std::atoi(argv[i + 1]);
    } else if (f == "--ttft-ms") {
      o.ttft_ms = std::atof(argv[i + 1]);
    } else if (f == "--itl-ms") {
      o.itl_ms = std::atof(argv[i + 1]);
    } else {
      std::fprintf(stderr,
                   "usage: trivial_sse_server [--port P] [--tokens N] [--ttft-ms T] "
                   "[--itl-ms I]\n");
      return 2;
    }
  }
  return Server(o).Run();
}
