#include "harness/endpoint/endpoint_pass.h"

#include <time.h>

#include <algorithm>
#include <memory>

namespace cb {
namespace {

double CpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

std::string Short(const std::string& s) { return s.size() > 200 ? s.substr(0, 200) + "..." : s; }

/// The message of an OpenAI error body, else the body's start.
std::string BodyMessage(const std::string& body) {
  const size_t m = body.find("\"message\"");
  if (m != std::string::npos) {
    const size_t q = body.find('"', body.find(':', m) + 1);
    const size_t e = q == std::string::npos ? q : body.find('"', q + 1);
    if (e != std::string::npos) return body.substr(q + 1, e - q - 1);
  }
  return Short(body);
}

/// Routes one transfer's callbacks to its outcome; OnDone queues the index for the pass.
class Handler final : public StreamHandler {
 public:
  Handler(ApiKind api, double t0, EndpointOutcome* out, std::vector<size_t>* done, size_t index)
      : api_(api), t0_(t0), out_(out), done_(done), index_(index) {}
  bool OnEvent(const SseEvent& e, double t_s) override {
    ApplyStreamEvent(api_, e, t_s - t0_, &out_->stream);
    return !out_->stream.malformed && !out_->stream.server_error;
  }
  void OnDone(const TransferResult& r) override {
    out_->transfer = r;
    out_->end_s = r.end_s - t0_;
    out_->outcome = ClassifyOutcome(r, out_->stream, &out_->error);
    done_->push_back(index_);
  }

 private:
  ApiKind api_;
  double t0_;
  EndpointOutcome* out_;
  std::vector<size_t>* done_;
  size_t index_;
};

}  // namespace

std::string ClassifyOutcome(const TransferResult& t, const StreamOutcome& s, std::string* error) {
  error->clear();
  if (s.malformed) {
    *error = "malformed event: " + s.malformed_what;
    return "malformed";
  }
  if (s.server_error) {
    *error = "error in the stream: " + Short(s.server_error_message);
    return "server_error";
  }
  switch (t.error) {
    case TransferError::kNone:
      break;
    case TransferError::kStopped:
      *error = t.sse_error.empty() ? t.error_message : "malformed event stream: " + t.sse_error;
      return "malformed";
    case TransferError::kTransport:
      *error = t.error_message;
      return s.events > 0 ? "truncated" : "transport";
    case TransferError::kCancelled:
      *error = t.error_message;
      return "cancelled";
    default:
      *error = t.error_message;
      return TransferErrorName(t.error);
  }
  if (t.http_status != 200) {
    *error = "HTTP " + std::to_string(t.http_status) +
             (t.body.empty() ? "" : ": " + BodyMessage(t.body));
    return "http_" + std::to_string(t.http_status);
  }
  if (!t.event_stream) {
    *error = "expected a text/event-stream response, got '" + t.content_type + "'";
    return "malformed";
  }
  if (t.stream_cut || (!s.done && s.finish_reason.empty())) {
    *error = "the stream ended without [DONE] or a finish_reason";
    return "truncated";
  }
  if (s.stream_tokens == 0) {
    *error = "no generated text in the stream";
    return "empty";
  }
  return "ok";
}

Status RunEndpointPass(StreamClient& client, const EndpointPassConfig& cfg,
                       std::vector<EndpointRequest>* requests, EndpointPassResult* out) {
  std::vector<EndpointRequest>& reqs = *requests;
  const size_t n = reqs.size();
  *out = EndpointPassResult{};
  out->outcomes.assign(n, EndpointOutcome{});
  std::vector<std::unique_ptr<Handler>> handlers(n);
  std::vector<size_t> done;  // indices whose transfers ended, not yet handled
  std::vector<uint64_t> ids(n, 0);
  const double t0 = ClientNow(), cpu0 = CpuSeconds();
  auto now = [&] { return ClientNow() - t0; };
  size_t issued = 0, finished = 0;
  auto issue = [&](double arrival) -> Status {
    EndpointRequest& r = reqs[issued];
    if (cfg.concurrency > 0) r.arrival_s = arrival;
    EndpointOutcome& o = out->outcomes[issued];
    handlers[issued] = std::make_unique<Handler>(cfg.api, t0, &o, &done, issued);
    o.sent_s = now();
    o.outcome = "open";
    CB_RETURN_IF_ERROR(client.Start({cfg.url, r.body}, handlers[issued].get(), &ids[issued]));
    ++issued;
    out->max_in_flight = std::max<int64_t>(out->max_in_flight, client.active());
    return Status::Ok();
  };
  if (cfg.concurrency > 0) {
    while (issued < std::min<size_t>(n, static_cast<size_t>(cfg.concurrency))) {
      CB_RETURN_IF_ERROR(issue(0));
    }
  }
  while (finished < n) {
    if (cfg.cancelled != nullptr && cfg.cancelled()) {
      client.CancelAll();
      return Status::Cancelled("interrupted");
    }
    // Ended transfers: count failures; in closed loop the next request replaces each.
    for (size_t i : done) {
      ++finished;
      const EndpointOutcome& o = out->outcomes[i];
      if (o.outcome != "ok") ++out->failed;
      if (cfg.concurrency > 0 && issued < n) CB_RETURN_IF_ERROR(issue(o.end_s));
    }
    done.clear();
    if (finished >= n) break;
    const double t = now();
    const bool over = cfg.max_failures >= 0 && out->failed > cfg.max_failures;
    if (over || t >= cfg.deadline_s) {
      out->stopped_early = over;
      out->deadline_passed = !over;
      client.CancelAll();  // their handlers queue them in `done`
      for (size_t i : done) {
        EndpointOutcome& o = out->outcomes[i];
        if (!over) {
          o.outcome = "timeout";
          o.error = "the run's deadline passed (run_timeout)";
        }
        ++out->failed;
      }
      done.clear();
      break;  // requests never issued stay "not_sent"
    }
    if (cfg.concurrency == 0) {
      // Due requests go out now; between them the open streams are read, so a burst of
      // arrivals does not delay the timestamps of tokens already on their way.
      while (issued < n && reqs[issued].arrival_s <= t) {
        CB_RETURN_IF_ERROR(issue(0));
        if (issued < n && reqs[issued].arrival_s <= t) CB_RETURN_IF_ERROR(client.Poll(0));
      }
    }
    double wait = std::min(0.05, cfg.deadline_s - t);
    if (cfg.concurrency == 0 && issued < n) wait = std::min(wait, reqs[issued].arrival_s - t);
    CB_RETURN_IF_ERROR(client.Poll(std::max(0.0, wait)));
  }
  out->wall_s = now();
  out->cpu_s = CpuSeconds() - cpu0;
  return Status::Ok();
}

}  // namespace cb
