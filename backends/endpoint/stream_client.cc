#include "backends/endpoint/stream_client.h"

#include <curl/curl.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <mutex>
#include <vector>

#include "harness/core/fmt.h"

namespace cb {

struct StreamClient::Transfer {
  uint64_t id = 0;
  CURL* easy = nullptr;
  curl_slist* headers = nullptr;
  StreamHandler* handler = nullptr;
  std::string body;
  SseParser parser;
  std::vector<SseEvent> events;
  bool checked = false;
  bool stopped = false;
  double last_byte_s = 0;  ///< when the transfer started or its last byte arrived
  TransferResult result;
  char error_buf[CURL_ERROR_SIZE] = {0};
};

namespace {

constexpr size_t kMaxBody = 64 * 1024;

void GlobalInit() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

/// One connection per stream in flight: thousands of streams need thousands of descriptors.
void RaiseDescriptorLimit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

long Millis(double s) { return static_cast<long>(std::ceil(std::max(0.0, s) * 1000.0)); }

TransferError Classify(CURLcode code, CURL* easy, const char* message) {
  switch (code) {
    case CURLE_OK:
      return TransferError::kNone;
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
      return TransferError::kConnect;
    case CURLE_OPERATION_TIMEDOUT: {
      // Nothing sent: the connection never came up (a reused one reports no connect time).
      long sent = 0;
      curl_easy_getinfo(easy, CURLINFO_REQUEST_SIZE, &sent);
      if (sent == 0) return TransferError::kConnect;
      return std::string(message).find("too slow") != std::string::npos ? TransferError::kStall
                                                                        : TransferError::kTimeout;
    }
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
      return TransferError::kTls;
    default:
      return TransferError::kTransport;
  }
}

}  // namespace

const char* TransferErrorName(TransferError e) {
  switch (e) {
    case TransferError::kNone:
      return "none";
    case TransferError::kConnect:
      return "connect";
    case TransferError::kTimeout:
      return "timeout";
    case TransferError::kStall:
      return "stall";
    case TransferError::kTls:
      return "tls";
    case TransferError::kTransport:
      return "transport";
    case TransferError::kStopped:
      return "stopped";
    case TransferError::kCancelled:
      return "cancelled";
  }
  return "?";
}

double ClientNow() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

StreamClient::StreamClient(const ClientOptions& options) : opt_(options) {}

Status StreamClient::Create(const ClientOptions& options, std::unique_ptr<StreamClient>* out) {
  GlobalInit();
  RaiseDescriptorLimit();
  std::unique_ptr<StreamClient> c(new StreamClient(options));
  c->epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  if (c->epoll_fd_ < 0) return Status::Internal("epoll_create1 failed");
  // Waits end on a timerfd, to the microsecond (epoll_wait's own timeout counts milliseconds,
  // which would issue open-loop requests up to 1 ms late).
  c->timer_fd_ = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  if (c->timer_fd_ < 0) return Status::Internal("timerfd_create failed");
  epoll_event tev{};
  tev.events = EPOLLIN;
  tev.data.fd = c->timer_fd_;
  epoll_ctl(c->epoll_fd_, EPOLL_CTL_ADD, c->timer_fd_, &tev);
  c->multi_ = curl_multi_init();
  if (c->multi_ == nullptr) return Status::Internal("curl_multi_init failed");
  CURLM* m = c->multi_;
  curl_multi_setopt(m, CURLMOPT_SOCKETFUNCTION, &StreamClient::OnSocket);
  curl_multi_setopt(m, CURLMOPT_SOCKETDATA, c.get());
  curl_multi_setopt(m, CURLMOPT_TIMERFUNCTION, &StreamClient::OnTimer);
  curl_multi_setopt(m, CURLMOPT_TIMERDATA, c.get());
  curl_multi_setopt(m, CURLMOPT_PIPELINING, CURLPIPE_NOTHING);
  curl_multi_setopt(m, CURLMOPT_MAX_TOTAL_CONNECTIONS, 0L);
  curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, 100000L);
  *out = std::move(c);
  return Status::Ok();
}

StreamClient::~StreamClient() {
  CancelAll();
  if (multi_ != nullptr) curl_multi_cleanup(multi_);
  if (epoll_fd_ >= 0) close(epoll_fd_);
  if (timer_fd_ >= 0) close(timer_fd_);
}

