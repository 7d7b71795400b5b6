#include <cstdio>

#include "backends/registry.h"
#include "harness/cli/commands.h"
#include "harness/micro/micro_suite.h"
#include "workloads/model_spec.h"

namespace cb {

CommandFn AddModelsCommand(CLI::App& app) {
  auto* cmd = app.add_subcommand("models", "List the model presets with their shapes and sizes");
  return [] {
    std::printf("%-16s %7s %6s %9s %8s %7s %6s %9s %10s %10s %-10s %-4s %s\n", "model", "hidden",
                "layers", "heads/kv", "head_dim", "ffn", "vocab", "context", "params", "active",
                "experts", "attn", "published total/active");
    for (const std::string& name : ListModelPresets()) {
      ModelSpec m;
      if (Status s = LoadModelSpec(name, &m); !s.ok()) {
        std::fprintf(stderr, "clusterbench: %s\n", s.message().c_str());
        return s.ExitCode();
      }
      const int64_t hd = m.head_dim > 0 ? m.head_dim : m.hidden_size / m.num_heads;
      char heads[32], published[64] = "-", experts[32] = "-";
      std::snprintf(heads, sizeof heads, "%lld/%lld", static_cast<long long>(m.num_heads),
                    static_cast<long long>(m.num_kv_heads));
      if (m.published_params > 0) {
        std::snprintf(published, sizeof published, "%.2fB", m.published_params / 1e9);
        if (m.published_active_params > 0) {
          std::snprintf(published, sizeof published, "%.2fB/%.2fB", m.published_params / 1e9,
                        m.published_active_params / 1e9);
        }
      }
      if (m.moe.enabled()) {  // routed x top-k (+ shared)
        std::snprintf(experts, sizeof experts, "%lldx%lld+%lld",
                      static_cast<long long>(m.moe.num_experts),
                      static_cast<long long>(m.moe.experts_per_token),
                      static_cast<long long>(m.moe.num_shared_experts));
      }
      std::printf("%-16s %7lld %6lld %9s %8lld %7lld %6lld %9lld %9.2fB %9.2fB %-10s %-4s %s\n",
                  m.name.c_str(), static_cast<long long>(m.hidden_size),
                  static_cast<long long>(m.num_layers), heads, static_cast<long long>(hd),
                  static_cast<long long>(m.ffn_size), static_cast<long long>(m.vocab_size),
                  static_cast<long long>(m.max_context), m.TotalParams() / 1e9,
                  m.ActiveParams() / 1e9, experts, m.mla.enabled() ? "mla" : "gqa", published);
    }
    return 0;
  };
  (void)cmd;
}

CommandFn AddBackendsCommand(CLI::App& app) {
  app.add_subcommand("backends", "List the backends and the devices they find on this machine");
  return [] {
    for (const BackendInfo& b : ListBackends()) {
      std::printf("%-10s %-13s %s\n", b.name.c_str(), b.available ? "available" : "unavailable",
                  b.description.c_str());
      if (!b.available) {
        std::printf("%-10s %-13s reason: %s\n", "", "", b.unavailable_reason.c_str());
        continue;
      }
      std::unique_ptr<Device> device;
      if (Status s = OpenDevice(b.name, &device); !s.ok()) {
        std::printf("%-10s %-13s error: %s\n", "", "", s.message().c_str());
        continue;
      }
      const DeviceProps p = device->Props();
      std::printf("%-10s %-13s device: %s; %d threads; %.1f GiB available%s%s\n", "", "",
                  p.name.c_str(), p.threads, p.mem_bytes / 1073741824.0,
                  p.isa.empty() ? "" : "; ISA ", p.isa.c_str());
      std::string dtypes;
      for (DType t : {DType::kF32, DType::kBF16, DType::kF16}) {
        const Support s = device->Supports(t);
        dtypes += std::string(dtypes.empty() ? "" : ", ") + std::string(DTypeName(t)) +
                  (s.supported ? "" : " (no: " + s.reason + ")");
      }
      std::printf("%-10s %-13s dtypes: %s\n", "", "", dtypes.c_str());
    }
    return 0;
  };
}

CommandFn AddMicroCommand(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "micro",
      "Run the Google Benchmark micro-suite (matmul at prefill/decode shapes, memory bandwidth);\n"
      "its peaks are the ceilings for MFU and MBU");
  auto opts = std::make_shared<MicroOptions>();
  auto format = std::make_shared<std::string>("table");
  cmd->add_option("--filter", opts->filter,
                  "Regex over benchmark names (e.g. 'matmul/bf16', 'mem/'); leading '-' negates");
  cmd->add_option("--min-time", opts->min_time_s, "Minimum seconds per repetition")
      ->default_val(0.2);
  cmd->add_option("--repetitions", opts->repetitions, "Repetitions (figures are medians)")
      ->default_val(3);
  cmd->add_option("--format", *format, "Output format: table or json")->default_val("table");
  cmd->add_flag("--list", opts->list_only, "List the benchmark names and run nothing");
  return [opts, format] {
    const auto f = ParseMicroFormat(*format);
    if (!f) {
      std::fprintf(stderr,
                   "clusterbench micro: --format '%s' unknown; allowed values: table, json\n",
                   format->c_str());
      return 2;
    }
    opts->format = *f;
    return RunMicroCommand(*opts);
  };
}

}  // namespace cb
