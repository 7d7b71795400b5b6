#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>

#include "backends/endpoint/sse_parser.h"
#include "harness/core/status.h"

namespace cb {

/// Bounds and credentials of every transfer of a StreamClient.
struct ClientOptions {
  double connect_timeout_s = 5;    ///< TCP (and TLS) connection
  double request_timeout_s = 300;  ///< the whole request, first byte sent to last received
  double stall_timeout_s = 60;     ///< fail when no byte arrives for this long
  std::string api_key;             ///< sent as "Authorization: Bearer KEY" when not empty
  std::string ca_file;             ///< TLS: trust these CAs instead of the system's
  bool insecure_tls = false;       ///< TLS: do not verify the server's certificate
};

struct HttpRequest {
  std::string url;
  std::string body;  ///< POSTed as application/json when not empty; GET otherwise
};

enum class TransferError {
  kNone,       ///< the transfer completed (look at the HTTP status)
  kConnect,    ///< no connection: refused, unresolvable, or the connect timeout passed
  kTimeout,    ///< the request timeout passed
  kStall,      ///< no byte for the stall timeout
  kTls,        ///< TLS handshake or certificate
  kTransport,  ///< the connection broke (reset, closed mid-response, ...)
  kStopped,    ///< the handler asked to stop (OnEvent returned false)
  kCancelled,  ///< Cancel/CancelAll
};
const char* TransferErrorName(TransferError e);

struct TransferResult {
  TransferError error = TransferError::kNone;
  std::string error_message;
  long http_status = 0;
  std::string content_type;
  bool event_stream = false;  ///< HTTP 200 with text/event-stream: events went to OnEvent
  std::string body;           ///< otherwise the body (at most 64 KiB)
  bool stream_cut = false;    ///< the event stream ended inside an event or a line
  std::string sse_error;      ///< the event-stream parser's error, if any
  double end_s = 0;           ///< ClientNow() when the transfer ended
};

/// Receives what one transfer produces. Called on the thread that calls Poll.
class StreamHandler {
 public:
  virtual ~StreamHandler() = default;
  /// One server-sent event of a streamed HTTP 200 response; `t_s` is ClientNow() when its
  /// bytes were handed over by the socket. Return false to stop the transfer (kStopped).
  /// Must not call the client.
  virtual bool OnEvent(const SseEvent& event, double t_s) = 0;
  /// The transfer ended; called exactly once per started transfer, also when cancelled.
  virtual void OnDone(const TransferResult& result) = 0;
};

/// Seconds on the monotonic clock (steady_clock: CLOCK_MONOTONIC on Linux), the clock of
/// every timestamp the client gives.
double ClientNow();

/// An event-driven HTTP client for many concurrent streamed responses on one thread: libcurl's
/// multi interface driven by epoll (curl_multi_socket_action), HTTP/1.1, one connection per
/// transfer in flight (idle connections are reused), TCP_NODELAY. Every wait is bounded by the
/// options' timeouts. Not thread-safe: one thread starts, polls and cancels.
class StreamClient {
 public:
  static Status Create(const ClientOptions& options, std::unique_ptr<StreamClient>* out);
  ~StreamClient();
  StreamClient(const StreamClient&) = delete;
  StreamClient& operator=(const StreamClient&) = delete;

  /// Starts a transfer; `handler` must outlive it. `*id` names it for Cancel.
  Status Start(const HttpRequest& request, StreamHandler* handler, uint64_t* id);
  /// Waits up to `max_wait_s` for network activity or a libcurl timer and handles what is
  /// ready (callbacks run here). Returns early after handling anything.
  Status Poll(double max_wait_s);
  /// Ends a transfer now; its handler's OnDone says kCancelled.
  void Cancel(uint64_t id);
  void CancelAll();
  size_t active() const { return transfers_.size(); }

 private:
  struct Transfer;
  explicit StreamClient(const ClientOptions& options);
  void Finish(Transfer* t, int curl_code);
  void CheckStalls();
  static size_t OnWrite(char* data, size_t size, size_t n, void* user);
  static int OnSocket(void* easy, int fd, int what, void* user, void* socket_user);
  static int OnTimer(void* multi, long timeout_ms, void* user);

  ClientOptions opt_;
  void* multi_ = nullptr;
  int epoll_fd_ = -1;
  int timer_fd_ = -1;
  double timer_due_s_ = -1;  ///< when libcurl wants its timeout handled; < 0: none
  double last_stall_check_s_ = 0;
  uint64_t next_id_ = 1;
  std::unordered_map<uint64_t, std::unique_ptr<Transfer>> transfers_;
};

/// A one-shot request through `client` (e.g. GET /models), bounded by the client's timeouts
/// and by `max_wait_s`; the response body is in `out->body` (event streams are not expected).
/// `cancelled`, when given, is polled every 50 ms: true cancels the transfer (kCancelled).
Status FetchOnce(StreamClient& client, const HttpRequest& request, double max_wait_s,
                 TransferResult* out, bool (*cancelled)() = nullptr);

}  // namespace cb