int StreamClient::OnSocket(void* /*easy*/, int fd, int what, void* user, void* socket_user) {
  auto* c = static_cast<StreamClient*>(user);
  if (what == CURL_POLL_REMOVE) {
    epoll_ctl(c->epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
    return 0;
  }
  epoll_event ev{};
  ev.events = ((what & CURL_POLL_IN) ? EPOLLIN : 0u) | ((what & CURL_POLL_OUT) ? EPOLLOUT : 0u);
  ev.data.fd = fd;
  if (epoll_ctl(c->epoll_fd_, EPOLL_CTL_MOD, fd, &ev) != 0) {
    epoll_ctl(c->epoll_fd_, EPOLL_CTL_ADD, fd, &ev);
  }
  (void)socket_user;
  return 0;
}

int StreamClient::OnTimer(void* /*multi*/, long timeout_ms, void* user) {
  auto* c = static_cast<StreamClient*>(user);
  c->timer_due_s_ = timeout_ms < 0 ? -1 : ClientNow() + static_cast<double>(timeout_ms) / 1000.0;
  return 0;
}

size_t StreamClient::OnWrite(char* data, size_t size, size_t n, void* user) {
  const double t = ClientNow();  // the bytes' arrival, before any parsing
  auto* x = static_cast<Transfer*>(user);
  const size_t len = size * n;
  x->last_byte_s = t;
  if (!x->checked) {
    x->checked = true;
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &x->result.http_status);
    const char* ct = nullptr;
    curl_easy_getinfo(x->easy, CURLINFO_CONTENT_TYPE, &ct);
    x->result.content_type = ct ? ct : "";
    x->result.event_stream =
        x->result.http_status == 200 && x->result.content_type.starts_with("text/event-stream");
  }
  if (!x->result.event_stream) {
    x->result.body.append(data,
                          std::min(len, kMaxBody - std::min(kMaxBody, x->result.body.size())));
    return len;
  }
  x->events.clear();
  const bool parsed = x->parser.Feed(std::string_view(data, len), &x->events);
  for (const SseEvent& e : x->events) {
    if (!x->handler->OnEvent(e, t)) {
      x->stopped = true;
      return 0;
    }
  }
  if (!parsed) {
    x->result.sse_error = x->parser.error();
    x->stopped = true;
    return 0;
  }
  return len;
}

Status StreamClient::Start(const HttpRequest& request, StreamHandler* handler, uint64_t* id) {
  auto t = std::make_unique<Transfer>();
  t->id = next_id_++;
  t->handler = handler;
  t->body = request.body;
  CURL* e = curl_easy_init();
  if (e == nullptr) return Status::Internal("curl_easy_init failed");
  t->easy = e;
  curl_easy_setopt(e, CURLOPT_URL, request.url.c_str());
  curl_easy_setopt(e, CURLOPT_PRIVATE, t.get());
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &StreamClient::OnWrite);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, t.get());
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->error_buf);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
  curl_easy_setopt(e, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_1_1);
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, Millis(opt_.connect_timeout_s));
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, Millis(opt_.request_timeout_s));
  curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "identity");
  if (!opt_.ca_file.empty()) curl_easy_setopt(e, CURLOPT_CAINFO, opt_.ca_file.c_str());
  if (opt_.insecure_tls) {
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
  }
  curl_slist* h = nullptr;
  h = curl_slist_append(h, "Expect:");  // no 100-continue round trip for long prompts
  if (!t->body.empty()) {
    h = curl_slist_append(h, "Content-Type: application/json");
    h = curl_slist_append(h, "Accept: text/event-stream, application/json");
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, t->body.data());
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(t->body.size()));
  }
  if (!opt_.api_key.empty()) {
    h = curl_slist_append(h, ("Authorization: Bearer " + opt_.api_key).c_str());
  }
  t->headers = h;
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
  if (curl_multi_add_handle(multi_, e) != CURLM_OK) {
    curl_slist_free_all(h);
    curl_easy_cleanup(e);
    return Status::Internal("curl_multi_add_handle failed");
  }
  *id = t->id;
  t->last_byte_s = ClientNow();
  transfers_.emplace(t->id, std::move(t));
  return Status::Ok();
}

void StreamClient::Finish(Transfer* t, int curl_code) {
  TransferResult& r = t->result;
  r.end_s = ClientNow();
  const CURLcode code = static_cast<CURLcode>(curl_code);
  if (r.http_status == 0) curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &r.http_status);
  if (t->stopped) {
    r.error = TransferError::kStopped;
    r.error_message = r.sse_error.empty() ? "stopped by the client" : r.sse_error;
  } else if (curl_code != -1) {
    r.error = Classify(code, t->easy, t->error_buf);
    if (r.error != TransferError::kNone) {
      r.error_message = t->error_buf[0] ? t->error_buf : curl_easy_strerror(code);
    }
  }
  if (r.event_stream && t->parser.Pending()) r.stream_cut = true;
  curl_multi_remove_handle(multi_, t->easy);
  curl_slist_free_all(t->headers);
  curl_easy_cleanup(t->easy);
  StreamHandler* handler = t->handler;
  const TransferResult result = std::move(r);
  transfers_.erase(t->id);  // destroys t
  handler->OnDone(result);
}

