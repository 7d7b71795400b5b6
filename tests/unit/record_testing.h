#pragma once

// Fixtures shared by the record_*_test.cc and formats_test.cc suites.

#include <string>
#include <utility>

#include "results/run_record.h"

namespace cb::fixtures {

inline Metric MakeMetric(std::string name, std::string unit, Provenance how, double value) {
  Metric m;
  m.name = std::move(name);
  m.unit = std::move(unit);
  m.how = how;
  m.value = value;
  return m;
}

inline Metric WithDist(Metric m, double p50, double p99) {
  m.has_distribution = true;
  m.dist.count = 5;
  m.dist.mean = p50 * 1.01;
  m.dist.p50 = p50;
  m.dist.p90 = (p50 + p99) / 2;
  m.dist.p99 = p99;
  m.dist.min = p50 * 0.9;
  m.dist.max = p99 * 1.1;
  m.dist.stddev = p50 * 0.05;
  m.dist.cv = 0.05;
  return m;
}

/// A record with every field set to something other than its default.
inline RunRecord PopulatedRecord() {
  RunRecord r;
  r.schema_version = "1.0";
  r.run_id = "20250131T020000Z-ab12cd";
  r.start_time = "2025-01-31T02:00:00Z";
  r.end_time = "2025-01-31T02:01:30Z";
  r.host = "bench-01";
  r.git_commit = "0123456789abcdef0123456789abcdef01234567";
  r.tool_version = "0.1.0";
  r.status = "ok";
  r.status_message = "all good";

  WorkloadSpec& w = r.workload;
  w.model_ref = "llama-3.2-1b";
  w.model.name = "llama-3.2-1b";
  w.model.family = "qwen3";
  w.model.source = "config.json of meta-llama/Llama-3.2-1B";
  w.model.hidden_size = 2048;
  w.model.num_layers = 16;
  w.model.num_heads = 32;
  w.model.num_kv_heads = 8;
  w.model.head_dim = 64;
  w.model.ffn_size = 8192;
  w.model.vocab_size = 128256;
  w.model.max_context = 131072;
  w.model.rope_theta = 500000.0;
  w.model.norm_eps = 1e-6;
  w.model.tie_embeddings = true;
  w.model.qk_norm = true;
  w.model.published_params = 1.23e9;
  w.backend = "cpu";
  w.scenario = "offline-x";
  w.dtype = DType::kF16;
  w.batch = 8;
  w.prompt_len = 512;
  w.gen_len = 64;
  w.layers = 4;
  w.seed = 18446744073709551615ull;  // largest seed: must survive as an unsigned integer
  w.repetitions = 7;
  w.warmup = 2;
  w.verify_len = 12;
  w.verify = false;

  r.device.backend = "cpu";
  r.device.name = "AMD EPYC 9654 (2 cores)";
  r.device.kind = "cpu";
  r.device.uuid = "cpu-0000";
  r.device.host = "bench-01.example";
  r.device.peak_flops = {1.5e12, 3.0e12, 2.5e12};
  r.device.mem_bandwidth_bytes_per_s = 4.6e11;
  r.device.mem_bytes = 137438953472ull;
  r.device.threads = 2;
  r.device.isa = "avx512_core_bf16";
  r.device.simulated = true;

  r.layers_run = 4;
  r.extrapolated = true;
  r.extrapolation_method = "per-layer time x 16/4";

  r.ceilings.matmul_flops_per_s[0] = 1.1e12;
  r.ceilings.matmul_flops_per_s[1] = 2.2e12;
  r.ceilings.matmul_flops_per_s[2] = 2.1e12;
  r.ceilings.mem_read_bytes_per_s = 3.3e11;
  r.ceilings.source = "clusterbench micro, cached results/ceilings/bench-01.json";
  r.ceilings.measured_at = "2025-01-30T23:00:00Z";

  r.metrics = {
      WithDist(
          MakeMetric("prefill_tokens_per_second", "tokens/s", Provenance::kMeasured, 12345.678),
          12345.678, 13000.5),
      WithDist(MakeMetric("decode_tokens_per_second", "tokens/s", Provenance::kMeasured, 45.678),
               45.678, 50.25),
      WithDist(MakeMetric("ttft_seconds", "s", Provenance::kMeasured, 0.0123), 0.0123, 0.0456),
      WithDist(MakeMetric("tpot_seconds", "s", Provenance::kExtrapolated, 0.004567), 0.004567,
               0.0061234),
      WithDist(MakeMetric("e2e_latency_seconds", "s", Provenance::kMeasured, 0.3), 0.3, 0.35),
      MakeMetric("mfu_prefill_ratio", "ratio", Provenance::kMeasured, 0.4567),
      MakeMetric("mfu_decode_ratio", "ratio", Provenance::kMeasured, 0.0123),
      MakeMetric("mbu_prefill_ratio", "ratio", Provenance::kMeasured, 0.11),
      MakeMetric("mbu_decode_ratio", "ratio", Provenance::kExtrapolated, 0.789),
      MakeMetric("harness_overhead_ratio", "ratio", Provenance::kMeasured, 0.002),
      MakeMetric("prefill_flops_per_second", "FLOP/s", Provenance::kModelled, 1.0e12),
      MakeMetric("decode_bytes_per_second", "B/s", Provenance::kMeasured, 2.5e11),
  };

  RepetitionSample s1;
  s1.prefill_s = 0.0123;
  s1.decode_step_s = {0.0045, 0.0046, 0.1 / 3};
  s1.e2e_s = 0.3;
  s1.backend_s = 0.29;
  RepetitionSample s2 = s1;
  s2.prefill_s = 0.0125;
  s2.decode_step_s = {0.0047};
  r.samples = {s1, s2};

  r.verification.status = "passed";
  r.verification.message = "max rel error 1.2e-3 at seq 0 pos 5";
  r.verification.sequences = 2;
  r.verification.positions = 12;
  r.verification.max_abs_error = 0.0123;
  r.verification.max_rel_error = 0.0012;
  r.verification.tolerance = 0.02;
  r.verification.argmax_agreement = 0.975;
  r.verification.nan_found = true;

  r.generated_tokens = {1, 2, 3, 128000, 2147483647};

  CeilingCheckRecord c;
  c.method = "in-process probes (test fixture)";
  c.dtype = "fp16";
  c.devices = 2;
  c.max_drift = 0.15;
  c.max_ratio = 1;
  c.cache_bytes = 33554432;
  c.probes = {{0, "before", 3.1e11, 2.0e12, 0.055, 0.08},
              {0, "after", 3.0e11, 2.1e12, 0.05, 0.07},
              {1, "before", 3.2e11, 2.0e12, 0.056, 0.08},
              {1, "after", 2.9e11, 2.0e12, 0.05, 0.07}};
  c.memory = {6.3e11, 5.9e11, 0.4 / 6.3, 6.3e11, 6.6e11, "probes"};
  c.matmul = {4.0e12, 4.1e12, 0.1 / 4.1, 4.1e12, 4.2e12, "probes"};
  c.verdict = "ok";
  c.notes = {"mbu_prefill_ratio not reported: a prefill step fits in the cache"};
  r.ceiling_check = c;
  return r;
}

/// The populated record as a run that verification rejected: metrics are kept but not valid.
inline RunRecord InvalidRecord() {
  RunRecord r = PopulatedRecord();
  r.run_id = "invalid-run";
  r.status = "invalid";
  r.status_message = "verification failed: max rel error 0.5 > tolerance 0.02";
  r.verification.status = "failed";
  r.extrapolated = false;
  r.layers_run = 16;
  r.workload.layers = 0;
  r.workload.model.name = "qwen3-0.6b";
  return r;
}

}  // namespace cb::fixtures
