// How late the endpoint client sees streamed tokens (docs/endpoint.md, "Client overhead"):
// opens --streams concurrent streamed completions through the StreamClient and the OpenAI
// chunk parser that `clusterbench run --backend endpoint:URL` uses, against
// tests/tools/trivial_sse_server (whose chunks carry their CLOCK_MONOTONIC send time), and
// reports the error of the client's timestamps: TTFT error = when the client stamped the first
// chunk - when the server wrote it; ITL error = the client's gap between two chunks - the
// server's. Also the client's CPU time over the wall time (1.0 = one core).
//
// --stagger-ms S starts the streams evenly over S ms (as open-loop arrivals would) instead of
// all at once (every stream's chunks then arrive in lockstep bursts of --streams chunks).
//
// usage: endpoint_overhead_bench --url http://127.0.0.1:PORT/v1 [--streams N] [--tokens N]
//                                [--stagger-ms S]
#include <sys/resource.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "backends/endpoint/openai_protocol.h"
#include "backends/endpoint/stream_client.h"

namespace cb {
namespace {

struct Stream final : StreamHandler {
  explicit Stream(size_t* open) : open(open) {}
  size_t* open;
  std::vector<double> recv_s, send_s;
  bool done = false, ok = false;
  bool OnEvent(const SseEvent& e, double t) override {
    StreamChunk c;
    if (!ParseStreamChunk(ApiKind::kCompletions, e.data, &c).ok()) return false;
    if (c.has_content && c.text.size() > 2) {
      recv_s.push_back(t);
      send_s.push_back(std::atof(c.text.c_str() + 2) * 1e-9);
    }
    return true;
  }
  void OnDone(const TransferResult& r) override {
    done = true;
    --*open;
    ok = r.error == TransferError::kNone && r.http_status == 200;
  }
};

double Cpu() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_utime.tv_usec * 1e-6 + u.ru_stime.tv_sec +
         u.ru_stime.tv_usec * 1e-6;
}

double Pct(std::vector<double> v, double p) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  const double i = p / 100.0 * static_cast<double>(v.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(i));
  const size_t hi = std::min(v.size() - 1, lo + 1);
  return v[lo] + (v[hi] - v[lo]) * (i - static_cast<double>(lo));
}

void Report(const char* what, const std::vector<double>& v) {
  std::printf("%-34s n=%-7zu p50 %8.3f ms  p99 %8.3f ms  max %8.3f ms\n", what, v.size(),
              Pct(v, 50) * 1e3, Pct(v, 99) * 1e3, Pct(v, 100) * 1e3);
}

int Main(int argc, char** argv) {
  std::string url;
  int streams = 1000, tokens = 64;
  double stagger_s = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string f = argv[i];
    if (f == "--url") {
      url = argv[i + 1];
    } else if (f == "--streams") {
      streams = std::atoi(argv[i + 1]);
    } else if (f == "--tokens") {
      tokens = std::atoi(argv[i + 1]);
    } else if (f == "--stagger-ms") {
      stagger_s = std::atof(argv[i + 1]) / 1000.0;
    } else {
      url.clear();  // unknown flag: usage
      break;
    }
  }
  if (url.empty() || streams < 1) {
    std::fprintf(
        stderr,
        "usage: endpoint_overhead_bench --url URL [--streams N] [--tokens N] [--stagger-ms S]\n");
    return 2;
  }
  ClientOptions co;
  co.request_timeout_s = 300;
  std::unique_ptr<StreamClient> client;
  if (Status s = StreamClient::Create(co, &client); !s.ok()) return 1;
  GenerationRequest g;
  g.model = "trivial";
  g.prompt = "the";
  g.max_tokens = tokens;
  const std::string body = BuildRequestBody(ApiKind::kCompletions, g);
  std::vector<std::unique_ptr<Stream>> all;
  size_t open = static_cast<size_t>(streams);
  const double t0 = ClientNow(), c0 = Cpu();
  for (int i = 0; i < streams; ++i) {
    // Staggered: wait (serving the streams already open) until this one's start.
    const double start = t0 + stagger_s * i / streams;
    do {  // at least once: the open streams are read between starts
      if (!client->Poll(std::max(0.0, start - ClientNow())).ok()) return 1;
    } while (ClientNow() < start);
    all.push_back(std::make_unique<Stream>(&open));
    uint64_t id;
    if (!client->Start({url + "/completions", body}, all.back().get(), &id).ok()) return 1;
  }
  while (open > 0) {
    if (!client->Poll(0.1).ok()) return 1;
  }
  const double wall = ClientNow() - t0, cpu = Cpu() - c0;
  std::vector<double> ttft_err, itl_err, lag;
  size_t ok = 0, chunks = 0;
  for (const auto& s : all) {
    ok += s->ok && static_cast<int>(s->recv_s.size()) == tokens;
    chunks += s->recv_s.size();
    if (s->recv_s.empty()) continue;
    ttft_err.push_back(s->recv_s[0] - s->send_s[0]);
    for (size_t k = 0; k < s->recv_s.size(); ++k) {
      lag.push_back(s->recv_s[k] - s->send_s[k]);
      if (k > 0) {
        itl_err.push_back(
            std::fabs((s->recv_s[k] - s->recv_s[k - 1]) - (s->send_s[k] - s->send_s[k - 1])));
      }
    }
  }
  std::printf(
      "streams %d (%zu complete, started over %.0f ms), chunks %zu in %.2f s "
      "(%.0f chunks/s)\n",
      streams, ok, stagger_s * 1e3, chunks, wall, static_cast<double>(chunks) / wall);
  Report("TTFT error (first chunk seen - sent)", ttft_err);
  Report("ITL error |client gap - server gap|", itl_err);
  Report("every chunk: seen - sent", lag);
  std::printf("client CPU %.2f s over %.2f s wall = %.2f cores\n", cpu, wall, cpu / wall);
  return ok == static_cast<size_t>(streams) ? 0 : 1;
}

}  // namespace
}  // namespace cb

int main(int argc, char** argv) { return cb::Main(argc, argv); }
