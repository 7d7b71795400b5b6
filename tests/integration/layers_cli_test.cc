// --layers N on models with several kinds of layer: the run names the layers it ran, one of
// each kind, and scales each kind by its own count; too few layers to cover the kinds is bad
// input.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "tests/integration/cli_harness.h"

namespace cb::testing {
namespace {

using nlohmann::json;

/// DeepSeek-V3's kinds of layer at small sizes: 61 MLA layers, the first 3 dense, then MoE
/// with a shared expert, a sigmoid router with bias and group-limited top-k.
std::string DeepSeekKindsModel() {
  const std::string path = FreshDir("layers_model") + "/deepseek-kinds.json";
  WriteText(path, R"({"name": "deepseek-kinds", "family": "deepseek_v3", "hidden_size": 64,
    "num_layers": 61, "num_heads": 4, "num_kv_heads": 4, "head_dim": 16, "ffn_size": 128,
    "vocab_size": 256, "max_context": 256, "norm_eps": 1e-6, "num_experts": 8,
    "experts_per_token": 2, "expert_ffn_size": 32, "num_shared_experts": 1,
    "first_dense_layers": 3, "router_scoring": "sigmoid", "routed_scaling_factor": 2.5,
    "n_group": 4, "topk_group": 2, "router_bias": true, "q_lora_rank": 32, "kv_lora_rank": 32,
    "qk_nope_head_dim": 16, "qk_rope_head_dim": 8, "v_head_dim": 16})");
  return path;
}

TEST(LayersCli, TwoLayersOfADeepSeekShapedModelAreOneDenseAndOneMoeLayer) {
  const std::string out = FreshDir("layers_two");
  const CliResult r = RunCli({"run", "--model", DeepSeekKindsModel(), "--layers", "2",
                              "--results-dir", SharedResultsDir(), "--out", out, "--prompt-len",
                              "8", "--gen-len", "2", "--repetitions", "1", "-q"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto files = ListFiles(out);
  ASSERT_EQ(files.size(), 1u);
  EXPECT_EQ(ValidateAgainstSchema(files), 0);
  const json doc = json::parse(ReadText(files[0]));
  EXPECT_EQ(doc["run"]["status"], "ok");
  EXPECT_EQ(doc["verification"]["status"], "passed");
  const json& w = doc["workload"];
  EXPECT_EQ(w["layers_run_indices"], json::array({0, 3}));
  ASSERT_EQ(w["layer_kinds"].size(), 2u);
  EXPECT_EQ(w["layer_kinds"][0]["kind"], "mla/dense");
  EXPECT_EQ(w["layer_kinds"][0]["model_layers"], 3);
  EXPECT_EQ(w["layer_kinds"][0]["run"], json::array({0}));
  EXPECT_EQ(w["layer_kinds"][1]["kind"], "mla/moe");
  EXPECT_EQ(w["layer_kinds"][1]["model_layers"], 58);
  EXPECT_EQ(w["layer_kinds"][1]["run"], json::array({3}));
  EXPECT_TRUE(w["extrapolated"].get<bool>());
  EXPECT_NE(w["extrapolation_method"].get<std::string>().find("mla/dense x 3, mla/moe x 58"),
            std::string::npos);
}

// --op-breakdown: every op kind of the layers run, with its time per step (each layer weighted
// by the model layers it stands for) and its share, largest first; the table's notes show it.
TEST(LayersCli, OpBreakdownSharesEveryOpKindOfTheStep) {
  const std::string out = FreshDir("layers_breakdown");
  const CliResult r = RunCli({"run", "--model", DeepSeekKindsModel(), "--layers", "2",
                              "--results-dir", SharedResultsDir(), "--out", out, "--prompt-len",
                              "8", "--gen-len", "3", "--repetitions", "1", "--op-breakdown"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto files = ListFiles(out);
  ASSERT_EQ(files.size(), 1u);
  EXPECT_EQ(ValidateAgainstSchema(files), 0);
  const json b = json::parse(ReadText(files[0]))["op_breakdown"];
  ASSERT_TRUE(b.is_object());
  EXPECT_EQ(b["decode_steps"], 3);
  // Its roofline shares are judged against ceilings sampled right beside it.
  ASSERT_TRUE(b.contains("ceilings")) << b.dump();
  for (const char* c : {"memory_read_before", "memory_read_after"}) {
    EXPECT_GT(b["ceilings"][c].get<double>(), 0.0) << c;
  }
  EXPECT_NE(r.err.find("ceilings before the op breakdown: memory read"), std::string::npos);
  for (const char* phase : {"prefill", "decode"}) {
    SCOPED_TRACE(phase);
    double sum = 0, last = 1e9;
    std::set<std::string> ops;
    for (const json& s : b[phase]) {
      const double seconds = s["seconds"].get<double>();
      EXPECT_GT(seconds, 0.0);
      EXPECT_LE(seconds, last);  // largest first
      last = seconds;
      sum += s["share"].get<double>();
      const std::string op = s["op"];
      ops.insert(op);
      // The ideal work MFU and MBU count, per op: every op moves bytes, the matmuls compute.
      EXPECT_GT(s["bytes"].get<double>(), 0.0) << op;
      if (op.rfind("matmul", 0) == 0 || op == "moe_experts") {
        EXPECT_GT(s["flops"].get<double>(), 0.0) << op;
      }
    }
    EXPECT_NEAR(sum, 1.0, 1e-9);
    for (const char* op : {"router", "moe_experts", "mla_attention", "matmul wq_a", "embedding"}) {
      EXPECT_TRUE(ops.count(op)) << op;
    }
  }
  EXPECT_NE(r.out.find("op breakdown, share of the step, decode: "), std::string::npos) << r.out;
}

TEST(LayersCli, OpBreakdownOfASimulatedDeviceIsBadInput) {
  const std::string out = FreshDir("layers_breakdown_sim");
  const CliResult r = RunCli({"run", "--model", "tiny", "--backend", "sim", "--results-dir",
                              SharedResultsDir(), "--out", out, "--op-breakdown", "-q"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("field 'op_breakdown': times a measured device's ops"), std::string::npos)
      << r.err;
  EXPECT_TRUE(ListFiles(out).empty());
}

TEST(LayersCli, FewerLayersThanKindsIsBadInput) {
  const std::string out = FreshDir("layers_one");
  const CliResult r = RunCli({"run", "--model", DeepSeekKindsModel(), "--layers", "1",
                              "--results-dir", SharedResultsDir(), "--out", out, "-q"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("3 mla/dense, 58 mla/moe"), std::string::npos) << r.err;
  EXPECT_TRUE(ListFiles(out).empty());
}

// The real DeepSeek-V3: --layers 2 is layers 0 (dense) and 3 (MoE). One MoE layer is 22.5 GB
// in bf16, so on a small host the memory check refuses it before loading (exit 2) and says
// which layers it would have run; where it fits, the result names them.
TEST(LayersCli, DeepSeekV3TwoLayersNameADenseAndAMoeLayer) {
  const std::string out = FreshDir("layers_deepseek");
  const CliResult r = RunCli({"run", "--model", "deepseek-v3", "--layers", "2", "--results-dir",
                              SharedResultsDir(), "--out", out, "--prompt-len", "8", "--gen-len",
                              "1", "--repetitions", "1", "--warmup", "0", "-q"});
  if (r.exit_code == 2) {
    EXPECT_NE(r.err.find("layers: 0 (mla/dense), 3 (mla/moe)"), std::string::npos) << r.err;
    return;
  }
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json doc = json::parse(ReadText(ListFiles(out).at(0)));
  EXPECT_EQ(doc["workload"]["layers_run_indices"], json::array({0, 3}));
}

}  // namespace
}  // namespace cb::testing
