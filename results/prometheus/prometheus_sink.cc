#include "results/prometheus/prometheus_sink.h"

#include <curl/curl.h>
#include <prometheus/collectable.h>
#include <prometheus/gateway.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <future>
#include <map>
#include <memory>
#include <sstream>
#include <thread>

#include "harness/core/cancel_flag.h"
#include "results/atomic_file.h"
#include "results/prometheus/metrics_mapping.h"
#include "results/run_status.h"

namespace cb::prom {
namespace {

bool Interrupted() { return g_cancel_requested.load(std::memory_order_relaxed); }

/// Fixed metric families, handed to prometheus::Gateway.
class StaticCollectable : public prometheus::Collectable {
 public:
  explicit StaticCollectable(std::vector<prometheus::MetricFamily> f) : families_(std::move(f)) {}
  std::vector<prometheus::MetricFamily> Collect() const override { return families_; }

 private:
  std::vector<prometheus::MetricFamily> families_;
};

bool UrlSafe(const std::string& v) {
  if (v.empty()) return false;
  for (char c : v) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_' || c == '.';
    if (!ok) return false;
  }
  return true;
}

std::string Base64Url(const std::string& in) {
  static const char* kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const uint32_t n = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8) | uint8_t(in[i + 2]);
    for (int s : {18, 12, 6, 0}) out += kAlphabet[(n >> s) & 63];
  }
  if (i + 1 == in.size()) {
    const uint32_t n = uint8_t(in[i]) << 16;
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += "==";
  } else if (i + 2 == in.size()) {
    const uint32_t n = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8);
    for (int s : {18, 12, 6}) out += kAlphabet[(n >> s) & 63];
    out += "=";
  }
  return out;
}

}  // namespace

prometheus::Labels GroupingPathLabels(const LabelList& labels) {
  prometheus::Labels out;
  for (const auto& [n, v] : labels) {
    if (UrlSafe(v)) {
      out[n] = v;
    } else {
      out[n + "@base64"] = Base64Url(v);
    }
  }
  return out;
}

namespace {

std::string Describe(int code) {
  if (code < 0) return std::string("transport error: ") + curl_easy_strerror(CURLcode(-code));
  return "HTTP " + std::to_string(code);
}

struct Attempt {
  bool done = false;  ///< false: timed out
  int code = 0;       ///< HTTP status, or -CURLcode
};

/// One push with a deadline. prometheus-cpp 1.0.1 sets no curl timeout and the future of
/// std::async blocks in its destructor, so the call runs on a detached thread that owns the
/// gateway; one that passes the deadline is abandoned (it ends with the process at the latest).
Attempt PushOnce(const std::string& host, const std::string& port, const PushOptions& opts,
                 const prometheus::Labels& grouping,
                 const std::shared_ptr<prometheus::Collectable>& metrics, bool replace_group) {
  auto promise = std::make_shared<std::promise<int>>();
  std::future<int> result = promise->get_future();
  auto gateway = std::make_shared<prometheus::Gateway>(host, port, opts.job, grouping);
  gateway->RegisterCollectable(metrics);
  std::thread([gateway, metrics, promise, replace_group] {
    // prometheus-cpp 1.0.1 swaps the Pushgateway's terms: PushAdd() sends PUT (replace the
    // whole group), Push() sends POST (replace only the metric names sent).
    int code = -1;
    try {
      code = replace_group ? gateway->PushAdd() : gateway->Push();
    } catch (...) {
      code = -int(CURLE_FAILED_INIT);
    }
    promise->set_value(code);
  }).detach();
  // In slices, so Ctrl-C is seen within a tenth of a second.
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::duration<double>(opts.timeout_s);
  while (result.wait_for(std::chrono::milliseconds(100)) != std::future_status::ready) {
    if (std::chrono::steady_clock::now() >= deadline || Interrupted()) return {false, 0};
  }
  return {true, result.get()};
}

/// Pushes one group with retries; "" when it was pushed, else the last error.
std::string PushWithRetries(const std::string& host, const std::string& port,
                            const PushOptions& opts, const prometheus::Labels& grouping,
                            const std::shared_ptr<prometheus::Collectable>& metrics, bool replace,
                            const std::string& what, const std::string& status) {
  double backoff = opts.backoff_s;
  std::string error;
  for (int attempt = 0; attempt <= opts.retries; ++attempt) {
    if (attempt > 0) {
      const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(backoff);
      while (std::chrono::steady_clock::now() < until && !Interrupted()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
      backoff *= 2;
    }
    if (Interrupted()) return "interrupted";
    const auto t0 = std::chrono::steady_clock::now();
    const Attempt a = PushOnce(host, port, opts, grouping, metrics, replace);
    const double took =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    bool retry = false;
    if (!a.done) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "no answer within %.3g s", opts.timeout_s);
      error = buf;
      retry = true;
    } else if (a.code >= 200 && a.code < 300) {
      if (!opts.quiet) {
        std::fprintf(stderr, "%s: pushed %s (%s, %s) to %s in %.2f s\n", opts.who.c_str(),
                     what.c_str(), status.c_str(), replace ? "PUT" : "POST", opts.url.c_str(),
                     took);
      }
      return "";
    } else {
      error = Describe(a.code);
      retry = a.code < 0 || a.code >= 500;
    }
    const bool last = !retry || attempt == opts.retries;
    std::fprintf(stderr, "%s: push of %s to %s failed (attempt %d of %d): %s%s\n", opts.who.c_str(),
                 what.c_str(), opts.url.c_str(), attempt + 1, opts.retries + 1, error.c_str(),
                 last ? "" : "; retrying");
    if (!retry) break;
  }
  return error;
}

}  // namespace

