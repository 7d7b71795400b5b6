// `clusterbench compare-hardware`: the cheapest layout of one model on each catalog system
// that meets the latency objectives, simulated.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>
#include <tuple>

#include "backends/sim/perf_model.h"
#include "backends/sim/sim_device.h"
#include "harness/cancel.h"
#include "harness/cli/commands.h"
#include "harness/cli/compare_hardware.h"
#include "harness/cli/output.h"
#include "harness/core/fmt.h"
#include "harness/deployment/layout_search.h"
#include "harness/plan.h"
#include "harness/runner.h"
#include "results/atomic_file.h"
#include "results/json_number.h"
#include "results/text_table.h"
#include "workloads/json_fields.h"

namespace cb {
namespace {

using nlohmann::json;

json ServedJson(const ServedFigures& s) {
  if (s.load <= 0) return nullptr;
  if (!s.skipped.empty()) return {{"load", s.load}, {"skipped", s.skipped}};
  return {{"load", s.load},
          {"offered_requests_per_second", FiniteOrNull(s.offered_requests_per_s)},
          {"served_requests_per_second", FiniteOrNull(s.served_requests_per_s)},
          {"ttft_p50_seconds", FiniteOrNull(s.ttft_p50_s)},
          {"ttft_p99_seconds", FiniteOrNull(s.ttft_p99_s)},
          {"tpot_p50_seconds", FiniteOrNull(s.tpot_p50_s)},
          {"tpot_p99_seconds", FiniteOrNull(s.tpot_p99_s)},
          {"meets_slo", s.meets_slo}};
}

json PointJson(const LayoutPoint& p, int devices) {
  json pools = json::array();
  for (const PoolLayout& pl : p.deployment.pools) {
    pools.push_back({{"role", PoolRoleName(pl.role)},
                     {"devices", pl.devices},
                     {"tp", pl.tp},
                     {"ep", pl.ep},
                     {"dp", pl.dp()}});
  }
  return {{"layout", p.Layout()},
          {"dtype", std::string(DTypeName(p.dtype))},
          {"pools", pools},
          {"redundant_experts", p.deployment.redundant_experts},
          {"mtp", p.deployment.mtp},
          {"overlap", p.deployment.overlap},
          {"sequences_per_rank", p.seqs_per_rank},
          {"prefill_chunk_tokens", p.prefill_chunk},
          {"ttft_seconds", FiniteOrNull(p.ttft_s)},
          {"tpot_seconds", FiniteOrNull(p.tpot_s)},
          {"interactivity_tokens_per_second_per_user", FiniteOrNull(1 / p.tpot_s)},
          {"output_tokens_per_second", FiniteOrNull(p.output_tokens_per_s)},
          {"output_tokens_per_second_per_device", FiniteOrNull(p.output_tokens_per_s / devices)},
          {"input_tokens_per_second", FiniteOrNull(p.input_tokens_per_s)},
          {"cost_usd_per_million_output_tokens", FiniteOrNull(p.usd_per_mtok_output)},
          {"cost_usd_per_million_input_tokens", FiniteOrNull(p.usd_per_mtok_input)},
          {"energy_joules_per_output_token_all_in", FiniteOrNull(p.joules_per_output_token_all_in)},
          {"output_tokens_per_second_per_megawatt", FiniteOrNull(p.output_tokens_per_s_per_mw)},
          {"meets_slo", p.meets_slo},
          {"served", ServedJson(p.served)}};
}

json ResultJson(const SystemResult& r) {
  json points = json::array();
  for (const LayoutPoint& p : r.points) points.push_back(PointJson(p, r.devices));
  return {{"system", r.system},
          {"device", r.device},
          {"devices", r.devices},
          {"status", r.status},
          {"message", r.message},
          {"cost_basis", r.cost_basis},
          {"cost_per_device_hour_usd", FiniteOrNull(r.cost_per_device_hour_usd)},
          {"all_in_power_w_per_device", FiniteOrNull(r.all_in_power_w)},
          {"served_checks", r.served_checks},
          {"served_passed_over", r.served_passed_over},
          {"best", r.points.empty() ? json(nullptr) : PointJson(r.best, r.devices)},
          {"points", points},
          {"how", "modelled"},
          {"model_version", sim::kModelVersion}};
}

TextTable HardwareTable(const CompareHardwareFlags& f, const ModelSpec& m,
                        const std::vector<SystemResult>& rows, const json& doc) {
  TextTable t;
  t.title.push_back("compare-hardware: " + m.name + ", prompt " + std::to_string(f.prompt_len) +
                    ", output " + std::to_string(f.gen_len) + " tokens" +
                    (f.slo_tpot > 0 ? ", TPOT <= " + Fmt(f.slo_tpot * 1e3, "%.0f") + " ms" : "") +
                    (f.slo_ttft > 0 ? ", TTFT <= " + Fmt(f.slo_ttft, "%.3g") + " s" : "") +
                    "; simulated (" + sim::kModelVersion + "), every figure modelled");
  const std::string at = "@" + Fmt(f.serve_load * 100, "%.0f") + "%";
  t.columns = {"system",
               "devices",
               "tok/s/chip",
               "tok/s/sys",
               "TTFT s",
               "TPOT ms",
               "TTFT p99 s " + at,
               "TPOT p99 ms " + at,
               "$/Mtok in",
               "$/Mtok out",
               "J/tok all-in",
               "tok/s per MW",
               "status",
               "how",
               "layout"};
  t.numeric = {false, true, true, true, true,  true,  true, true,
               true,  true, true, true, false, false, false};
  for (const SystemResult& r : rows) {
    const LayoutPoint& b = r.best;
    if (r.status == "cannot_hold_model" || r.points.empty()) {
      t.rows.push_back({r.system, std::to_string(r.devices), "-", "-", "-", "-", "-", "-", "-", "-",
                        "-", "-", r.status, "modelled", r.message});
      continue;
    }
    t.rows.push_back(
        {r.system, std::to_string(r.devices), Fmt(b.output_tokens_per_s / r.devices, "%.0f"),
         Fmt(b.output_tokens_per_s, "%.0f"), Fmt(b.ttft_s, "%.2f"), Fmt(b.tpot_s * 1e3, "%.1f"),
         b.Served() ? Fmt(b.served.ttft_p99_s, "%.2f") : "-",
         b.Served() ? Fmt(b.served.tpot_p99_s * 1e3, "%.1f") : "-",
         Fmt(b.usd_per_mtok_input, "%.3f"), Fmt(b.usd_per_mtok_output, "%.3f"),
         Fmt(b.joules_per_output_token_all_in, "%.3f"), Fmt(b.output_tokens_per_s_per_mw, "%.0f"),
         r.status == "ok" ? "ok" : "misses SLO", "modelled", b.Layout()});
    if (r.status != "ok") t.notes.push_back(r.system + ": " + r.message);
    if (!b.served.skipped.empty()) t.notes.push_back(r.system + ": " + b.served.skipped);
  }
  for (const json& s : doc["systems"]) {
    json rec = s;
    rec.erase("points");
    t.records.push_back(std::move(rec));
  }
  if (m.api_usd_per_mtok_output > 0) {
    char line[256];
    std::snprintf(line, sizeof line,
                  "API list price of %s: $%.2f / $%.2f per million input / output tokens (%s)",
                  m.name.c_str(), m.api_usd_per_mtok_input, m.api_usd_per_mtok_output,
                  m.api_price_source.c_str());
    t.notes.push_back(line);
  }
  t.notes.push_back(
      "$/Mtok out: every device of the layout over its output tokens; $/Mtok in: the prefill "
      "pool's (one pool: every device's) over input tokens.");
  if (f.serve_load > 0) {
    t.notes.push_back("TTFT s, TPOT ms: the layout's steady state (no queueing); " + at +
                      ": served with Poisson arrivals at " + Fmt(f.serve_load * 100, "%.0f") +
                      "% of its steady-state request rate (--serve-load), p99; up to " +
                      std::to_string(SearchRequest{}.serve_tries) +
                      " of the layouts meeting the SLO are served, cheapest first, passing over "
                      "those a leaner layout of the same deployment already missed.");
  } else {
    constexpr size_t kServedColumns = 6;  // "TTFT p99 s @", "TPOT p99 ms @": not served
    t.columns.erase(t.columns.begin() + kServedColumns, t.columns.begin() + 8);
    t.numeric.erase(t.numeric.begin() + kServedColumns, t.numeric.begin() + 8);
    for (auto& row : t.rows) row.erase(row.begin() + kServedColumns, row.begin() + 8);
  }
  return t;
}

/// "command line: --flag" or "SUITE: compare_hardware.field", for errors.
std::string Where(const CompareHardwareFlags& f, const char* flag, const char* field) {
  if (f.origin == "command line") return "command line: " + std::string(flag);
  return f.origin + ": compare_hardware." + field;
}

Status ParseRequest(const CompareHardwareFlags& f, SearchRequest* r) {
  for (auto [flag, field, v] : {std::tuple{"--slo-tpot", "slo_tpot", f.slo_tpot},
                                std::tuple{"--slo-ttft", "slo_ttft", f.slo_ttft}}) {
    if (!(v >= 0) || !std::isfinite(v)) {
      return Status::InvalidInput(Where(f, flag, field) + ": must be a positive number of seconds");
    }
  }
  if (!(f.serve_load >= 0 && f.serve_load < 1)) {
    return Status::InvalidInput(Where(f, "--serve-load", "serve_load") +
                                ": must be in [0, 1) (a share of the steady-state request "
                                "rate; 0 serves nothing)");
  }
  json o = {{"model", f.model},     {"backend", "sim"}, {"prompt_len", f.prompt_len},
            {"gen_len", f.gen_len}, {"verify", false},  {"repetitions", 1},
            {"warmup", 0}};
  if (!f.kv_dtype.empty()) o["kv_dtype"] = f.kv_dtype;
  if (!f.routing.empty()) o["routing"] = f.routing;
  std::vector<WorkloadSpec> plan;
  CB_RETURN_IF_ERROR(
      ExpandSuite(json{{"workloads", json::array({o})}}, json::object(),
                  f.origin == "command line" ? f.origin : f.origin + ": compare_hardware", &plan));
  r->base = plan.front();
  std::stringstream ss(f.dtypes);
  std::string name;
  while (std::getline(ss, name, ',')) {
    const auto dt = ParseDType(name);
    if (!dt || *dt == DType::kF16) {
      return Status::InvalidInput(Where(f, "--dtype", "dtype") + ": unknown dtype '" + name +
                                  "'; allowed values: fp32, bf16, fp8, int8");
    }
    r->dtypes.push_back(*dt);
  }
  r->slo_tpot_s = f.slo_tpot;
  r->slo_ttft_s = f.slo_ttft;
  r->disaggregation = !f.no_disaggregation;
  r->serve_load = f.serve_load;
  return Status::Ok();
}

Status SearchSystems(const CompareHardwareFlags& f, const SearchRequest& req,
                     std::vector<SystemResult>* rows, json* doc) {
  DeviceCatalog catalog;
  CB_RETURN_IF_ERROR(
      DeviceCatalog::Load(f.catalog_dir.empty() ? DefaultCatalogDir() : f.catalog_dir, &catalog));
  std::vector<const CatalogEntry*> systems;
  std::stringstream ss(f.systems);
  std::string name;
  while (std::getline(ss, name, ',')) {
    const CatalogEntry* e = sim::FindEntry(catalog, name);
    if (e == nullptr || e->type != "system") {
      std::string known;
      for (const CatalogEntry& c : catalog.entries()) {
        if (c.type == "system") known += (known.empty() ? "" : ", ") + c.id;
      }
      return Status::InvalidInput(Where(f, "--systems", "systems") + ": unknown system '" + name +
                                  "'; allowed values: " + known);
    }
    systems.push_back(e);
  }
  if (systems.empty()) {
    for (const CatalogEntry& e : catalog.entries()) {
      if (e.type == "system") systems.push_back(&e);
    }
  }
  *doc = {{"model", req.base.model.name},
          {"prompt_len", f.prompt_len},
          {"gen_len", f.gen_len},
          {"slo_tpot_seconds", f.slo_tpot},
          {"slo_ttft_seconds", f.slo_ttft},
          {"serve_load", f.serve_load},
          {"model_version", sim::kModelVersion},
          {"how", "modelled"},
          {"systems", json::array()}};
  for (const CatalogEntry* e : systems) {
    const auto t0 = std::chrono::steady_clock::now();
    SystemResult r;
    CB_RETURN_IF_ERROR(SearchSystem(req, catalog, *e, &r));
    if (!f.quiet) {
      std::fprintf(stderr, "clusterbench compare-hardware: %s: %zu layouts costed in %.1f s\n",
                   e->id.c_str(), r.points.size(),
                   std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    (*doc)["systems"].push_back(ResultJson(r));
    rows->push_back(std::move(r));
  }
  return Status::Ok();
}

}  // namespace

Status RunCompareHardware(const CompareHardwareFlags& f, std::string* text) {
  SearchRequest req;
  CB_RETURN_IF_ERROR(ParseRequest(f, &req));
  std::vector<SystemResult> rows;
  json doc;
  CB_RETURN_IF_ERROR(SearchSystems(f, req, &rows, &doc));
  std::string stamp = NowIso8601();
  for (char& c : stamp) {
    if (c == ':') c = '-';
  }
  const std::string path = !f.layouts.empty() ? f.layouts
                                              : f.results_dir + "/compare-hardware/" + stamp + "_" +
                                                    req.base.model.name + ".json";
  CB_RETURN_IF_ERROR(WriteFileAtomically(path, doc.dump(2) + "\n"));
  if (!f.quiet) {
    std::fprintf(stderr, "clusterbench compare-hardware: every layout costed -> %s\n",
                 path.c_str());
  }
  return FormatTable(HardwareTable(f, req.base.model, rows, doc), f.format, text);
}

Status CompareHardwareFromSuite(const json& section, const std::string& origin,
                                CompareHardwareFlags* f) {
  const std::string where = origin + ": compare_hardware";
  if (!section.is_object()) return Status::InvalidInput(where + ": expected an object");
  FieldReader r(section, where);
  CB_RETURN_IF_ERROR(
      r.OnlyKnown({"model", "systems", "prompt_len", "gen_len", "slo_tpot", "slo_ttft", "dtype",
                   "kv_dtype", "routing", "disaggregation", "serve_load"}));
  CB_RETURN_IF_ERROR(r.String("model", true, &f->model));
  CB_RETURN_IF_ERROR(r.Int("prompt_len", false, &f->prompt_len));
  CB_RETURN_IF_ERROR(r.Int("gen_len", false, &f->gen_len));
  CB_RETURN_IF_ERROR(r.Double("slo_tpot", false, &f->slo_tpot));
  CB_RETURN_IF_ERROR(r.Double("slo_ttft", false, &f->slo_ttft));
  CB_RETURN_IF_ERROR(r.Double("serve_load", false, &f->serve_load));
  CB_RETURN_IF_ERROR(r.String("kv_dtype", false, &f->kv_dtype));
  CB_RETURN_IF_ERROR(r.String("routing", false, &f->routing));
  bool disaggregation = true;
  CB_RETURN_IF_ERROR(r.Bool("disaggregation", false, &disaggregation));
  f->no_disaggregation = !disaggregation;
  for (auto [field, out] : {std::pair{"systems", &f->systems}, {"dtype", &f->dtypes}}) {
    if (!section.contains(field)) continue;
    const json& v = section[field];
    if (v.is_string()) {
      *out = v;
      continue;
    }
    if (!v.is_array()) return r.Error(field, "expected a name or a list of names");
    for (const json& item : v) {
      if (!item.is_string()) return r.Error(field, "expected a list of names");
      *out += (out->empty() ? "" : ",") + item.get<std::string>();
    }
  }
  if (f->prompt_len < 1 || f->gen_len < 1) {
    return r.Error(f->prompt_len < 1 ? "prompt_len" : "gen_len", "must be at least 1");
  }
  f->origin = origin;
  return Status::Ok();
}

CommandFn AddCompareHardwareCommand(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "compare-hardware",
      "For each catalog system, the cheapest simulated layout of a model that meets the latency "
      "objectives: tokens/s per chip and per system, TTFT, TPOT, $/Mtok, J/token, tokens per MW");
  auto f = std::make_shared<CompareHardwareFlags>();
  cmd->add_option("--model", f->model, "Model preset name or JSON file")->required();
  cmd->add_option("--systems", f->systems, "Comma-separated catalog systems (default: all)");
  cmd->add_option("--prompt-len", f->prompt_len, "Prompt tokens (default 1024)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--gen-len", f->gen_len, "Output tokens (default 1024)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--slo-tpot", f->slo_tpot, "Time per output token objective, s (default none)");
  cmd->add_option("--slo-ttft", f->slo_ttft, "Time to first token objective, s (default none)");
  cmd->add_option("--dtype", f->dtypes,
                  "Comma-separated dtypes to try (default: fp8, int8 and bf16, where native)");
  cmd->add_option("--kv-dtype", f->kv_dtype, "KV-cache dtype: bf16, fp8 or int8");
  cmd->add_option("--routing", f->routing, "MoE expert load: uniform (default) or zipf:S");
  cmd->add_flag("--no-disaggregation", f->no_disaggregation,
                "Only one mixed pool per system (no prefill/decode pools)");
  cmd->add_option("--serve-load", f->serve_load,
                  "Serve the cheapest layouts meeting the objectives (Poisson arrivals, the "
                  "serving simulation) at this share of their steady-state request rate and keep "
                  "the first whose p99 TTFT and TPOT still meet them (default 0.8; 0: do not)");
  auto out = AddOutputFlags(cmd, {"table", "md", "csv", "json", "jsonl"}, "table");
  cmd->add_option("--layouts", f->layouts,
                  "File for every costed layout (default "
                  "RESULTS_DIR/compare-hardware/TIME_MODEL.json)");
  cmd->add_option("--results-dir", f->results_dir, "Results root (default results)");
  cmd->add_option("--catalog", f->catalog_dir,
                  "Device catalog directory (default backends/devices)");
  cmd->add_flag("--quiet,-q", f->quiet, "No progress on stderr");
  return [f, out] {
    InstallCancelHandlers();
    f->format = out->format;
    std::string text;
    if (Status s = RunCompareHardware(*f, &text); !s.ok()) {
      std::fprintf(stderr, "clusterbench compare-hardware: %s\n", s.message().c_str());
      return s.ExitCode();
    }
    std::fputs(text.c_str(), stdout);
    return 0;
  };
}

}  // namespace cb
