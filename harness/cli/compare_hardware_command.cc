// `clusterbench compare-hardware`: the cheapest layout of one model on each catalog system
// that meets the latency objectives, simulated.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>

#include "backends/sim/perf_model.h"
#include "backends/sim/sim_device.h"
#include "harness/cancel.h"
#include "harness/cli/commands.h"
#include "harness/deployment/layout_search.h"
#include "harness/plan.h"
#include "harness/runner.h"
#include "results/atomic_file.h"

namespace cb {
namespace {

using nlohmann::json;

struct CompareFlags {
  std::string model, systems, dtypes, kv_dtype, routing, format = "table", catalog_dir;
  std::string results_dir = "results", out;
  int64_t prompt_len = 1024, gen_len = 1024;
  double slo_tpot = 0, slo_ttft = 0;
  bool no_disaggregation = false;
};

std::string Fmt(double v, const char* f = "%.4g") {
  if (!std::isfinite(v)) return "-";
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

json Num(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

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
          {"ttft_seconds", Num(p.ttft_s)},
          {"tpot_seconds", Num(p.tpot_s)},
          {"interactivity_tokens_per_second_per_user", Num(1 / p.tpot_s)},
          {"output_tokens_per_second", Num(p.output_tokens_per_s)},
          {"output_tokens_per_second_per_device", Num(p.output_tokens_per_s / devices)},
          {"input_tokens_per_second", Num(p.input_tokens_per_s)},
          {"cost_usd_per_million_output_tokens", Num(p.usd_per_mtok_output)},
          {"cost_usd_per_million_input_tokens", Num(p.usd_per_mtok_input)},
          {"energy_joules_per_output_token_all_in", Num(p.joules_per_output_token_all_in)},
          {"output_tokens_per_second_per_megawatt", Num(p.output_tokens_per_s_per_mw)},
          {"meets_slo", p.meets_slo}};
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
          {"cost_per_device_hour_usd", Num(r.cost_per_device_hour_usd)},
          {"all_in_power_w_per_device", Num(r.all_in_power_w)},
          {"best", r.points.empty() ? json(nullptr) : PointJson(r.best, r.devices)},
          {"points", points},
          {"how", "modelled"},
          {"model_version", sim::kModelVersion}};
}

void PrintTable(const CompareFlags& f, const ModelSpec& m, const std::vector<SystemResult>& rows) {
  std::printf("%s, prompt %lld, output %lld tokens%s%s; simulated (%s), every figure modelled\n",
              m.name.c_str(), static_cast<long long>(f.prompt_len),
              static_cast<long long>(f.gen_len),
              f.slo_tpot > 0 ? (", TPOT <= " + Fmt(f.slo_tpot * 1e3, "%.0f") + " ms").c_str() : "",
              f.slo_ttft > 0 ? (", TTFT <= " + Fmt(f.slo_ttft, "%.3g") + " s").c_str() : "",
              sim::kModelVersion);
  std::printf("%-22s %7s %10s %11s %8s %8s %9s %10s %10s %12s %12s  %s\n", "system", "devices",
              "tok/s/chip", "tok/s/sys", "TTFT s", "TPOT ms", "$/Mtok in", "$/Mtok out",
              "J/tok all", "tok/s per MW", "status", "layout");
  for (const SystemResult& r : rows) {
    const LayoutPoint& b = r.best;
    if (r.status == "cannot_hold_model" || r.points.empty()) {
      std::printf("%-22s %7d  %s\n", r.system.c_str(), r.devices, r.message.c_str());
      continue;
    }
    std::printf("%-22s %7d %10s %11s %8s %8s %9s %10s %10s %12s %12s  %s\n", r.system.c_str(),
                r.devices, Fmt(b.output_tokens_per_s / r.devices, "%.0f").c_str(),
                Fmt(b.output_tokens_per_s, "%.0f").c_str(), Fmt(b.ttft_s, "%.2f").c_str(),
                Fmt(b.tpot_s * 1e3, "%.1f").c_str(), Fmt(b.usd_per_mtok_input, "%.3f").c_str(),
                Fmt(b.usd_per_mtok_output, "%.3f").c_str(),
                Fmt(b.joules_per_output_token_all_in, "%.3f").c_str(),
                Fmt(b.output_tokens_per_s_per_mw, "%.0f").c_str(),
                r.status == "ok" ? "ok" : "misses SLO", b.Layout().c_str());
    if (r.status != "ok") std::printf("%-22s %7s  %s\n", "", "", r.message.c_str());
  }
  if (m.api_usd_per_mtok_output > 0) {
    std::printf("API list price of %s: $%.2f / $%.2f per million input / output tokens (%s)\n",
                m.name.c_str(), m.api_usd_per_mtok_input, m.api_usd_per_mtok_output,
                m.api_price_source.c_str());
  }
  std::printf(
      "$/Mtok out: every device of the layout over its output tokens; $/Mtok in: the "
      "prefill pool's (one pool: every device's) over input tokens.\n");
}

Status ParseRequest(const CompareFlags& f, SearchRequest* r) {
  for (auto [flag, v] : {std::pair{"--slo-tpot", f.slo_tpot}, {"--slo-ttft", f.slo_ttft}}) {
    if (!(v >= 0) || !std::isfinite(v)) {
      return Status::InvalidInput(std::string("command line: ") + flag +
                                  ": must be a positive number of seconds");
    }
  }
  json o = {{"model", f.model},     {"backend", "sim"}, {"prompt_len", f.prompt_len},
            {"gen_len", f.gen_len}, {"verify", false},  {"repetitions", 1},
            {"warmup", 0}};
  if (!f.kv_dtype.empty()) o["kv_dtype"] = f.kv_dtype;
  if (!f.routing.empty()) o["routing"] = f.routing;
  std::vector<WorkloadSpec> plan;
  CB_RETURN_IF_ERROR(
      ExpandSuite(json{{"workloads", json::array({o})}}, json::object(), "command line", &plan));
  r->base = plan.front();
  std::stringstream ss(f.dtypes);
  std::string name;
  while (std::getline(ss, name, ',')) {
    const auto dt = ParseDType(name);
    if (!dt || *dt == DType::kF16) {
      return Status::InvalidInput("command line: --dtype: unknown dtype '" + name +
                                  "'; allowed values: fp32, bf16, fp8, int8");
    }
    r->dtypes.push_back(*dt);
  }
  r->slo_tpot_s = f.slo_tpot;
  r->slo_ttft_s = f.slo_ttft;
  r->disaggregation = !f.no_disaggregation;
  return Status::Ok();
}

int Compare(const CompareFlags& f) {
  auto fail = [](const Status& s) {
    std::fprintf(stderr, "clusterbench compare-hardware: %s\n", s.message().c_str());
    return s.ExitCode();
  };
  InstallCancelHandlers();
  SearchRequest req;
  if (Status s = ParseRequest(f, &req); !s.ok()) return fail(s);
  DeviceCatalog catalog;
  if (Status s = DeviceCatalog::Load(f.catalog_dir.empty() ? DefaultCatalogDir() : f.catalog_dir,
                                     &catalog);
      !s.ok()) {
    return fail(s);
  }
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
      return fail(Status::InvalidInput("command line: --systems: unknown system '" + name +
                                       "'; allowed values: " + known));
    }
    systems.push_back(e);
  }
  if (systems.empty()) {
    for (const CatalogEntry& e : catalog.entries()) {
      if (e.type == "system") systems.push_back(&e);
    }
  }
  std::vector<SystemResult> rows;
  json doc = {{"model", req.base.model.name},
              {"prompt_len", f.prompt_len},
              {"gen_len", f.gen_len},
              {"slo_tpot_seconds", f.slo_tpot},
              {"slo_ttft_seconds", f.slo_ttft},
              {"model_version", sim::kModelVersion},
              {"how", "modelled"},
              {"systems", json::array()}};
  for (const CatalogEntry* e : systems) {
    const auto t0 = std::chrono::steady_clock::now();
    SystemResult r;
    if (Status s = SearchSystem(req, catalog, *e, &r); !s.ok()) return fail(s);
    std::fprintf(stderr, "clusterbench compare-hardware: %s: %zu layouts costed in %.1f s\n",
                 e->id.c_str(), r.points.size(),
                 std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    doc["systems"].push_back(ResultJson(r));
    rows.push_back(std::move(r));
  }
  const std::string path = !f.out.empty() ? f.out
                                          : f.results_dir + "/compare-hardware/" + NowIso8601() +
                                                "_" + req.base.model.name + ".json";
  std::string safe = path;
  for (size_t i = path.rfind('/') + 1; i < safe.size(); ++i) {
    if (safe[i] == ':') safe[i] = '-';
  }
  if (Status s = WriteFileAtomically(safe, doc.dump(2) + "\n"); !s.ok()) return fail(s);
  std::fprintf(stderr, "clusterbench compare-hardware: every layout costed -> %s\n", safe.c_str());
  if (f.format == "json") {
    json rows_json = json::array();
    for (const json& s : doc["systems"]) {
      json r = s;
      r.erase("points");
      rows_json.push_back(r);
    }
    std::printf("%s\n", rows_json.dump(2).c_str());
  } else {
    PrintTable(f, req.base.model, rows);
  }
  return 0;
}

}  // namespace

CommandFn AddCompareHardwareCommand(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "compare-hardware",
      "For each catalog system, the cheapest simulated layout of a model that meets the latency "
      "objectives: tokens/s per chip and per system, TTFT, TPOT, $/Mtok, J/token, tokens per MW");
  auto f = std::make_shared<CompareFlags>();
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
  cmd->add_option("--format", f->format, "table or json (default table)")
      ->check(CLI::IsMember({"table", "json"}));
  cmd->add_option("--out", f->out,
                  "File for every costed layout (default "
                  "RESULTS_DIR/compare-hardware/TIME_MODEL.json)");
  cmd->add_option("--results-dir", f->results_dir, "Results root (default results)");
  cmd->add_option("--catalog", f->catalog_dir,
                  "Device catalog directory (default backends/devices)");
  return [f] { return Compare(*f); };
}

}  // namespace cb