Status ParsePushUrl(const std::string& url, std::string* host, std::string* port,
                    const std::string& flag) {
  auto bad = [&](const std::string& why) {
    return Status::InvalidInput("command line: " + flag + " '" + url + "': " + why +
                                "; expected http://HOST[:PORT][/PATH], e.g. "
                                "http://pushgateway:9091");
  };
  const size_t scheme_end = url.find("://");
  if (scheme_end == std::string::npos) return bad("no scheme");
  const std::string scheme = url.substr(0, scheme_end);
  if (scheme != "http" && scheme != "https") return bad("scheme must be http or https");
  std::string rest = url.substr(scheme_end + 3);
  std::string path;
  if (const size_t slash = rest.find('/'); slash != std::string::npos) {
    path = rest.substr(slash);
    rest.resize(slash);
  }
  while (!path.empty() && path.back() == '/') path.pop_back();
  std::string h = rest, p = "9091";
  if (!rest.empty() && rest[0] == '[') {  // [::1]:9091
    const size_t close = rest.find(']');
    if (close == std::string::npos) return bad("unclosed '['");
    h = rest.substr(0, close + 1);
    if (close + 1 < rest.size()) {
      if (rest[close + 1] != ':') return bad("junk after ']'");
      p = rest.substr(close + 2);
    }
  } else if (const size_t colon = rest.rfind(':'); colon != std::string::npos) {
    h = rest.substr(0, colon);
    p = rest.substr(colon + 1);
  }
  if (h.empty()) return bad("no host");
  if (p.empty() || p.find_first_not_of("0123456789") != std::string::npos || std::stol(p) <= 0 ||
      std::stol(p) > 65535) {
    return bad("bad port");
  }
  *host = scheme + "://" + h;
  *port = p + path;  // Gateway builds HOST:PORT/metrics/job/...
  return Status::Ok();
}

