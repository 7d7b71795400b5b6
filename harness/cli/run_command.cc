#include <cstdio>
#include <map>
#include <optional>

#include "backends/comm/mpi_world.h"
#include "harness/cancel.h"
#include "harness/cli/commands.h"
#include "harness/cli/compare_hardware.h"
#include "harness/cli/cost_flags.h"
#include "harness/cli/endpoint_flags.h"
#include "harness/cli/output.h"
#include "harness/cli/serving_flags.h"
#include "harness/core/cancel_flag.h"
#include "harness/plan.h"
#include "harness/run_plan.h"
#include "harness/scenarios/sweep_summary.h"
#include "results/atomic_file.h"
#include "results/formats.h"
#include "results/prometheus/prometheus_sink.h"
#include "workloads/json_fields.h"

namespace cb {
namespace {

using nlohmann::json;

struct RunFlags {
  std::string model, suite, backend, dtype, batch, prompt_len, gen_len, layers, seed, routing;
  std::string kv_dtype, disaggregate;
  int redundant_experts = 0, mtp = 0;
  double mtp_acceptance = 0.85;
  bool overlap = false;
  int repetitions = 0, warmup = 0, verify_len = 0;
  bool no_verify = false, remeasure = false, quiet = false, op_breakdown = false;
  std::string results_dir = "results", out, inject_fault;
  std::string cluster_name;             ///< --cluster-name: the `cluster` label of measured runs
  std::shared_ptr<OutputFlags> output;  ///< --format, -o/--output
  int tp = 1, dp = 0;                   ///< dp 0: world size / tp
  int ep = 1;  ///< expert parallelism (MoE): experts sharded over the dp ranks
  CLI::Option* tp_opt = nullptr;
  CLI::Option* out_opt = nullptr;
  std::string system;                         ///< sim: a catalog system of virtual devices
  int devices = 0;                            ///< sim: virtual devices in this process
  double collective_timeout_s = 300;          ///< bound on every MPI collective
  std::map<std::string, CLI::Option*> given;  ///< workload field -> its option
  CostFlags cost;                             ///< cost-model inputs, --energy, --catalog
  ServingFlags serving;                       ///< --scenario, server load, validity, sweeps
  EndpointFlags endpoint;                     ///< --backend endpoint:URL's settings
  prom::PublishOptions publish;               ///< --push, --textfile
};

/// "1,8,32" -> [1, 8, 32]; "bf16" -> "bf16".
Status ListValue(const std::string& flag, const std::string& text, bool integers, json* out) {
  json values = json::array();
  size_t start = 0;
  while (start <= text.size()) {
    const size_t comma = text.find(',', start);
    const std::string item =
        text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (item.empty())
      return Status::InvalidInput("command line: " + flag + " '" + text + "' has an empty item");
    if (integers) {
      size_t used = 0;
      long long v = 0;
      try {
        v = std::stoll(item, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used != item.size()) {
        return Status::InvalidInput("command line: " + flag + " expects integers, got '" + item +
                                    "'");
      }
      values.push_back(v);
    } else {
      values.push_back(item);
    }
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  *out = values.size() == 1 ? values[0] : values;
  return Status::Ok();
}

/// --dtype (a comma-separated list) and --kv-dtype name known dtypes: the error names the flag.
Status CheckDTypeFlags(const RunFlags& f) {
  if (f.given.at("dtype")->count()) {
    size_t start = 0;
    for (;;) {
      const size_t comma = f.dtype.find(',', start);
      const std::string item = f.dtype.substr(start, comma - start);
      if (!ParseDType(item)) {
        return Status::InvalidInput("--dtype: unknown dtype '" + item +
                                    "'; allowed values: " + kDTypeNames);
      }
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
  }
  const auto kv = ParseDType(f.kv_dtype);
  if (f.given.at("kv_dtype")->count() && (!kv || *kv == DType::kF16 || *kv == DType::kF32)) {
    return Status::InvalidInput("--kv-dtype: unknown KV-cache dtype '" + f.kv_dtype +
                                "'; allowed values: bf16, fp8, int8");
  }
  return Status::Ok();
}

Status BuildOverrides(const RunFlags& f, json* overrides) {
  CB_RETURN_IF_ERROR(CheckDTypeFlags(f));
  struct Field {
    const char* key;
    const std::string* text;
    bool integers;
  };
  const Field list_fields[] = {{"model", &f.model, false},          {"backend", &f.backend, false},
                               {"dtype", &f.dtype, false},          {"batch", &f.batch, true},
                               {"prompt_len", &f.prompt_len, true}, {"gen_len", &f.gen_len, true},
                               {"layers", &f.layers, true},         {"seed", &f.seed, true},
                               {"routing", &f.routing, false}};
  *overrides = json::object();
  for (const Field& field : list_fields) {
    const CLI::Option* opt = f.given.at(field.key);
    if (opt->count() == 0) continue;
    CB_RETURN_IF_ERROR(
        ListValue(opt->get_name(), *field.text, field.integers, &(*overrides)[field.key]));
  }
  if (f.given.at("kv_dtype")->count()) (*overrides)["kv_dtype"] = f.kv_dtype;
  if (f.given.at("disaggregate")->count()) (*overrides)["disaggregate"] = f.disaggregate;
  if (f.given.at("redundant_experts")->count()) {
    (*overrides)["redundant_experts"] = f.redundant_experts;
  }
  if (f.given.at("mtp")->count()) (*overrides)["mtp"] = f.mtp;
  if (f.given.at("mtp_acceptance")->count()) (*overrides)["mtp_acceptance"] = f.mtp_acceptance;
  if (f.overlap) (*overrides)["overlap"] = true;
  // One process: --system/--devices/--tp/--dp/--ep lay out simulated devices (workload fields);
  // under mpirun --tp/--dp/--ep are the job's layout.
  if (World::Get().size() == 1) {
    if (!f.system.empty()) (*overrides)["system"] = f.system;
    if (f.devices > 0) (*overrides)["devices"] = f.devices;
    if (f.tp_opt->count()) (*overrides)["tp"] = f.tp;
    if (f.given.at("dp")->count()) (*overrides)["dp"] = f.dp;
    if (f.given.at("ep")->count()) (*overrides)["ep"] = f.ep;
  }
  if (f.given.at("repetitions")->count()) (*overrides)["repetitions"] = f.repetitions;
  if (f.given.at("warmup")->count()) (*overrides)["warmup"] = f.warmup;
  if (f.given.at("verify_len")->count()) (*overrides)["verify_len"] = f.verify_len;
  if (f.no_verify) (*overrides)["verify"] = false;
  if (f.op_breakdown) (*overrides)["op_breakdown"] = true;
  CB_RETURN_IF_ERROR(ServingFlagsToOverrides(f.serving, overrides));
  EndpointFlagsToOverrides(f.endpoint, overrides);
  return CostFlagsToOverrides(f.cost, overrides);
}

std::string SuitePath(const std::string& suite) {
  if (suite.find('/') != std::string::npos || suite.ends_with(".json")) return suite;
  return DataDir() + "/workloads/suites/" + suite + ".json";
}

int Fail(const Status& s) {
  std::fprintf(stderr, "clusterbench run: %s\n", s.message().c_str());
  return s.ExitCode();
}

/// The suite's `compare_hardware` section, if it has one (checked before anything runs).
Status SuiteCompareHardware(const RunFlags& f, std::optional<CompareHardwareFlags>* out) {
  if (f.suite.empty()) return Status::Ok();
  const std::string path = SuitePath(f.suite);
  std::string text;
  CB_RETURN_IF_ERROR(ReadFile(path, &text));
  json doc;
  CB_RETURN_IF_ERROR(ParseJsonText(text, path, &doc));
  if (!doc.is_object() || !doc.contains("compare_hardware")) return Status::Ok();
  CompareHardwareFlags c;
  CB_RETURN_IF_ERROR(CompareHardwareFromSuite(doc["compare_hardware"], path, &c));
  c.results_dir = f.results_dir;
  c.catalog_dir = f.cost.catalog_dir;
  c.quiet = f.quiet;
  c.format = f.output->format;
  *out = c;
  return Status::Ok();
}

/// After the plan: the suite's supercluster comparison (modelled), below the table (stderr when
/// stdout carries csv or json, as the sweep summaries).
Status PrintCompareHardware(const CompareHardwareFlags& c) {
  const bool to_stdout = c.format == "table" || c.format == "md";
  CompareHardwareFlags shown = c;
  if (!to_stdout) shown.format = "table";
  std::string text;
  CB_RETURN_IF_ERROR(RunCompareHardware(shown, &text));
  if (to_stdout || !c.quiet) std::fputs(("\n" + text).c_str(), to_stdout ? stdout : stderr);
  return Status::Ok();
}

int Run(const RunFlags& f) {
  InstallCancelHandlers();
  json overrides;
  if (Status s = BuildOverrides(f, &overrides); !s.ok()) return Fail(s);
  std::vector<WorkloadSpec> plan;
  if (f.suite.empty() && f.model.empty()) {
    return Fail(
        Status::InvalidInput("give --model NAME|FILE or --suite NAME|FILE (e.g. --suite default)"));
  }
  if (!f.suite.empty()) {
    if (Status s = LoadSuiteFile(SuitePath(f.suite), overrides, &plan); !s.ok()) return Fail(s);
  } else {
    json suite = {{"workloads", json::array({overrides})}};
    if (Status s = ExpandSuite(suite, json::object(), "command line", &plan); !s.ok())
      return Fail(s);
  }
  std::optional<CompareHardwareFlags> compare_hw;
  if (Status s = SuiteCompareHardware(f, &compare_hw); !s.ok()) return Fail(s);
  if (!f.publish.push.url.empty()) {
    std::string host, port;
    if (Status s = prom::ParsePushUrl(f.publish.push.url, &host, &port); !s.ok()) return Fail(s);
  }
  if (World::Get().size() > 1 && (!f.system.empty() || f.devices > 0)) {
    return Fail(Status::InvalidInput(
        "command line: --system and --devices simulate devices in one process; under mpirun "
        "each rank drives one simulated device"));
  }
  if (f.out_opt->count() && f.out.empty()) {
    return Fail(Status::InvalidInput("command line: --out: must not be empty (a directory)"));
  }
  if (f.results_dir.empty()) {
    return Fail(Status::InvalidInput("command line: --results-dir: must not be empty"));
  }
  PlanRunOptions o;
  o.results_dir = f.results_dir;
  o.out_dir = f.out;
  o.remeasure_ceilings = f.remeasure;
  o.quiet = f.quiet;
  o.inject_fault = f.inject_fault;
  o.tp = f.tp;
  o.dp = f.dp;
  o.ep = f.ep;
  o.collective_timeout_s = f.collective_timeout_s;
  o.catalog_dir = f.cost.catalog_dir;
  o.energy = f.cost.energy;
  o.cluster_name = f.cluster_name;
  PlanRunResult result;
  if (Status s = RunPlan(std::move(plan), o, &result); !s.ok()) {
    World& world = World::Get();
    if (s.code() == StatusCode::kCancelled) {
      if (world.size() > 1) {
        // The other ranks learn at their next collective and end too; rank 0 ends the job.
        world.NotifyFailure(kInterruptedNotice);
        world.AbortJob(130);
      }
      return 130;
    }
    if (world.size() > 1 && world.rank() != 0) return s.ExitCode();  // rank 0 says why
    return Fail(s);
  }
  if (!result.rank0) return 0;
  const std::vector<RunRecord>& records = result.records;
  bool any_bad = result.any_bad;
  std::string text;
  const std::string& format = f.output->format;
  if (Status s = FormatRuns(records, format, &text); !s.ok()) return Fail(s);
  if (!text.empty() && text.back() != '\n') text += '\n';
  std::fputs(text.c_str(), stdout);
  // Sweeps: the frontier summary, printed (stderr when stdout carries json or csv) and written.
  for (const SweepSummary& sweep : SummarizeSweeps(records)) {
    const std::string summary = FormatSweepSummary(sweep);
    const bool to_stdout = format == "table" || format == "md";
    if (to_stdout || !f.quiet) std::fputs(summary.c_str(), to_stdout ? stdout : stderr);
    // In a subdirectory: the run directory holds run records only (`cost DIR` reads them all).
    const std::string path =
        result.out_dir + "/sweeps/" + records.front().run_id + "_" + sweep.group + ".json";
    if (Status ws = WriteFileAtomically(path, SweepSummaryToJson(sweep).dump(2) + "\n"); !ws.ok()) {
      std::fprintf(stderr, "clusterbench run: %s\n", ws.message().c_str());
      any_bad = true;
    } else if (!f.quiet) {
      std::fprintf(stderr, "sweep %s summary -> %s\n", sweep.group.c_str(), path.c_str());
    }
  }
  if (compare_hw) {
    if (Status s = PrintCompareHardware(*compare_hw); !s.ok()) {
      std::fprintf(stderr, "clusterbench run: compare_hardware: %s\n", s.message().c_str());
      any_bad = true;
    }
  }
  std::fflush(stdout);
  // Prometheus sinks last: the JSON files are written whatever happens to the push.
  prom::PublishOptions publish = f.publish;
  publish.push.quiet = f.quiet;
  const int publish_code = prom::Publish(records, publish);
  return any_bad ? 1 : publish_code;
}

}  // namespace

CommandFn AddRunCommand(CLI::App& app) {
  auto* cmd = app.add_subcommand("run", "Run one workload or a suite of workloads and report them");
  auto f = std::make_shared<RunFlags>();
  auto& g = f->given;
  g["model"] = cmd->add_option("--model", f->model,
                               "Model preset name or JSON file (comma-separated list expands)");
  cmd->add_option("--suite", f->suite,
                  "Suite name (workloads/suites/NAME.json) or file; flags given override it");
  g["backend"] = cmd->add_option("--backend", f->backend,
                                 "Backend: cpu, reference, sim, sim:DEVICE (a catalog device) or "
                                 "endpoint:URL (an OpenAI-compatible server; default cpu)");
  g["dtype"] = cmd->add_option("--dtype", f->dtype,
                               "fp32, bf16 (default), fp8 or int8 (W8A8); list expands");
  g["kv_dtype"] = cmd->add_option("--kv-dtype", f->kv_dtype,
                                  "KV-cache dtype: bf16, fp8 or int8 (default: bf16 for 8-bit "
                                  "compute, else the dtype)");
  g["batch"] = cmd->add_option("--batch", f->batch, "Sequences per batch (default 1)");
  g["prompt_len"] = cmd->add_option("--prompt-len", f->prompt_len, "Prompt tokens (default 128)");
  g["gen_len"] =
      cmd->add_option("--gen-len", f->gen_len, "Decode steps after the prefill (default 32)");
  g["layers"] = cmd->add_option("--layers", f->layers,
                                "Run N decoder layers and extrapolate to the model's count");
  g["seed"] = cmd->add_option("--seed", f->seed, "Seed of weights and prompts (default 1)");
  g["routing"] = cmd->add_option("--routing", f->routing,
                                 "MoE expert load: uniform (default) or zipf:S, a router bias "
                                 "-S*ln(e+1) on expert e (docs/moe-and-mla.md)");
  g["repetitions"] =
      cmd->add_option("--repetitions", f->repetitions, "Measured repetitions (default 5)")
          ->check(CLI::PositiveNumber);
  g["warmup"] = cmd->add_option("--warmup", f->warmup, "Unmeasured warm-up repetitions (default 1)")
                    ->check(CLI::NonNegativeNumber);
  g["verify_len"] =
      cmd->add_option("--verify-len", f->verify_len,
                      "Teacher-forced tokens checked against the reference (0 = auto)");
  cmd->add_flag("--no-verify", f->no_verify, "Skip the reference check (results say not_run)");
  cmd->add_flag("--op-breakdown", f->op_breakdown,
                "After the measured window, time one prefill and a few decode steps op by op and "
                "report each op kind's share of the step (single-rank runs on a real device)");
  cmd->add_option("--results-dir", f->results_dir, "Results root (ceilings cache lives here)")
      ->default_val("results");
  f->out_opt =
      cmd->add_option("--out", f->out, "Directory for the run files (default RESULTS_DIR/runs)");
  f->output = AddOutputFlags(cmd, {"table", "md", "csv", "json", "jsonl"}, "table");
  cmd->add_option("--cluster-name", f->cluster_name,
                  "Name of the set of devices, the Prometheus `cluster` label of the measured runs "
                  "(default: the host; simulated runs: the system's name)");
  cmd->add_flag("--remeasure-ceilings", f->remeasure, "Re-run the micro-suite ceilings first");
  cmd->add_flag("--quiet,-q", f->quiet, "No progress on stderr");
  AddCostFlags(cmd, &f->cost, /*with_energy=*/true);
  AddServingFlags(cmd, &f->serving);
  AddEndpointFlags(cmd, &f->endpoint);
  auto& push = f->publish.push;
  cmd->add_option("--push", push.url,
                  "Push the results to this Prometheus Pushgateway (http://HOST:PORT) at the end");
  cmd->add_option("--push-timeout", push.timeout_s, "Seconds one push attempt may take")
      ->default_val(10)
      ->check(CLI::PositiveNumber);
  cmd->add_option("--push-retries", push.retries, "Push attempts after the first, with backoff")
      ->default_val(2)
      ->check(CLI::Range(0, 10));
  cmd->add_option("--textfile", f->publish.textfile,
                  "Also write the metrics to this file for node_exporter's textfile collector");
  f->tp_opt = cmd->add_option("--tp", f->tp,
                              "Tensor-parallel ranks per model replica (MPI; sim: default the "
                              "fewest devices that hold the model)")
                  ->check(CLI::PositiveNumber)
                  ->default_val(1);
  g["tp"] = f->tp_opt;
  cmd->add_option("--system", f->system,
                  "sim: a catalog system (cloudmatrix-384, gb200-nvl72, hgx-h100-8, "
                  "hgx-h100-96) with its interconnect, power and price; endpoint: the system "
                  "the server runs on")
      ->group("Simulated backend");
  cmd->add_option("--devices", f->devices,
                  "sim: devices of the deployment; endpoint: devices behind the server (default: "
                  "the system's, else 1)")
      ->check(CLI::PositiveNumber)
      ->group("Simulated backend");
  g["ep"] = cmd->add_option("--ep", f->ep,
                            "MoE expert parallelism (tp 1): experts sharded over N ranks, each "
                            "running attention for its share of the sequences (MPI, or sim)")
                ->check(CLI::PositiveNumber);
  g["dp"] = cmd->add_option("--dp", f->dp,
                            "Data-parallel replicas / attention groups (MPI: default ranks / "
                            "tp; sim: devices / tp)")
                ->check(CLI::PositiveNumber);
  g["disaggregate"] =
      cmd->add_option("--disaggregate", f->disaggregate,
                      "sim: prefill and decode pools, e.g. prefill=32:ep32,decode=320:ep320 "
                      "(DEVICES[:tpN][:epN] each); offline and serving scenarios")
          ->group("Simulated backend");
  g["redundant_experts"] =
      cmd->add_option("--redundant-experts", f->redundant_experts,
                      "sim: extra expert replicas per MoE layer placed on the hottest experts "
                      "(EPLB); experts + redundant must divide by --ep")
          ->check(CLI::NonNegativeNumber)
          ->group("Simulated backend");
  g["mtp"] = cmd->add_option("--mtp", f->mtp,
                             "sim: multi-token prediction drafts per decode step (models with an "
                             "MTP module, e.g. deepseek-v3)")
                 ->check(CLI::Range(0, 8))
                 ->group("Simulated backend");
  g["mtp_acceptance"] = cmd->add_option("--mtp-acceptance", f->mtp_acceptance,
                                        "sim: acceptance rate of each draft (default 0.85, "
                                        "DeepSeek-V3 report)")
                            ->group("Simulated backend");
  cmd->add_flag("--overlap", f->overlap,
                "sim: two-micro-batch overlap of communication with compute")
      ->group("Simulated backend");
  cmd->add_option("--collective-timeout", f->collective_timeout_s,
                  "Seconds any MPI collective may wait before the job is ended")
      ->check(CLI::PositiveNumber)
      ->default_val(300);
  cmd->add_option("--inject-fault", f->inject_fault,
                  "Test only: nan-logits, skew-logits, throw-on-rank:R, ceiling-drift, "
                  "ceiling-low, ceiling-steady")
      ->group("");  // hidden from --help
  return [f] { return Run(*f); };
}

}  // namespace cb
