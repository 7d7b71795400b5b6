// End-to-end: the simulated backend through the real binary: verification against the
// reference on a small model, modelled figures, a 384-device system, compare-hardware,
// calibrate, bad input.
#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <nlohmann/json.hpp>

#include "tests/integration/cli_harness.h"

namespace cb::testing {
namespace {

using nlohmann::json;

json OnlyRun(const std::string& dir) {
  const auto files = ListFiles(dir);
  EXPECT_EQ(files.size(), 1u);
  return files.empty() ? json() : json::parse(ReadText(files[0]));
}

TEST(SimCli, VerifiesAgainstTheReferenceAndLabelsEveryFigureModelled) {
  const std::string out = FreshDir("sim_verify");
  const CliResult r =
      RunCli({"run", "--results-dir", SharedResultsDir(), "--out", out, "--backend",
              "sim:nvidia-h100-sxm", "--model", "tiny", "--prompt-len", "8", "--gen-len", "2",
              "--repetitions", "2", "--quiet", "--format", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json doc = OnlyRun(out);
  EXPECT_EQ(doc["verification"]["status"], "passed") << doc["verification"].dump();
  EXPECT_EQ(doc["device"]["simulated"], true);
  EXPECT_EQ(doc["device"]["backend"], "sim");
  EXPECT_NE(doc.dump().find("clusterbench-sim/"), std::string::npos);  // the model's version
  for (const char* name : {"prefill_tokens_per_second", "decode_tokens_per_second", "ttft_seconds",
                           "tpot_seconds", "energy_joules"}) {
    ASSERT_TRUE(doc["metrics"].contains(name)) << name;
    EXPECT_EQ(doc["metrics"][name]["how"], "modelled") << name;
  }
  EXPECT_EQ(doc["energy"]["source"], "model");
}

TEST(SimCli, CloudMatrix384RunsAWholeSystemInUnderTwoSeconds) {
  const std::string out = FreshDir("sim_cm384");
  const auto t0 = std::chrono::steady_clock::now();
  const CliResult r = RunCli({"run",
                              "--results-dir",
                              SharedResultsDir(),
                              "--out",
                              out,
                              "--backend",
                              "sim",
                              "--system",
                              "cloudmatrix-384",
                              "--model",
                              "llama-3.1-70b",
                              "--batch",
                              "384",
                              "--prompt-len",
                              "128",
                              "--gen-len",
                              "1",
                              "--repetitions",
                              "1",
                              "--warmup",
                              "0",
                              "--quiet"});
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_LT(wall, 2.0);
  const json doc = OnlyRun(out);
  EXPECT_EQ(doc["cluster"]["world_size"], 384);
  EXPECT_EQ(doc["cost"]["devices"], 384);
  EXPECT_TRUE(doc["metrics"].contains("decode_tokens_per_second_per_device"));
  EXPECT_EQ(doc["metrics"]["decode_tokens_per_second"]["how"], "modelled");
  EXPECT_EQ(doc["verification"]["status"], "not_run");
}

TEST(SimCli, TensorParallelInOneProcessIsVirtualDevices) {
  const std::string out = FreshDir("sim_tp8");
  const CliResult r = RunCli({"run",
                              "--results-dir",
                              SharedResultsDir(),
                              "--out",
                              out,
                              "--backend",
                              "sim:nvidia-h100-sxm",
                              "--tp",
                              "8",
                              "--model",
                              "llama-3.1-70b",
                              "--batch",
                              "8",
                              "--prompt-len",
                              "128",
                              "--gen-len",
                              "2",
                              "--repetitions",
                              "1",
                              "--quiet"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json doc = OnlyRun(out);
  EXPECT_EQ(doc["cluster"]["world_size"], 8);
  EXPECT_EQ(doc["cluster"]["tp"], 8);
  EXPECT_EQ(doc["cost"]["devices"], 8);
  EXPECT_GT(doc["metrics"]["communication_share_ratio"]["value"].get<double>(), 0);
}

TEST(SimCli, CompareHardwareCoversEverySystem) {
  const std::string dir = FreshDir("sim_compare_dense");
  const CliResult r = RunCli({"compare-hardware", "--model", "llama-3.1-8b", "--prompt-len", "128",
                              "--gen-len", "64", "--format", "json", "--results-dir", dir});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json rows = json::parse(r.out);
  ASSERT_EQ(rows.size(), 4u);  // every catalog system
  for (const json& row : rows) {
    EXPECT_EQ(row["status"], "ok") << row.dump();
    const json& best = row["best"];
    EXPECT_GT(best["output_tokens_per_second"].get<double>(), 0);
    EXPECT_NEAR(
        best["output_tokens_per_second_per_device"].get<double>() * row["devices"].get<int>(),
        best["output_tokens_per_second"].get<double>(),
        1e-6 * best["output_tokens_per_second"].get<double>());
    EXPECT_GT(best["cost_usd_per_million_output_tokens"].get<double>(), 0);
    EXPECT_GT(best["output_tokens_per_second_per_megawatt"].get<double>(), 0);
    EXPECT_EQ(row["how"], "modelled");
  }
}

TEST(SimCli, CompareHardwareFindsTheCheapestLayoutMeetingTheSlo) {
  const std::string dir = FreshDir("sim_compare_slo");
  const auto t0 = std::chrono::steady_clock::now();
  const CliResult r =
      RunCli({"compare-hardware", "--model", "deepseek-v3", "--slo-tpot", "0.05", "--slo-ttft", "2",
              "--prompt-len", "2000", "--gen-len", "1000", "--systems",
              "cloudmatrix-384,gb200-nvl72,hgx-h100-8", "--format", "json", "--results-dir", dir});
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_LT(wall, 60.0);
  const json rows = json::parse(r.out);
  ASSERT_EQ(rows.size(), 3u);
  for (const json& row : rows) {
    if (row["system"] == "nvidia-hgx-h100-8") {
      // 671B parameters do not fit in 8 x 80 GB: the row says so and hides no other.
      EXPECT_EQ(row["status"], "cannot_hold_model") << row.dump();
      EXPECT_NE(row["message"].get<std::string>().find("GiB per device"), std::string::npos);
      continue;
    }
    ASSERT_EQ(row["status"], "ok") << row.dump();
    const json& best = row["best"];
    EXPECT_LE(best["tpot_seconds"].get<double>(), 0.05);
    EXPECT_LE(best["ttft_seconds"].get<double>(), 2.0);
    EXPECT_TRUE(best["meets_slo"].get<bool>());
    EXPECT_FALSE(best["layout"].get<std::string>().empty());
    // Served at 80% of its steady-state rate (the default --serve-load), it keeps up and its
    // p99 latencies still meet the objectives.
    const json& served = best["served"];
    ASSERT_TRUE(served.is_object()) << best.dump();
    EXPECT_EQ(served["load"], 0.8);
    EXPECT_TRUE(served["meets_slo"].get<bool>());
    EXPECT_LE(served["ttft_p99_seconds"].get<double>(), 2.0);
    EXPECT_LE(served["tpot_p99_seconds"].get<double>(), 0.05);
    EXPECT_GE(served["ttft_p99_seconds"].get<double>(), served["ttft_p50_seconds"].get<double>());
    EXPECT_NEAR(served["served_requests_per_second"].get<double>() /
                    served["offered_requests_per_second"].get<double>(),
                1.0, 0.1);
  }
  // The whole frontier is in the result file: every costed point, the best among them cheapest.
  const auto files = ListFiles(dir + "/compare-hardware");
  ASSERT_EQ(files.size(), 1u);
  const json doc = json::parse(ReadText(files[0]));
  for (const json& sys : doc["systems"]) {
    if (sys["status"] != "ok") continue;
    EXPECT_GT(sys["points"].size(), 10u);
    // Separate pools limited by their prefill pool: more decode slots add no throughput, and
    // the decode ranks hold only what the prefill rate keeps in flight, so TPOT stays put.
    std::map<std::string, std::vector<const json*>> by_layout;
    for (const json& p : sys["points"]) {
      const std::string l = p["layout"];
      by_layout[l.substr(0, l.rfind(','))].push_back(&p);
    }
    int saturated = 0;
    for (const auto& [layout, pts] : by_layout) {
      for (size_t i = 1; i < pts.size(); ++i) {
        const json& a = *pts[i - 1];
        const json& b = *pts[i];
        if (a["pools"].size() != 2 ||
            b["output_tokens_per_second"] != a["output_tokens_per_second"]) {
          continue;
        }
        ++saturated;
        EXPECT_NEAR(b["tpot_seconds"].get<double>() / a["tpot_seconds"].get<double>(), 1.0, 1e-4)
            << layout;
      }
    }
    EXPECT_GT(saturated, 0) << sys["system"];
    // A cheaper point meeting the SLO at its steady state was served and missed it there, or
    // passed over because a point of its deployment with no more sequences per rank missed.
    const double best = sys["best"]["cost_usd_per_million_output_tokens"].get<double>();
    std::map<std::string, int64_t> missed_at;
    std::vector<const json*> passed_over;
    for (const json& p : sys["points"]) {
      if (!p["meets_slo"].get<bool>() ||
          p["cost_usd_per_million_output_tokens"].get<double>() >= best * (1 - 1e-12)) {
        continue;
      }
      const std::string l = p["layout"];
      if (!p["served"].is_object()) {
        passed_over.push_back(&p);
        continue;
      }
      EXPECT_FALSE(p["served"]["meets_slo"].get<bool>()) << p.dump();
      int64_t& at = missed_at.emplace(l.substr(0, l.rfind(',')), INT64_MAX).first->second;
      at = std::min(at, p["sequences_per_rank"].get<int64_t>());
    }
    EXPECT_EQ(static_cast<int64_t>(passed_over.size()), sys["served_passed_over"].get<int64_t>());
    for (const json* p : passed_over) {
      const std::string l = (*p)["layout"];
      const auto missed = missed_at.find(l.substr(0, l.rfind(',')));
      ASSERT_NE(missed, missed_at.end()) << p->dump();
      EXPECT_LE(missed->second, (*p)["sequences_per_rank"].get<int64_t>()) << p->dump();
    }
  }
  // An objective nothing meets gets its own row saying why.
  const CliResult tight =
      RunCli({"compare-hardware", "--model", "deepseek-v3", "--slo-tpot", "0.0001", "--systems",
              "gb200-nvl72", "--format", "json", "--results-dir", dir});
  ASSERT_EQ(tight.exit_code, 0) << tight.err;
  const json t = json::parse(tight.out);
  EXPECT_EQ(t[0]["status"], "no_layout_meets_slo");
  EXPECT_NE(t[0]["message"].get<std::string>().find("lowest TPOT"), std::string::npos);
}

TEST(SimCli, ALooserLatencyObjectiveNeverCostsMore) {
  // A layout that meets TPOT <= 20 ms served under load also meets 30 ms, so the answer at
  // 30 ms is no dearer. (At 30 ms the CloudMatrix 384's cheapest steady-state points all sit
  // at the TTFT objective and miss it served; a search that tried only the cheapest few
  // reported that the system misses the looser objective.)
  double cost[2] = {0, 0};
  const char* tpot[2] = {"0.02", "0.03"};
  for (int i = 0; i < 2; ++i) {
    const CliResult r =
        RunCli({"compare-hardware", "--model", "deepseek-v3", "--slo-tpot", tpot[i], "--slo-ttft",
                "2", "--prompt-len", "2000", "--gen-len", "1000", "--systems", "cloudmatrix-384",
                "--format", "json", "--results-dir", FreshDir("sim_compare_looser")});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const json row = json::parse(r.out)[0];
    ASSERT_EQ(row["status"], "ok") << tpot[i] << ": " << row["message"];
    EXPECT_TRUE(row["best"]["served"]["meets_slo"].get<bool>());
    cost[i] = row["best"]["cost_usd_per_million_output_tokens"].get<double>();
  }
  EXPECT_LE(cost[1], cost[0] * (1 + 1e-12));
}

TEST(SimCli, CompareHardwareBadInputExitsTwo) {
  const CliResult neg = RunCli({"compare-hardware", "--model", "tiny", "--slo-tpot", "-1"});
  EXPECT_EQ(neg.exit_code, 2);
  EXPECT_NE(neg.err.find("--slo-tpot"), std::string::npos) << neg.err;
  const CliResult sys = RunCli({"compare-hardware", "--model", "tiny", "--prompt-len", "64",
                                "--gen-len", "16", "--systems", "nope"});
  EXPECT_EQ(sys.exit_code, 2);
  EXPECT_NE(sys.err.find("allowed values"), std::string::npos) << sys.err;
  const CliResult load = RunCli({"compare-hardware", "--model", "tiny", "--serve-load", "1.5"});
  EXPECT_EQ(load.exit_code, 2);
  EXPECT_NE(load.err.find("--serve-load: must be in [0, 1)"), std::string::npos) << load.err;
}

TEST(SimCli, BadInputExitsTwo) {
  EXPECT_EQ(RunCli({"run", "--backend", "sim", "--system", "no-such-system", "--model", "tiny"})
                .exit_code,
            2);
  EXPECT_EQ(RunCli({"run", "--backend", "sim:no-such-device", "--model", "tiny"}).exit_code, 2);
  EXPECT_EQ(RunCli({"run", "--backend", "cpu", "--devices", "4", "--model", "tiny"}).exit_code, 2);
}

TEST(SimCli, ADeepSeekDecodeOn384DevicesTakesUnderFiveSeconds) {
  const std::string out = FreshDir("sim_cm384_decode");
  const auto t0 = std::chrono::steady_clock::now();
  const CliResult r = RunCli({"run",
                              "--out",
                              out,
                              "--backend",
                              "sim",
                              "--system",
                              "cloudmatrix-384",
                              "--model",
                              "deepseek-v3",
                              "--dtype",
                              "int8",
                              "--ep",
                              "384",
                              "--redundant-experts",
                              "128",
                              "--overlap",
                              "--batch",
                              "36864",
                              "--prompt-len",
                              "128",
                              "--gen-len",
                              "4096",
                              "--repetitions",
                              "1",
                              "--warmup",
                              "0",
                              "--quiet"});
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_LT(wall, 5.0);
  const json doc = OnlyRun(out);
  EXPECT_EQ(doc["deployment"]["pools"][0]["ep"], 384);
  EXPECT_EQ(doc["deployment"]["pools"][0]["sequences_per_rank"], 96);
  EXPECT_EQ(doc["cluster"]["world_size"], 384);
  EXPECT_EQ(doc["samples"][0]["decode_step_s"].size(), 4096u);
  for (const char* m : {"mbu_decode_ratio", "mfu_prefill_ratio"}) {
    EXPECT_LE(doc["metrics"][m]["value"].get<double>(), 1.0) << m;
    EXPECT_EQ(doc["metrics"][m]["how"], "modelled") << m;
  }
}

TEST(SimCli, DisaggregatedPoolsPriceInputAndOutputByTheirPools) {
  const std::string out = FreshDir("sim_disagg");
  const CliResult r = RunCli({"run",
                              "--out",
                              out,
                              "--backend",
                              "sim:nvidia-h200-sxm",
                              "--model",
                              "deepseek-v3",
                              "--dtype",
                              "fp8",
                              "--disaggregate",
                              "prefill=16:ep16,decode=32:ep32",
                              "--mtp",
                              "1",
                              "--batch",
                              "2048",
                              "--prompt-len",
                              "1000",
                              "--gen-len",
                              "64",
                              "--repetitions",
                              "1",
                              "--warmup",
                              "0",
                              "--quiet"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json doc = OnlyRun(out);
  const json& d = doc["deployment"];
  ASSERT_EQ(d["pools"].size(), 2u);
  EXPECT_EQ(d["pools"][0]["role"], "prefill");
  EXPECT_EQ(d["pools"][1]["devices"], 32);
  EXPECT_NEAR(d["tokens_per_decode_step"].get<double>(), 1.85, 1e-12);
  EXPECT_GT(d["kv_transfer_seconds"].get<double>(), 0);
  EXPECT_EQ(doc["cost"]["devices"], 48);
  EXPECT_EQ(doc["cost"]["input_devices"], 16);
  EXPECT_EQ(doc["cost"]["output_devices"], 32);
  EXPECT_NEAR(doc["metrics"]["decode_tokens_per_second_per_device"]["value"].get<double>() * 32,
              doc["metrics"]["decode_tokens_per_second"]["value"].get<double>(), 1e-6);
  EXPECT_EQ(ValidateAgainstSchema(ListFiles(out)), 0);
}

TEST(SimCli, ServingRunsOnASimulatedPool) {
  const std::string out = FreshDir("sim_serving_pool");
  const CliResult r = RunCli({"run",
                              "--out",
                              out,
                              "--backend",
                              "sim:nvidia-h100-sxm",
                              "--devices",
                              "4",
                              "--tp",
                              "2",
                              "--model",
                              "llama-3.1-8b",
                              "--scenario",
                              "server",
                              "--rate",
                              "20",
                              "--requests",
                              "200",
                              "--batch",
                              "16",
                              "--prompt-len",
                              "256",
                              "--gen-len",
                              "32",
                              "--min-duration",
                              "0",
                              "--quiet"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json doc = OnlyRun(out);
  // Both attention groups (4 devices / tp 2) are simulated, stepping together: no replica.
  EXPECT_EQ(doc["serving"]["replicas"], 1);
  EXPECT_EQ(doc["cluster"]["world_size"], 4);
  EXPECT_EQ(doc["workload"]["batch"], 16);
  // The pool serves about the offered load: 200 requests of 32 tokens at 20/s.
  EXPECT_NEAR(doc["metrics"]["requests_per_second"]["value"].get<double>(), 20, 4);
}

/// A server run of DeepSeek-V3 in fp8 on simulated H100s with `extra` flags (layout, load,
/// lengths); the record it wrote, which must be schema-valid.
json ServeDeepSeek(const std::string& name, const std::vector<std::string>& extra) {
  const std::string out = FreshDir(name);
  std::vector<std::string> args = {
      "run",     "--out",          out,       "--backend", "sim:nvidia-h100-sxm",
      "--model", "deepseek-v3",    "--dtype", "fp8",       "--scenario",
      "server",  "--min-duration", "0",       "--quiet"};
  args.insert(args.end(), extra.begin(), extra.end());
  const CliResult r = RunCli(args);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(ValidateAgainstSchema(ListFiles(out)), 0);
  return r.exit_code == 0 ? OnlyRun(out) : json::object();
}

// Multi-token prediction on a mixed expert-parallel pool: 8 of its 16 groups simulated
// (serving.replicas 2), and more than one token kept per step.
TEST(SimCli, ServingWithMtpOnAMixedPool) {
  double tpot[2] = {0, 0};
  for (int mtp = 0; mtp < 2; ++mtp) {
    const json doc =
        ServeDeepSeek("sim_serving_mixed_mtp_" + std::to_string(mtp),
                      {"--devices", "16", "--ep", "16", "--max-prefill-tokens", "512", "--rate",
                       "4", "--requests", "300", "--batch", "256", "--prompt-len", "500",
                       "--gen-len", "50", "--mtp", std::to_string(mtp)});
    ASSERT_TRUE(doc.contains("serving"));
    EXPECT_EQ(doc["serving"]["replicas"], 2);
    EXPECT_NEAR(doc["metrics"]["requests_per_second"]["value"].get<double>(), 4, 0.6);
    tpot[mtp] = doc["metrics"]["tpot_seconds"]["value"].get<double>();
  }
  EXPECT_LT(tpot[1], tpot[0]);
}

// A server run on a prefill pool and a decode pool: one prefill and two decode groups
// simulated (16 and 32 ranks of DP attention share the factor 16), standing for 16 such sets;
// the first token waits for the KV transfer, and the energy covers both pools.
TEST(SimCli, ServingRunsOnDisaggregatedPools) {
  json runs[2];
  for (int mtp = 0; mtp < 2; ++mtp) {
    runs[mtp] =
        ServeDeepSeek("sim_serving_disaggregated_" + std::to_string(mtp),
                      {"--disaggregate", "prefill=16:ep16,decode=32:ep32", "--max-prefill-tokens",
                       "4096", "--rate", "40", "--requests", "300", "--batch", "1024",
                       "--prompt-len", "1000", "--gen-len", "50", "--mtp", std::to_string(mtp)});
    ASSERT_TRUE(runs[mtp].contains("serving"));
  }
  const json& doc = runs[1];
  EXPECT_EQ(doc["serving"]["replicas"], 16);
  EXPECT_EQ(doc["serving"]["max_batch"], 32);  // 1,024 sequences over 32 decode ranks
  EXPECT_EQ(doc["cluster"]["world_size"], 48);
  const json& m = doc["metrics"];
  EXPECT_EQ(m["ttft_seconds"]["how"], "modelled");
  // 300 requests at 40/s: the pools keep up with the offered load.
  EXPECT_NEAR(m["requests_per_second"]["value"].get<double>(), 40, 4);
  EXPECT_GT(m["ttft_seconds"]["value"].get<double>(),
            doc["deployment"]["kv_transfer_seconds"].get<double>());
  // Multi-token prediction keeps more than one token a step: a shorter time per token.
  EXPECT_LT(m["tpot_seconds"]["value"].get<double>(),
            runs[0]["metrics"]["tpot_seconds"]["value"].get<double>());
  ASSERT_TRUE(doc.contains("energy"));
  EXPECT_EQ(doc["energy"]["domains"].size(), 2u);
  EXPECT_EQ(doc["cost"]["input_devices"], 16);
  EXPECT_EQ(doc["cost"]["output_devices"], 32);
}

// compare-hardware's steady state and the serving simulation are two models of one
// deployment: its chosen layout, served by `run` at 90% of the request rate the steady state
// sustains (with the steady state's prefill budget per step), keeps up with the load, at about
// the TPOT the steady state gave.
TEST(SimCli, TheCheapestLayoutServedAtNinetyPercentKeepsUp) {
  const CliResult r =
      RunCli({"compare-hardware", "--model", "deepseek-v3", "--slo-tpot", "0.05", "--prompt-len",
              "2000", "--gen-len", "100", "--systems", "hgx-h100-96", "--format", "json",
              "--results-dir", FreshDir("sim_compare_then_serve_results")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json best = json::parse(r.out).at(0).at("best");
  std::vector<std::string> layout;
  const json& pools = best["pools"];
  if (pools.size() == 2) {
    std::string pd;
    for (const json& p : pools) {
      pd += (pd.empty() ? "" : ",") + p["role"].get<std::string>() + "=" +
            std::to_string(p["devices"].get<int>()) + ":tp" + std::to_string(p["tp"].get<int>()) +
            ":ep" + std::to_string(p["ep"].get<int>());
    }
    layout = {"--disaggregate", pd};
  } else {
    layout = {"--devices", std::to_string(pools[0]["devices"].get<int>()),
              "--tp",      std::to_string(pools[0]["tp"].get<int>()),
              "--ep",      std::to_string(pools[0]["ep"].get<int>())};
  }
  const json& decode = pools.back();
  const int batch = decode["dp"].get<int>() * best["sequences_per_rank"].get<int>();
  const double rate = 0.9 * best["output_tokens_per_second"].get<double>() / 100;
  const std::string out = FreshDir("sim_compare_then_serve");
  std::vector<std::string> args = {"run",
                                   "--out",
                                   out,
                                   "--backend",
                                   "sim",
                                   "--system",
                                   "hgx-h100-96",
                                   "--model",
                                   "deepseek-v3",
                                   "--dtype",
                                   best["dtype"].get<std::string>(),
                                   "--redundant-experts",
                                   std::to_string(best["redundant_experts"].get<int>()),
                                   "--mtp",
                                   std::to_string(best["mtp"].get<int>()),
                                   "--scenario",
                                   "server",
                                   "--rate",
                                   std::to_string(rate),
                                   "--requests",
                                   "4000",
                                   "--max-prefill-tokens",
                                   std::to_string(best["prefill_chunk_tokens"].get<int>()),
                                   "--batch",
                                   std::to_string(batch),
                                   "--prompt-len",
                                   "2000",
                                   "--gen-len",
                                   "100",
                                   "--min-duration",
                                   "0",
                                   "--quiet"};
  if (best["overlap"].get<bool>()) args.push_back("--overlap");
  args.insert(args.end(), layout.begin(), layout.end());
  const CliResult served = RunCli(args);
  ASSERT_EQ(served.exit_code, 0) << served.err;
  const json doc = OnlyRun(out);
  const json& m = doc["metrics"];
  EXPECT_NEAR(m["requests_per_second"]["value"].get<double>() / rate, 1.0, 0.05);
  EXPECT_NEAR(m["tpot_seconds"]["value"].get<double>() / best["tpot_seconds"].get<double>(), 1.0,
              0.15);
  EXPECT_LE(m["tpot_seconds"]["value"].get<double>(), 0.05);
}

TEST(SimCli, BadDeploymentsExitTwoNamingTheField) {
  const std::string out = FreshDir("sim_bad_layouts");
  struct Case {
    std::vector<std::string> args;
    const char* needle;
  };
  const Case cases[] = {
      {{"--model", "llama-3.1-8b", "--ep", "8", "--devices", "8"}, "dense model"},
      {{"--model", "deepseek-v3", "--dtype", "fp8", "--system", "cloudmatrix-384", "--ep", "384"},
       "field 'dtype'"},
      {{"--model", "deepseek-v3", "--dtype", "int8", "--system", "cloudmatrix-384", "--ep", "384"},
       "redundant"},
      {{"--model", "deepseek-v3", "--system", "gb200-nvl72", "--disaggregate",
        "prefill=36:ep36,decode=72:ep72"},
       "field 'disaggregate'"},
      {{"--model", "qwen3-235b-a22b", "--mtp", "1", "--backend", "sim:nvidia-h200-sxm", "--devices",
        "8", "--ep", "8"},
       "field 'mtp'"},
      {{"--model", "deepseek-v3", "--backend", "sim:nvidia-h100-sxm", "--devices", "8", "--ep", "8",
        "--dtype", "fp8", "--batch", "8"},
       "GiB per device"},
      {{"--model", "tiny", "--backend", "sim:nvidia-hgx-h100-96"},
       "is a system: give --backend sim --system"},
      {{"--model", "tiny", "--kv-dtype", "fp4"}, "--kv-dtype"},
      {{"--model", "tiny", "--mtp-acceptance", "1.5"}, "mtp_acceptance"},
  };
  for (const Case& c : cases) {
    std::vector<std::string> args = {"run", "--out", out, "--quiet"};
    bool backend = false;
    for (const std::string& a : c.args) backend |= a == "--backend";
    if (!backend) args.insert(args.end(), {"--backend", "sim"});
    args.insert(args.end(), c.args.begin(), c.args.end());
    const CliResult r = RunCli(args);
    EXPECT_EQ(r.exit_code, 2) << c.needle << ": " << r.err;
    EXPECT_NE(r.err.find(c.needle), std::string::npos) << c.needle << ": " << r.err;
  }
  EXPECT_TRUE(ListFiles(out).empty());
}

TEST(SimCli, CalibrateWritesParametersAndAHeldOutError) {
  const std::string out = FreshDir("sim_calibrate");
  const CliResult r = RunCli({"calibrate", "--results-dir", SharedResultsDir(), "--model", "tiny",
                              "--layers", "1", "--repetitions", "1", "--out", out});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("held-out"), std::string::npos) << r.out;
  const auto files = ListFiles(out);
  ASSERT_EQ(files.size(), 1u);
  const json cal = json::parse(ReadText(files[0]));
  EXPECT_FALSE(cal["date"].get<std::string>().empty());
  EXPECT_FALSE(cal["source"].get<std::string>().empty());
  EXPECT_GE(cal["held_out_median_abs_error"].get<double>(), 0);
  EXPECT_GT(cal["efficiency"]["matmul_eff"].get<double>(), 0);
}

}  // namespace
}  // namespace cb::testing