Status PushRuns(const std::vector<RunRecord>& runs, const PushOptions& opts,
                std::vector<PushOutcome>* outcomes) {
  std::string host, port;
  CB_RETURN_IF_ERROR(ParsePushUrl(opts.url, &host, &port));
  int pushed = 0, failed = 0;
  std::string last_error;
  bool unreachable = false;
  const std::vector<SeriesLatest> latest = LatestPerSeries(runs);
  for (const SeriesLatest& s : latest) {
    if (Interrupted()) break;
    const RunRecord* r = s.latest;
    const bool ok = r->Publishable();  // a shortened/unstable run must not replace a valid one
    PushOutcome outcome{SeriesLabels(*r), RunStatusLabel(*r), ok ? "PUT" : "POST", ""};
    if (unreachable) {
      ++failed;
      outcome.error = "not attempted: " + last_error;
      if (outcomes) outcomes->push_back(std::move(outcome));
      continue;
    }
    FamilySet set;
    AddOptions add;
    add.nan_for_invalid = true;
    add.last_success_s = ok ? -1 : s.last_success_s;
    set.AddRun(*r, add);
    auto metrics = std::make_shared<StaticCollectable>(set.Families());
    const prometheus::Labels grouping = GroupingPathLabels(SeriesLabels(*r));
    const std::string what = r->workload.model.name + " " + r->workload.backend + " " +
                             std::string(DTypeName(r->workload.dtype)) + " batch " +
                             std::to_string(r->workload.batch);
    const std::string error =
        PushWithRetries(host, port, opts, grouping, metrics, ok, what, RunStatusLabel(*r));
    if (error.empty()) {
      ++pushed;
    } else {
      ++failed;
      last_error = error;
      outcome.error = error;
      // A timeout or transport error on every attempt: the gateway is down, do not wait for
      // it again for each remaining run.
      unreachable = error.starts_with("no answer") || error.starts_with("transport");
    }
    if (outcomes) outcomes->push_back(std::move(outcome));
  }
  if (Interrupted()) {
    return Status::Cancelled("push to " + opts.url + " interrupted after " +
                             std::to_string(pushed) + " of " + std::to_string(latest.size()) +
                             " series. The JSON result files are written.");
  }
  if (failed == 0) return Status::Ok();
  return Status::Internal("push to " + opts.url + " failed for " + std::to_string(failed) + " of " +
                          std::to_string(latest.size()) + " series (" + std::to_string(pushed) +
                          " pushed); last error: " + last_error +
                          ". The JSON result files are written; republish them with "
                          "clusterbench push DIR --url " +
                          opts.url + ".");
}

std::string TextExposition(const std::vector<RunRecord>& runs) {
  FamilySet set;
  for (const SeriesLatest& s : LatestPerSeries(runs)) {
    AddOptions add;
    add.last_success_s = s.last_success_s;
    set.AddRun(*s.latest, add);
  }
  return SerializeText(set.Families());
}

Status WriteTextfile(const std::string& path, const std::vector<RunRecord>& runs) {
  constexpr const char* kLastSuccess = "clusterbench_last_success_timestamp_seconds";
  // The last success of each series in the file being replaced, keyed by its label text.
  std::map<std::string, double> previous;
  std::string old_text;
  if (std::filesystem::exists(path) && ReadFile(path, &old_text).ok()) {
    std::istringstream lines(old_text);
    for (std::string line; std::getline(lines, line);) {
      if (!line.starts_with(std::string(kLastSuccess) + "{")) continue;
      const size_t close = line.rfind("} ");
      if (close == std::string::npos) continue;
      previous[line.substr(0, close + 1)] = std::strtod(line.c_str() + close + 2, nullptr);
    }
  }
  FamilySet set;
  for (const SeriesLatest& s : LatestPerSeries(runs)) {
    const RunRecord* r = s.latest;
    AddOptions add;
    add.last_success_s = s.last_success_s;
    if (!r->Publishable() && s.last_success_s < 0 && !previous.empty()) {
      FamilySet probe;
      probe.AddGauge(kLastSuccess, "-", SeriesLabels(*r), 0);
      const std::string text = SerializeText(probe.Families());
      const size_t at = text.find(std::string(kLastSuccess) + "{");
      const size_t close = text.find("} ", at);
      if (at != std::string::npos && close != std::string::npos) {
        auto it = previous.find(text.substr(at, close + 1 - at));
        if (it != previous.end() && std::isfinite(it->second)) add.last_success_s = it->second;
      }
    }
    set.AddRun(*r, add);
  }
  return WriteFileAtomically(path, SerializeText(set.Families()));
}

}  // namespace cb::prom

namespace cb::prom {

int Publish(const std::vector<RunRecord>& runs, const PublishOptions& opts) {
  int code = 0;
  if (!opts.textfile.empty()) {
    if (Status s = WriteTextfile(opts.textfile, runs); !s.ok()) {
      std::fprintf(stderr, "clusterbench run: textfile not written: %s\n", s.message().c_str());
      code = kPublishFailedExitCode;
    } else if (!opts.push.quiet) {
      std::fprintf(stderr, "clusterbench run: metrics written to %s\n", opts.textfile.c_str());
    }
  }
  if (!opts.push.url.empty()) {
    if (Status s = PushRuns(runs, opts.push); !s.ok()) {
      std::fprintf(stderr, "clusterbench run: error: %s\n", s.message().c_str());
      code = s.code() == StatusCode::kCancelled ? s.ExitCode() : kPublishFailedExitCode;
    }
  }
  return code;
}

}  // namespace cb::prom
