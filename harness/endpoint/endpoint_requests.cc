#include "harness/endpoint/endpoint_requests.h"

#include <algorithm>
#include <numeric>
#include <random>

#include "backends/endpoint/word_text.h"
#include "harness/scenarios/serving_runner.h"

namespace cb {

Status MakeEndpointRequests(const WorkloadSpec& w, const EndpointTarget& t,
                            const RequestStyle& style, int64_t first, int64_t count,
                            std::vector<EndpointRequest>* out) {
  std::vector<ServingRequest> base;
  CB_RETURN_IF_ERROR(MakeRequests(w, first, count, WordCount(), &base));
  std::vector<size_t> order;
  if (t.dataset) {
    order.resize(t.dataset->entries.size());
    std::iota(order.begin(), order.end(), size_t{0});
    std::mt19937_64 rng(w.seed * 0x2545f4914f6cdd1dULL + 7);
    std::shuffle(order.begin(), order.end(), rng);
  }
  out->clear();
  out->reserve(base.size());
  for (size_t i = 0; i < base.size(); ++i) {
    const ServingRequest& b = base[i];
    EndpointRequest r;
    r.arrival_s = b.arrival_s;
    GenerationRequest g;
    g.model = style.model;
    g.ignore_eos = style.ignore_eos;
    if (t.dataset) {
      const auto& entries = t.dataset->entries;
      const DatasetEntry& e =
          entries[order[static_cast<size_t>(first + static_cast<int64_t>(i)) % order.size()]];
      g.prompt = e.prompt;
      r.prompt_len = e.prompt_words;
      r.output_len = w.serving.output_dist.empty() ? e.output_len : b.output_len;
    } else {
      g.prompt = WordsText(b.prompt);
      r.prompt_len = b.prompt_len;
      r.output_len = b.output_len;
    }
    g.max_tokens = std::max<int64_t>(1, r.output_len);
    r.body = BuildRequestBody(t.api, g);
    out->push_back(std::move(r));
  }
  return Status::Ok();
}

}  // namespace cb
