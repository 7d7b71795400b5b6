#include <cstdio>

#include "backends/registry.h"
#include "harness/cli/commands.h"
#include "harness/cli/output.h"
#include "harness/micro/micro_suite.h"
#include "results/text_table.h"
#include "workloads/model_spec.h"

namespace cb {

namespace {

std::string Num(double v, const char* f) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

/// One row of `models`: the shape, computed and published parameter counts.
void AddModelRow(const ModelSpec& m, TextTable* t) {
  const int64_t hd = m.head_dim > 0 ? m.head_dim : m.hidden_size / m.num_heads;
  std::string published = "-", experts = "-";
  if (m.published_params > 0) {
    published = Num(m.published_params / 1e9, "%.2fB");
    if (m.published_active_params > 0) {
      published += Num(m.published_active_params / 1e9, "/%.2fB");
    }
  }
  if (m.moe.enabled()) {  // routed x top-k (+ shared)
    experts = std::to_string(m.moe.num_experts) + "x" + std::to_string(m.moe.experts_per_token) +
              "+" + std::to_string(m.moe.num_shared_experts);
  }
  const std::string attn = m.mla.enabled() ? "mla" : "gqa";
  t->rows.push_back({m.name, std::to_string(m.hidden_size), std::to_string(m.num_layers),
                     std::to_string(m.num_heads) + "/" + std::to_string(m.num_kv_heads),
                     std::to_string(hd), std::to_string(m.ffn_size), std::to_string(m.vocab_size),
                     std::to_string(m.max_context), Num(m.TotalParams() / 1e9, "%.2fB"),
                     Num(m.ActiveParams() / 1e9, "%.2fB"), experts, attn, published});
  t->records.push_back({{"model", m.name},
                        {"hidden_size", m.hidden_size},
                        {"num_layers", m.num_layers},
                        {"num_heads", m.num_heads},
                        {"num_kv_heads", m.num_kv_heads},
                        {"head_dim", hd},
                        {"ffn_size", m.ffn_size},
                        {"vocab_size", m.vocab_size},
                        {"max_context", m.max_context},
                        {"params", m.TotalParams()},
                        {"active_params", m.ActiveParams()},
                        {"experts", experts},
                        {"attention", attn},
                        {"published_params", m.published_params},
                        {"published_active_params", m.published_active_params}});
}

int Print(const TextTable& t, const OutputFlags& out, const char* command) {
  std::string text;
  if (Status s = FormatTable(t, out.format, &text); !s.ok()) {
    std::fprintf(stderr, "clusterbench %s: %s\n", command, s.message().c_str());
    return 2;
  }
  std::fputs(text.c_str(), stdout);
  return 0;
}

}  // namespace

CommandFn AddModelsCommand(CLI::App& app) {
  auto* cmd = app.add_subcommand("models", "List the model presets with their shapes and sizes");
  auto out = AddOutputFlags(cmd, {"table", "md", "csv", "json", "jsonl"}, "table");
  return [out] {
    TextTable t;
    t.columns = {"model",
                 "hidden",
                 "layers",
                 "heads/kv",
                 "head_dim",
                 "ffn",
                 "vocab",
                 "context",
                 "params",
                 "active",
                 "experts",
                 "attn",
                 "published total/active"};
    t.numeric = {false, true, true, true, true, true, true, true, true, true, false, false, false};
    for (const std::string& name : ListModelPresets()) {
      ModelSpec m;
      if (Status s = LoadModelSpec(name, &m); !s.ok()) {
        std::fprintf(stderr, "clusterbench models: %s\n", s.message().c_str());
        return s.ExitCode();
      }
      AddModelRow(m, &t);
    }
    return Print(t, *out, "models");
  };
}

CommandFn AddBackendsCommand(CLI::App& app) {
  auto* cmd =
      app.add_subcommand("backends", "List the backends and the devices they find on this machine");
  auto out = AddOutputFlags(cmd, {"table", "md", "csv", "json", "jsonl"}, "table");
  return [out] {
    TextTable t;
    t.columns = {"backend", "state", "device", "threads", "memory GiB", "ISA", "dtypes", "notes"};
    t.numeric = {false, false, false, true, true, false, false, false};
    for (const BackendInfo& b : ListBackends()) {
      std::vector<std::string> row = {b.name, b.available ? "available" : "unavailable"};
      nlohmann::json rec = {{"backend", b.name}, {"available", b.available}};
      std::unique_ptr<Device> device;
      Status open = b.available ? OpenDevice(b.name, &device) : Status::Ok();
      if (!b.available || !open.ok()) {
        const std::string why = b.available ? "error: " + open.message() : b.unavailable_reason;
        row.insert(row.end(), {"-", "-", "-", "-", "-", why});
        rec["notes"] = why;
        t.rows.push_back(row);
        t.records.push_back(rec);
        continue;
      }
      const DeviceProps p = device->Props();
      std::string dtypes;
      nlohmann::json dtype_json = nlohmann::json::object();
      for (DType dt : {DType::kF32, DType::kBF16, DType::kF16}) {
        const Support s = device->Supports(dt);
        dtypes += std::string(dtypes.empty() ? "" : ", ") + std::string(DTypeName(dt)) +
                  (s.supported ? "" : " (no: " + s.reason + ")");
        dtype_json[std::string(DTypeName(dt))] = s.supported ? "yes" : s.reason;
      }
      row.insert(row.end(),
                 {p.name, std::to_string(p.threads), Num(p.mem_bytes / 1073741824.0, "%.1f"),
                  p.isa.empty() ? "-" : p.isa, dtypes, b.description});
      rec.update({{"device", p.name},
                  {"threads", p.threads},
                  {"memory_bytes", p.mem_bytes},
                  {"isa", p.isa},
                  {"dtypes", dtype_json},
                  {"notes", b.description}});
      t.rows.push_back(row);
      t.records.push_back(rec);
    }
    return Print(t, *out, "backends");
  };
}

CommandFn AddMicroCommand(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "micro",
      "Run the Google Benchmark micro-suite (matmul at prefill/decode shapes, memory bandwidth);\n"
      "its peaks are the ceilings for MFU and MBU");
  auto opts = std::make_shared<MicroOptions>();
  auto out = AddOutputFlags(cmd, {"table", "json"}, "table");
  cmd->add_option("--filter", opts->filter,
                  "Regex over benchmark names (e.g. 'matmul/bf16', 'mem/'); leading '-' negates");
  cmd->add_option("--min-time", opts->min_time_s, "Minimum seconds per repetition")
      ->default_val(0.2);
  cmd->add_option("--repetitions", opts->repetitions, "Repetitions (figures are medians)")
      ->default_val(3);
  cmd->add_flag("--list", opts->list_only, "List the benchmark names and run nothing");
  return [opts, out] {
    const auto f = ParseMicroFormat(out->format);
    if (!f) return 2;  // the flag's check names the allowed values
    opts->format = *f;
    return RunMicroCommand(*opts);
  };
}

}  // namespace cb