Status StreamClient::Poll(double max_wait_s) {
  double wait = std::max(0.0, max_wait_s);
  if (!transfers_.empty()) wait = std::min(wait, 0.1);  // the stall scan's period
  if (timer_due_s_ >= 0) wait = std::min(wait, std::max(0.0, timer_due_s_ - ClientNow()));
  epoll_event events[512];
  int timeout_ms = 0;
  if (wait > 0) {
    itimerspec its{};
    const double whole = std::floor(wait);
    its.it_value.tv_sec = static_cast<time_t>(whole);
    its.it_value.tv_nsec = std::max(1L, static_cast<long>((wait - whole) * 1e9));
    timerfd_settime(timer_fd_, 0, &its, nullptr);
    timeout_ms = -1;
  }
  const int n = epoll_wait(epoll_fd_, events, 512, timeout_ms);
  int running = 0;
  for (int i = 0; i < n; ++i) {
    if (events[i].data.fd == timer_fd_) {
      uint64_t expirations = 0;
      [[maybe_unused]] ssize_t r = read(timer_fd_, &expirations, sizeof expirations);
      continue;
    }
    int flags = 0;
    if (events[i].events & EPOLLIN) flags |= CURL_CSELECT_IN;
    if (events[i].events & EPOLLOUT) flags |= CURL_CSELECT_OUT;
    if (events[i].events & (EPOLLERR | EPOLLHUP)) flags |= CURL_CSELECT_ERR;
    curl_multi_socket_action(multi_, events[i].data.fd, flags, &running);
  }
  if (timer_due_s_ >= 0 && ClientNow() >= timer_due_s_) {
    timer_due_s_ = -1;
    curl_multi_socket_action(multi_, CURL_SOCKET_TIMEOUT, 0, &running);
  }
  CheckStalls();
  int left = 0;
  while (CURLMsg* msg = curl_multi_info_read(multi_, &left)) {
    if (msg->msg != CURLMSG_DONE) continue;
    Transfer* t = nullptr;
    curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &t);
    if (t != nullptr) Finish(t, msg->data.result);
  }
  return Status::Ok();
}

void StreamClient::CheckStalls() {
  // Every 100 ms at most: a scan of the open transfers for ones without a byte for too long
  // (a server that accepts and never answers, or stops mid-stream).
  const double now = ClientNow();
  if (now - last_stall_check_s_ < 0.1) return;
  last_stall_check_s_ = now;
  std::vector<Transfer*> stalled;
  for (const auto& [id, t] : transfers_) {
    if (now - t->last_byte_s > opt_.stall_timeout_s) stalled.push_back(t.get());
  }
  for (Transfer* t : stalled) {
    t->result.error = TransferError::kStall;
    char buf[96];
    std::snprintf(buf, sizeof buf, "no byte for %.3g s (the stall timeout)", opt_.stall_timeout_s);
    t->result.error_message = buf;
    Finish(t, -1);
  }
}

void StreamClient::Cancel(uint64_t id) {
  auto it = transfers_.find(id);
  if (it == transfers_.end()) return;
  Transfer* t = it->second.get();
  t->result.error = TransferError::kCancelled;
  t->result.error_message = "cancelled";
  Finish(t, -1);
}

void StreamClient::CancelAll() {
  std::vector<uint64_t> ids;
  for (const auto& [id, t] : transfers_) ids.push_back(id);
  for (uint64_t id : ids) Cancel(id);
}

namespace {

class OneShot final : public StreamHandler {
 public:
  bool OnEvent(const SseEvent&, double) override { return true; }
  void OnDone(const TransferResult& r) override {
    result = r;
    done = true;
  }
  TransferResult result;
  bool done = false;
};

}  // namespace

Status FetchOnce(StreamClient& client, const HttpRequest& request, double max_wait_s,
                 TransferResult* out, bool (*cancelled)()) {
  OneShot h;
  uint64_t id = 0;
  CB_RETURN_IF_ERROR(client.Start(request, &h, &id));
  const double deadline = ClientNow() + max_wait_s;
  while (!h.done) {
    const double left = deadline - ClientNow();
    if (cancelled != nullptr && cancelled()) {
      client.Cancel(id);
      break;
    }
    if (left <= 0) {
      client.Cancel(id);
      h.result.error = TransferError::kTimeout;
      h.result.error_message = "no answer within " + Fmt(max_wait_s, "%g") + " s";
      break;
    }
    CB_RETURN_IF_ERROR(client.Poll(std::min(left, 0.05)));
  }
  *out = std::move(h.result);
  return Status::Ok();
}

}  // namespace cb
