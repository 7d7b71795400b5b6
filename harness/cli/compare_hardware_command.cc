// `clusterbench compare-hardware`: one workload on every catalog system, simulated.
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>

#include "backends/registry.h"
#include "backends/sim/perf_model.h"
#include "harness/cli/commands.h"
#include "harness/cli/sim_cluster.h"
#include "harness/cost/run_energy_cost.h"
#include "harness/plan.h"
#include "harness/runner.h"

namespace cb {
namespace {

using nlohmann::json;

struct CompareFlags {
  std::string model, systems, dtype = "bf16", format = "table", catalog_dir;
  int64_t batch = 8, prompt_len = 1024, gen_len = 128;
};

struct Row {
  std::string system, device, status, message;
  int devices = 0, tp = 0, dp = 0;
  double chip_tps = NAN, system_tps = NAN, prefill_tps = NAN, tpot_s = NAN, ttft_s = NAN;
  double usd_per_mtok = NAN, j_per_token_chip = NAN, j_per_token_all_in = NAN;
  double tokens_per_mw = NAN, all_in_kw = NAN;
};

double Value(const RunRecord& r, const char* name) {
  const Metric* m = r.FindMetric(name);
  return m ? m->value : NAN;
}

std::string Fmt(double v, const char* f = "%.4g") {
  if (!std::isfinite(v)) return "-";
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

Status CompareOne(const CompareFlags& f, const CatalogEntry& system, const DeviceCatalog& catalog,
                  const EnergyCostPlanner& planner, Row* row) {
  row->system = system.id;
  row->device = system.device;
  json o = {{"model", f.model},
            {"backend", "sim"},
            {"dtype", f.dtype},
            {"batch", f.batch},
            {"prompt_len", f.prompt_len},
            {"gen_len", f.gen_len},
            {"repetitions", 1},
            {"warmup", 0},
            {"verify", false}};
  std::vector<WorkloadSpec> plan;
  CB_RETURN_IF_ERROR(
      ExpandSuite(json{{"workloads", json::array({o})}}, json::object(), "command line", &plan));
  SimCluster cluster;
  CB_RETURN_IF_ERROR(cluster.Prepare({system.id, 0, 0, 0, true}, f.catalog_dir, &plan));
  // --batch is per model replica: the system serves batch x replicas sequences.
  const ParallelContext& par = cluster.context();
  WorkloadSpec& w = plan[0];
  w.batch = f.batch * par.dp;
  row->devices = par.tp * par.dp;
  row->tp = par.tp;
  row->dp = par.dp;
  std::unique_ptr<Device> dev;
  CB_RETURN_IF_ERROR(OpenDevice(w.backend, &dev));
  cluster.Configure(*dev);
  RunnerOptions opts;
  opts.quiet = true;
  opts.parallel = &par;
  opts.ceilings = SimCluster::CeilingsOf(dev->Props());
  std::unique_ptr<EnergyMeter> owned;
  std::string note;
  CB_RETURN_IF_ERROR(planner.MakeMeter(w, *dev, &owned, &opts.energy, &note));
  RunRecord rec;
  CB_RETURN_IF_ERROR(RunOffline(w, *dev, opts, &rec));
  planner.Finish(w, &rec);
  cluster.FinishCost(&rec);
  row->status = rec.status;
  row->message = rec.status_message;
  if (rec.status != "ok") return Status::Ok();
  row->system_tps = Value(rec, "decode_tokens_per_second");
  row->chip_tps = row->system_tps / row->devices;
  row->prefill_tps = Value(rec, "prefill_tokens_per_second");
  row->tpot_s = Value(rec, "tpot_seconds");
  row->ttft_s = Value(rec, "ttft_seconds");
  row->usd_per_mtok = Value(rec, "cost_usd_per_million_output_tokens");
  row->j_per_token_chip = Value(rec, "energy_joules_per_token");
  const double all_in_w = system.all_in_power_w.known() ? system.all_in_power_w.value : NAN;
  row->all_in_kw = all_in_w / 1000;
  row->j_per_token_all_in = all_in_w / row->system_tps;
  row->tokens_per_mw = row->system_tps / (all_in_w / 1e6);
  (void)catalog;
  return Status::Ok();
}

int Compare(const CompareFlags& f) {
  if (f.model.empty()) {
    std::fprintf(stderr, "clusterbench compare-hardware: give --model NAME\n");
    return 2;
  }
  EnergyCostPlanner planner;
  if (Status s = planner.Init(f.catalog_dir, "auto"); !s.ok()) {
    std::fprintf(stderr, "clusterbench compare-hardware: %s\n", s.message().c_str());
    return s.ExitCode();
  }
  const DeviceCatalog& catalog = planner.catalog();
  std::vector<const CatalogEntry*> systems;
  if (f.systems.empty()) {
    for (const CatalogEntry& e : catalog.entries()) {
      if (e.type == "system") systems.push_back(&e);
    }
  } else {
    std::stringstream ss(f.systems);
    std::string name;
    while (std::getline(ss, name, ',')) {
      const CatalogEntry* e = sim::FindEntry(catalog, name);
      if (e == nullptr || e->type != "system") {
        std::fprintf(stderr, "clusterbench compare-hardware: --systems: unknown system '%s'\n",
                     name.c_str());
        return 2;
      }
      systems.push_back(e);
    }
  }
  std::vector<Row> rows;
  for (const CatalogEntry* e : systems) {
    Row row;
    if (Status s = CompareOne(f, *e, catalog, planner, &row); !s.ok()) {
      if (s.ExitCode() == 2) {
        std::fprintf(stderr, "clusterbench compare-hardware: %s: %s\n", e->id.c_str(),
                     s.message().c_str());
        return 2;
      }
      row.status = "failed";
      row.message = s.message();
    }
    rows.push_back(row);
  }
  if (f.format == "json") {
    json out = json::array();
    for (const Row& r : rows) {
      auto num = [](double v) { return std::isfinite(v) ? json(v) : json(nullptr); };
      out.push_back({{"system", r.system},
                     {"device", r.device},
                     {"status", r.status},
                     {"message", r.message},
                     {"devices", r.devices},
                     {"tp", r.tp},
                     {"dp", r.dp},
                     {"decode_tokens_per_second_per_device", num(r.chip_tps)},
                     {"decode_tokens_per_second", num(r.system_tps)},
                     {"prefill_tokens_per_second", num(r.prefill_tps)},
                     {"ttft_seconds", num(r.ttft_s)},
                     {"tpot_seconds", num(r.tpot_s)},
                     {"cost_usd_per_million_output_tokens", num(r.usd_per_mtok)},
                     {"energy_joules_per_token_chip", num(r.j_per_token_chip)},
                     {"energy_joules_per_output_token_all_in", num(r.j_per_token_all_in)},
                     {"output_tokens_per_second_per_megawatt", num(r.tokens_per_mw)},
                     {"all_in_power_kw", num(r.all_in_kw)},
                     {"how", "modelled"},
                     {"model_version", sim::kModelVersion}});
    }
    std::printf("%s\n", out.dump(2).c_str());
  } else {
    std::printf(
        "%s, %s, batch %lld per replica, prompt %lld, gen %lld; simulated (%s), every "
        "figure modelled\n",
        f.model.c_str(), f.dtype.c_str(), static_cast<long long>(f.batch),
        static_cast<long long>(f.prompt_len), static_cast<long long>(f.gen_len),
        sim::kModelVersion);
    std::printf("%-24s %7s %9s %11s %12s %9s %10s %10s %12s %12s %10s\n", "system", "devices",
                "tp x dp", "tok/s/chip", "tok/s/system", "TPOT ms", "$/Mtok out", "J/tok chip",
                "J/tok all-in", "tok/s per MW", "all-in kW");
    for (const Row& r : rows) {
      if (r.status != "ok") {
        std::printf("%-24s %s: %s\n", r.system.c_str(), r.status.c_str(), r.message.c_str());
        continue;
      }
      std::printf("%-24s %7d %9s %11s %12s %9s %10s %10s %12s %12s %10s\n", r.system.c_str(),
                  r.devices, (std::to_string(r.tp) + "x" + std::to_string(r.dp)).c_str(),
                  Fmt(r.chip_tps, "%.1f").c_str(), Fmt(r.system_tps, "%.0f").c_str(),
                  Fmt(r.tpot_s * 1e3, "%.2f").c_str(), Fmt(r.usd_per_mtok, "%.3f").c_str(),
                  Fmt(r.j_per_token_chip, "%.3f").c_str(),
                  Fmt(r.j_per_token_all_in, "%.3f").c_str(), Fmt(r.tokens_per_mw, "%.0f").c_str(),
                  Fmt(r.all_in_kw, "%.1f").c_str());
    }
  }
  for (const Row& r : rows) {
    if (r.status != "ok") return 1;
  }
  return 0;
}

}  // namespace

CommandFn AddCompareHardwareCommand(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "compare-hardware",
      "Simulate one workload on every catalog system (CloudMatrix 384, GB200 NVL72, HGX H100): "
      "tokens/s per chip and per system, $/Mtok, J/token, tokens per MW");
  auto f = std::make_shared<CompareFlags>();
  cmd->add_option("--model", f->model, "Model preset name or JSON file")->required();
  cmd->add_option("--systems", f->systems, "Comma-separated catalog systems (default: all)");
  cmd->add_option("--batch", f->batch, "Sequences per model replica (default 8)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--prompt-len", f->prompt_len, "Prompt tokens (default 1024)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--gen-len", f->gen_len, "Decode steps (default 128)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--dtype", f->dtype, "bf16 or fp32 (default bf16)");
  cmd->add_option("--format", f->format, "table or json (default table)")
      ->check(CLI::IsMember({"table", "json"}));
  cmd->add_option("--catalog", f->catalog_dir,
                  "Device catalog directory (default backends/devices)");
  return [f] { return Compare(*f); };
}

}  // namespace cb
