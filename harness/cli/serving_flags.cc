#include "harness/cli/serving_flags.h"

#include <tuple>

namespace cb {
namespace {

/// "1,2,4" -> [1, 2, 4] (integers, or numbers when `integers` is false).
Status NumberList(const std::string& flag, const std::string& text, bool integers,
                  nlohmann::json* out) {
  *out = nlohmann::json::array();
  size_t start = 0;
  while (true) {
    const size_t comma = text.find(',', start);
    const std::string item = text.substr(start, comma == std::string::npos ? comma : comma - start);
    size_t used = 0;
    try {
      if (integers) {
        const long long v = std::stoll(item, &used);
        if (used == item.size()) out->push_back(v);
      } else {
        const double v = std::stod(item, &used);
        if (used == item.size()) out->push_back(v);
      }
    } catch (const std::exception&) {
      used = 0;
    }
    if (item.empty() || used != item.size()) {
      return Status::InvalidInput("command line: " + flag + " expects a comma-separated list of " +
                                  (integers ? "integers" : "numbers") + ", got '" + text + "'");
    }
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return Status::Ok();
}

}  // namespace

void AddServingFlags(CLI::App* cmd, ServingFlags* f) {
  const std::string group = "Scenarios (docs/scenarios.md)";
  auto& g = f->given;
  auto add = [&](const char* field, const char* flag, auto* value, const char* help) {
    g[field] = cmd->add_option(flag, *value, help)->group(group);
  };
  add("scenario", "--scenario", &f->scenario, "offline (default), single-stream, server or sweep");
  add("rate", "--rate", &f->rate,
      "server: mean arrival rate, requests/s (open loop); a list (1,2,4) runs each");
  add("concurrency", "--concurrency", &f->concurrency,
      "server: requests kept in flight instead of --rate (closed loop); a list runs each");
  add("arrival", "--arrival", &f->arrival,
      "server: inter-arrival times, poisson (default) or gamma:CV (bursty for CV > 1)");
  add("prompt_dist", "--prompt-dist", &f->prompt_dist,
      "prompt lengths: fixed:N, uniform:A-B, lognormal:MEAN,SIGMA (default fixed:--prompt-len)");
  add("output_dist", "--output-dist", &f->output_dist,
      "output lengths, same forms (default fixed:--gen-len)");
  add("requests", "--requests", &f->requests, "measured requests (default --min-requests)");
  add("warmup_requests", "--warmup-requests", &f->warmup_requests,
      "requests served before the measured pass, excluded (default 2)");
  add("max_prefill_tokens", "--max-prefill-tokens", &f->max_prefill_tokens,
      "chunked prefill: most prompt tokens per step (default 512)");
  add("kv_page_tokens", "--kv-page-tokens", &f->kv_page_tokens,
      "tokens per page of the KV admission allocator (default 16)");
  add("kv_pages", "--kv-pages", &f->kv_pages,
      "pages in the KV pool (default: the memory budget, at most batch x context)");
  add("slo_ttft", "--slo-ttft", &f->slo_ttft, "goodput: TTFT objective, seconds");
  add("slo_tpot", "--slo-tpot", &f->slo_tpot, "goodput: TPOT objective, seconds");
  add("min_duration", "--min-duration", &f->min_duration,
      "validity: shortest valid run, seconds (default per scenario)");
  add("min_requests", "--min-requests", &f->min_requests,
      "validity: fewest valid requests (default per scenario)");
  add("max_cv", "--max-cv", &f->max_cv,
      "validity: unstable above this coefficient of variation (default per scenario; 0 = off)");
  g["strict"] = cmd->add_flag("--strict", f->strict,
                              "validity: a shortened or unstable run is invalid (exit code 1)")
                    ->group(group);
  add("max_ceiling_drift", "--max-ceiling-drift", &f->max_ceiling_drift,
      "validity: unstable when the ceiling probes before and after an offline window disagree "
      "by more than this share (default 0.15)");
  g["ceiling_probes"] =
      cmd->add_flag("--no-ceiling-probes", f->no_ceiling_probes,
                    "offline: no ceiling probes beside the measured window; MFU/MBU against the "
                    "cached ceilings (a ratio above 1 still makes the run unstable)")
          ->group(group);
  add("batches", "--batches", &f->batches, "sweep: batch sizes, e.g. 1,2,4,8");
  add("rates", "--rates", &f->rates, "sweep: request rates (server), e.g. 1,2,4");
  add("sweep_scenario", "--sweep-scenario", &f->sweep_scenario,
      "sweep: scenario of each point, offline or server (default offline for --batches, "
      "server for --rates)");
  add("at_interactivity", "--at-interactivity", &f->at_interactivity,
      "sweep: interpolate throughput, $/Mtok and J/token at this many tokens/s per user");
}

Status ServingFlagsToOverrides(const ServingFlags& f, nlohmann::json* overrides) {
  auto& o = *overrides;
  auto given = [&](const char* field) { return f.given.at(field)->count() > 0; };
  const std::pair<const char*, const std::string*> strings[] = {
      {"scenario", &f.scenario},
      {"arrival", &f.arrival},
      {"prompt_dist", &f.prompt_dist},
      {"output_dist", &f.output_dist},
      {"sweep_scenario", &f.sweep_scenario}};
  for (const auto& [k, v] : strings) {
    if (given(k)) o[k] = *v;
  }
  const std::pair<const char*, double> doubles[] = {{"slo_ttft", f.slo_ttft},
                                                    {"slo_tpot", f.slo_tpot},
                                                    {"min_duration", f.min_duration},
                                                    {"max_cv", f.max_cv},
                                                    {"at_interactivity", f.at_interactivity},
                                                    {"max_ceiling_drift", f.max_ceiling_drift}};
  for (const auto& [k, v] : doubles) {
    if (given(k)) o[k] = v;
  }
  const std::pair<const char*, int64_t> ints[] = {{"requests", f.requests},
                                                  {"warmup_requests", f.warmup_requests},
                                                  {"max_prefill_tokens", f.max_prefill_tokens},
                                                  {"kv_page_tokens", f.kv_page_tokens},
                                                  {"kv_pages", f.kv_pages},
                                                  {"min_requests", f.min_requests}};
  for (const auto& [k, v] : ints) {
    if (given(k)) o[k] = v;
  }
  if (f.strict) o["strict"] = true;
  // A list expands into one workload per value (plan.cc's list fields), like --batch 1,8.
  for (auto [field, flag, text, integers] :
       {std::tuple{"rate", "--rate", &f.rate, false},
        std::tuple{"concurrency", "--concurrency", &f.concurrency, true}}) {
    if (!given(field)) continue;
    CB_RETURN_IF_ERROR(NumberList(flag, *text, integers, &o[field]));
    if (o[field].size() == 1) o[field] = o[field][0];
  }
  if (f.no_ceiling_probes) o["ceiling_probes"] = false;
  if (given("batches")) CB_RETURN_IF_ERROR(NumberList("--batches", f.batches, true, &o["batches"]));
  if (given("rates")) CB_RETURN_IF_ERROR(NumberList("--rates", f.rates, false, &o["rates"]));
  return Status::Ok();
}

}  // namespace cb
