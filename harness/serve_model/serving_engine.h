#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "backends/backend.h"
#include "harness/scenarios/batcher.h"
#include "harness/scenarios/kv_pages.h"

namespace cb {

/// The tokens of one request as the engine produces them; read by the HTTP handler's thread.
class TokenStream {
 public:
  /// Waits up to `timeout_s` for tokens and appends them to `tokens`. Returns false once the
  /// request has finished and every token was handed out (then error() says whether it failed).
  bool Next(std::vector<int32_t>* tokens, double timeout_s);
  /// The client went away: the engine ends the request at its next step.
  void Cancel() { cancelled_ = true; }
  bool cancelled() const { return cancelled_; }
  std::string error() const;

 private:
  friend class ServingEngine;
  void Push(const int32_t* tokens, size_t n);
  void Finish(const std::string& error);

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<int32_t> tokens_;
  bool done_ = false;
  std::string error_;
  std::atomic<bool> cancelled_{false};
};

struct EngineConfig {
  int64_t slots = 8;  ///< sequence slots (the session's KV-cache slots)
  int64_t max_prefill_tokens = 512;
  int64_t kv_pages = 0, kv_page_tokens = 16;
  int64_t vocab = 0;
  int64_t max_context = 0;  ///< tokens per slot: prompt + output
};

/// clusterbench serve-model's scheduler: requests submitted from any thread are served by one
/// engine thread with the serving scenarios' own continuous batching (ContinuousBatcher over a
/// KvPageAllocator, chunked prefill, one Session::Run per step), each step's new tokens handed
/// to the requests' TokenStreams as they are sampled. On a simulated device (a modelled clock)
/// each step also takes its modelled time in wall time, so a client sees the simulated speed.
class ServingEngine {
 public:
  ServingEngine(Session& session, Clock& clock, const OpStream& stream, const EngineConfig& cfg);
  ~ServingEngine();
  ServingEngine(const ServingEngine&) = delete;
  ServingEngine& operator=(const ServingEngine&) = delete;

  void Start();
  /// Ends the engine thread; open requests fail with "server stopping".
  void Stop();
  /// Queues a request of `prompt` tokens and `max_tokens` outputs; kInvalidInput when it can
  /// never run (empty, longer than the context, more KV pages than the pool), kInternal when
  /// the engine has failed.
  Status Submit(std::vector<int32_t> prompt, int64_t max_tokens, std::shared_ptr<TokenStream>* out);

  int64_t steps() const { return steps_; }
  int64_t served() const { return served_; }

 private:
  struct Pending {
    std::vector<int32_t> prompt;
    int64_t max_tokens = 0;
    std::shared_ptr<TokenStream> stream;
  };
  void Loop();
  void TakeArrivals(std::vector<Pending>* arrivals);
  /// One step over what can run; `*worked` false when nothing could.
  Status Step(double t0, bool* worked);
  void Deliver(const std::vector<int64_t>& finished);
  void FailAll(const std::string& why);

  Session& session_;
  Clock& clock_;
  const OpStream& stream_;
  EngineConfig cfg_;
  KvPageAllocator kv_;
  std::vector<ServingRequest> reqs_;
  std::vector<RequestOutcome> outcomes_;
  std::vector<std::shared_ptr<TokenStream>> streams_;
  std::vector<size_t> emitted_;
  std::vector<int64_t> open_;  ///< requests arrived and not finished
  std::unique_ptr<ContinuousBatcher> batcher_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Pending> inbox_;
  bool stop_ = false;
  std::string failed_;
  std::thread thread_;
  std::atomic<int64_t> steps_{0}, served_{0};
};

}  // namespace cb
