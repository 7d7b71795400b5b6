#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <set>

#include "backends/comm/mpi_world.h"
#include "backends/registry.h"
#include "harness/cancel.h"
#include "harness/cli/commands.h"
#include "harness/cli/cost_flags.h"
#include "harness/cli/serving_flags.h"
#include "harness/cli/sim_cluster.h"
#include "harness/cost/run_energy_cost.h"
#include "harness/fault_injection.h"
#include "harness/micro/ceilings.h"
#include "harness/parallel.h"
#include "harness/plan.h"
#include "harness/runner.h"
#include "harness/scenarios/serving_metrics.h"
#include "harness/scenarios/serving_runner.h"
#include "harness/scenarios/sweep_summary.h"
#include "results/formats.h"
#include "results/prometheus/prometheus_sink.h"
#include "results/record_json.h"

namespace cb {
namespace {

using nlohmann::json;

struct RunFlags {
  std::string model, suite, backend, dtype, batch, prompt_len, gen_len, layers, seed, routing;
  int repetitions = 0, warmup = 0, verify_len = 0;
  bool no_verify = false, remeasure = false, quiet = false;
  std::string results_dir = "results", out, format = "table", inject_fault;
  int tp = 1, dp = 0;  ///< dp 0: world size / tp
  int ep = 1;          ///< expert parallelism (MoE): experts sharded over the dp ranks
  CLI::Option* tp_opt = nullptr;
  std::string system;                         ///< sim: a catalog system of virtual devices
  int devices = 0;                            ///< sim: virtual devices in this process
  double collective_timeout_s = 300;          ///< bound on every MPI collective
  std::map<std::string, CLI::Option*> given;  ///< workload field -> its option
  CostFlags cost;                             ///< cost-model inputs, --energy, --catalog
  ServingFlags serving;                       ///< --scenario, server load, validity, sweeps
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

Status BuildOverrides(const RunFlags& f, json* overrides) {
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
  if (f.given.at("repetitions")->count()) (*overrides)["repetitions"] = f.repetitions;
  if (f.given.at("warmup")->count()) (*overrides)["warmup"] = f.warmup;
  if (f.given.at("verify_len")->count()) (*overrides)["verify_len"] = f.verify_len;
  if (f.no_verify) (*overrides)["verify"] = false;
  CB_RETURN_IF_ERROR(ServingFlagsToOverrides(f.serving, overrides));
  return CostFlagsToOverrides(f.cost, overrides);
}

std::string SuitePath(const std::string& suite) {
  if (suite.find('/') != std::string::npos || suite.ends_with(".json")) return suite;
  return DataDir() + "/workloads/suites/" + suite + ".json";
}

std::string RunFileName(const RunRecord& r) {
  std::string name = r.run_id + "_" + r.workload.model.name + "_" + r.workload.backend + "_" +
                     std::string(DTypeName(r.workload.dtype)) + "_b" +
                     std::to_string(r.workload.batch) +
                     (r.workload.scenario == "offline" ? "" : "_" + r.workload.scenario) + ".json";
  for (char& c : name) {
    if (c == '/' || c == ' ') c = '_';
  }
  return name;
}

std::string Describe(const WorkloadSpec& w) {
  std::string scenario;
  if (w.scenario != "offline") {
    scenario = " " + w.scenario;
    if (w.scenario == "server") {
      scenario += w.serving.rate > 0 ? " at " + std::to_string(w.serving.rate) + " req/s"
                                     : " " + std::to_string(w.serving.concurrency) + " in flight";
    }
  }
  return w.model.name + scenario + " " + w.backend + " " + std::string(DTypeName(w.dtype)) +
         " batch " + std::to_string(w.batch) + " prompt " + std::to_string(w.prompt_len) + " gen " +
         std::to_string(w.gen_len) +
         (w.Extrapolated() ? " (" + std::to_string(w.LayersRun()) + "/" +
                                 std::to_string(w.model.num_layers) + " layers, extrapolated)"
                           : "");
}

int Fail(const Status& s) {
  std::fprintf(stderr, "clusterbench run: %s\n", s.message().c_str());
  return s.ExitCode();
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
  {
    std::string probe;
    if (Status s = FormatRuns({}, f.format, &probe); !s.ok()) return Fail(s);
  }
  if (!f.publish.push.url.empty()) {
    std::string host, port;
    if (Status s = prom::ParsePushUrl(f.publish.push.url, &host, &port); !s.ok()) return Fail(s);
  }

  World& world = World::Get();
  // The simulated backend: --system/--devices are virtual devices in this one process.
  SimCluster sim_cluster;
  if (world.size() > 1 && (!f.system.empty() || f.devices > 1)) {
    return Fail(Status::InvalidInput(
        "command line: --system and --devices simulate devices in one process; under mpirun "
        "each rank drives one simulated device"));
  }
  if (Status s = sim_cluster.Prepare(
          {f.system, f.devices, f.tp_opt->count() ? f.tp : 0, f.dp, false, world.size() == 1},
          f.cost.catalog_dir, &plan);
      !s.ok()) {
    return Fail(s);
  }
  ParallelGroups groups;
  if (!sim_cluster.active()) {
    const int dp = f.dp > 0 ? f.dp : std::max(1, world.size() / std::max(1, f.tp));
    if (Status s = groups.Init(f.tp, dp, world, f.collective_timeout_s, f.ep); !s.ok())
      return Fail(s);
  }
  const ParallelContext& par = sim_cluster.active() ? sim_cluster.context() : groups.context();
  const bool rank0 = par.world_rank == 0;
  for (const WorkloadSpec& w : plan) {
    OpStream probe;
    if (Status s = BuildDenseDecoderStream(w.model, ShardSpec{par.tp, 0}, w.LayersRun(), &probe);
        !s.ok()) {
      return Fail(Status(s.code(), Describe(w) + ": " + s.message()));
    }
    if ((w.scenario == "single-stream" || w.scenario == "server") &&
        (par.world_size > 1 || par.tp > 1 || par.dp > 1)) {
      return Fail(Status::InvalidInput(Describe(w) + ": the " + w.scenario +
                                       " scenario runs on one device (no MPI ranks, --tp, "
                                       "--dp, --system or --devices)"));
    }
    if (w.batch < par.dp) {
      return Fail(Status::InvalidInput(Describe(w) + ": batch " + std::to_string(w.batch) +
                                       " is smaller than --dp " + std::to_string(par.dp)));
    }
  }

  EnergyCostPlanner energy_cost;
  if (Status s = energy_cost.Init(f.cost.catalog_dir, f.cost.energy); !s.ok()) return Fail(s);

  // Pre-flight: every backend opens and every workload fits before anything is measured.
  std::map<std::string, std::unique_ptr<Device>> devices;
  for (const WorkloadSpec& w : plan) {
    auto& dev = devices[w.backend];
    if (!dev) {
      if (Status s = OpenDevice(w.backend, &dev); !s.ok()) return Fail(s);
      sim_cluster.Configure(*dev);
      if (!f.inject_fault.empty()) {
        if (Status s = WrapWithFault(f.inject_fault, par.world_rank, std::move(dev), &dev); !s.ok())
          return Fail(s);
      }
    }
    if (Status s = energy_cost.Check(w, dev->Props()); !s.ok()) return Fail(s);
    const uint64_t available = dev->Props().mem_bytes;
    WorkloadSpec replica_w = w;  // a device holds its replica's sequences only
    replica_w.batch = LocalBatch(w.batch, par.dp, 0);
    const MemoryEstimate mem = EstimateMemory(replica_w);
    if (available > 0 && PerDevicePeak(mem, par.tp) > available) {
      return Fail(Status::Exhausted(
          Describe(w) + ": needs about " + std::to_string(PerDevicePeak(mem, par.tp) >> 20) +
          " MiB per device (weights " + std::to_string(mem.weights >> 20) + ", KV cache " +
          std::to_string(mem.kv_cache >> 20) + ", verification " +
          std::to_string(mem.verification >> 20) + " MiB), " + std::to_string(available >> 20) +
          " MiB available; use --layers N, a smaller --batch, "
          "shorter --prompt-len/--gen-len, or --no-verify"));
    }
  }

  Ceilings ceilings;
  // Only rank 0 computes the job's figures, so only it needs (and measures) the ceilings;
  // simulated devices use their modelled peaks instead.
  const bool need_ceilings = std::any_of(plan.begin(), plan.end(), [&](const WorkloadSpec& w) {
    return !devices[w.backend]->Props().simulated;
  });
  if (Status s = rank0 && need_ceilings
                     ? LoadOrMeasureCeilings(f.results_dir, f.remeasure, &ceilings)
                     : Status::Ok();
      !s.ok()) {
    std::fprintf(stderr, "clusterbench run: warning: no ceilings (%s); MFU and MBU are omitted\n",
                 s.message().c_str());
    ceilings = Ceilings{};
  }
  if (CancelRequested()) return Fail(Status::Cancelled("interrupted before the first run"));
  if (par.world_size > 1) {
    // Rank 0 may have spent a while measuring ceilings: wait for it without the timeout.
    world.set_collective_timeout(0);
    if (Status s = par.world->Barrier(); !s.ok()) return Fail(s);
    world.set_collective_timeout(f.collective_timeout_s);
  }

  // Ceilings sampled beside every measured window of a device that uses the host's ceilings
  // (harness/ceiling_check.h), on every rank; a test fault replaces the probe with a fake.
  std::unique_ptr<CeilingProbe> host_probe = MakeFaultyCeilingProbe(f.inject_fault);
  if (!host_probe) host_probe = std::make_unique<HostCeilingProbe>();

  const std::string out_dir = f.out.empty() ? f.results_dir + "/runs" : f.out;
  std::vector<RunRecord> records;
  bool any_bad = false;
  for (size_t i = 0; i < plan.size(); ++i) {
    const WorkloadSpec& w = plan[i];
    RunnerOptions opts;
    opts.ceilings = ceilings;
    if (const DeviceProps props = devices[w.backend]->Props(); props.simulated) {
      opts.ceilings = SimCluster::CeilingsOf(props);
    } else if (rank0 && w.backend == "cuda") {
      // MFU and MBU of a GPU run are against the GPU's own ceilings (cuBLAS GEMM per dtype,
      // device-to-device copy), measured once per process, not the host CPU's.
      static Ceilings gpu;
      static const Status gpu_status = [&] {
        Status s = MeasureBackendCeilings(w.backend, gpu.matmul_flops_per_s,
                                          &gpu.mem_read_bytes_per_s, &gpu.source);
        if (!s.ok()) {
          std::fprintf(stderr,
                       "clusterbench run: warning: no GPU ceilings (%s); MFU and MBU are "
                       "omitted\n",
                       s.message().c_str());
        }
        return s;
      }();
      opts.ceilings = gpu_status.ok() ? gpu : Ceilings{};
    } else if (w.backend != "cuda") {
      opts.ceiling_probe = host_probe.get();
    }
    opts.quiet = f.quiet || !rank0;
    opts.parallel = &par;
    opts.progress_prefix = "[" + std::to_string(i + 1) + "/" + std::to_string(plan.size()) + "]";
    if (!opts.quiet) {
      std::fprintf(stderr, "%s %s%s\n", opts.progress_prefix.c_str(), Describe(w).c_str(),
                   par.world_size > 1
                       ? (" on " + std::to_string(par.world_size) + " ranks (tp " +
                          std::to_string(par.tp) + " x dp " + std::to_string(par.dp) + ")")
                             .c_str()
                       : "");
    }
    RunRecord rec;
    StampRun(&rec);
    std::unique_ptr<EnergyMeter> meter;
    std::string energy_note;
    if (Status ms =
            energy_cost.MakeMeter(w, *devices[w.backend], &meter, &opts.energy, &energy_note);
        !ms.ok()) {
      return Fail(ms);
    }
    if (!energy_note.empty() && !f.quiet) {
      std::fprintf(stderr, "%s %s\n", opts.progress_prefix.c_str(), energy_note.c_str());
    }
    Status s;
    try {
      s = RunScenario(w, *devices[w.backend], opts, &rec);
    } catch (const std::exception& e) {
      rec.status = "failed";
      rec.status_message = std::string("exception: ") + e.what();
    }
    if (par.world_size > 1 && s.ok() && (rec.status == "failed" || rec.status == "invalid") &&
        rec.verification.status != "failed") {
      // A rank that stopped mid-run leaves the others inside collectives: end the whole job.
      if (rec.status == "invalid") rec.status = "failed";
      world.NotifyFailure(rec.status_message);
      if (rank0) {
        rec.end_time = NowIso8601();
        const std::string path = out_dir + "/" + RunFileName(rec);
        if (WriteFileAtomically(path, ToJson(rec).dump(2) + "\n").ok()) {
          std::fprintf(stderr, "clusterbench run: the failed run is recorded in %s\n",
                       path.c_str());
        }
        std::fprintf(stderr, "clusterbench run: %s failed: %s\n", Describe(w).c_str(),
                     rec.status_message.c_str());
      }
      world.AbortJob(1);
    }
    sim_cluster.Annotate(i, &rec);
    energy_cost.Finish(w, &rec);
    sim_cluster.FinishCost(&rec);
    FixServingEnergyCost(&rec);
    if (s.code() == StatusCode::kCancelled) {
      std::fprintf(stderr,
                   "clusterbench run: interrupted; the run in progress was discarded, %zu "
                   "finished run(s) are in %s\n",
                   records.size(), out_dir.c_str());
      return 130;
    }
    if (!s.ok()) return Fail(s);
    if (!rank0) continue;  // only rank 0 writes results
    rec.end_time = NowIso8601();
    const std::string path = out_dir + "/" + RunFileName(rec);
    if (Status ws = WriteFileAtomically(path, ToJson(rec).dump(2) + "\n"); !ws.ok()) {
      std::fprintf(stderr, "clusterbench run: %s\n", ws.message().c_str());
      any_bad = true;
    } else if (!f.quiet) {
      std::string what = rec.status_message.empty() ? "done" : rec.status_message;
      if (rec.status == "ok" && !rec.Publishable()) {  // kept, but shortened or unstable
        what = "not published as valid";
        for (const std::string& r : rec.validity->reasons) {
          if (r.rfind("note:", 0) != 0) what += "; " + r;
        }
      }
      std::fprintf(stderr, "%s %s: %s -> %s\n", opts.progress_prefix.c_str(), rec.status.c_str(),
                   what.c_str(), path.c_str());
    }
    any_bad |= rec.status == "failed" || rec.status == "invalid";
    records.push_back(std::move(rec));
  }
  if (!rank0) return 0;
  std::string text;
  if (Status s = FormatRuns(records, f.format, &text); !s.ok()) return Fail(s);
  if (!text.empty() && text.back() != '\n') text += '\n';
  std::fputs(text.c_str(), stdout);
  // Sweeps: the frontier summary, printed (stderr when stdout carries json or csv) and written.
  for (const SweepSummary& sweep : SummarizeSweeps(records)) {
    const std::string summary = FormatSweepSummary(sweep);
    const bool to_stdout = f.format == "table" || f.format == "md";
    if (to_stdout || !f.quiet) std::fputs(summary.c_str(), to_stdout ? stdout : stderr);
    // In a subdirectory: the run directory holds run records only (`cost DIR` reads them all).
    const std::string path =
        out_dir + "/sweeps/" + records.front().run_id + "_" + sweep.group + ".json";
    if (Status ws = WriteFileAtomically(path, SweepSummaryToJson(sweep).dump(2) + "\n"); !ws.ok()) {
      std::fprintf(stderr, "clusterbench run: %s\n", ws.message().c_str());
      any_bad = true;
    } else if (!f.quiet) {
      std::fprintf(stderr, "sweep %s summary -> %s\n", sweep.group.c_str(), path.c_str());
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
  g["backend"] =
      cmd->add_option("--backend", f->backend,
                      "Backend: cpu, reference, sim or sim:DEVICE (a catalog device; default cpu)");
  g["dtype"] = cmd->add_option("--dtype", f->dtype, "fp32 or bf16 (default bf16)");
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
  cmd->add_option("--results-dir", f->results_dir, "Results root (ceilings cache lives here)")
      ->default_val("results");
  cmd->add_option("--out", f->out, "Directory for the run files (default RESULTS_DIR/runs)");
  cmd->add_option("--format", f->format, "stdout format: table, json, md, csv")
      ->default_val("table");
  cmd->add_flag("--remeasure-ceilings", f->remeasure, "Re-run the micro-suite ceilings first");
  cmd->add_flag("--quiet,-q", f->quiet, "No progress on stderr");
  AddCostFlags(cmd, &f->cost, /*with_energy=*/true);
  AddServingFlags(cmd, &f->serving);
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
  cmd->add_option("--system", f->system,
                  "sim: a catalog system of virtual devices (cloudmatrix-384, gb200-nvl72, "
                  "hgx-h100-8) with its interconnect, power and price")
      ->group("Simulated backend");
  cmd->add_option("--devices", f->devices, "sim: virtual devices in this process (tp x dp)")
      ->check(CLI::PositiveNumber)
      ->group("Simulated backend");
  cmd->add_option("--ep", f->ep,
                  "MoE expert parallelism (MPI, tp 1): experts sharded over N ranks, each "
                  "running attention for its share of the sequences");
  cmd->add_option("--dp", f->dp, "Data-parallel replicas (MPI; default: ranks / tp)")
      ->check(CLI::PositiveNumber);
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
