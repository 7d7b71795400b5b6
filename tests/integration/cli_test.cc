// End-to-end tests of the clusterbench binary: real runs on the tiny model, the result files
// against the JSON schema, and the exit codes and messages for bad input.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "tests/integration/cli_harness.h"

namespace cb::testing {
namespace {

using nlohmann::json;

std::vector<std::string> RunArgs(const std::string& out, std::vector<std::string> extra) {
  std::vector<std::string> args = {"run", "--results-dir", SharedResultsDir(), "--out", out};
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

TEST(Cli, TinyModelRunWritesVerifiedResultsThatMatchTheSchema) {
  const std::string out = FreshDir("tiny_run");
  const CliResult r = RunCli(
      RunArgs(out, {"--model", "tiny", "--dtype", "fp32,bf16", "--batch", "2", "--prompt-len", "16",
                    "--gen-len", "4", "--repetitions", "3", "--format", "json"}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::vector<std::string> files = ListFiles(out);
  ASSERT_EQ(files.size(), 2u);
  EXPECT_EQ(ValidateAgainstSchema(files), 0);

  const json printed = json::parse(r.out);  // stdout carries results only
  ASSERT_EQ(printed.size(), 2u);
  for (const std::string& file : files) {
    const json doc = json::parse(ReadText(file));
    EXPECT_EQ(doc["run"]["status"], "ok");
    EXPECT_EQ(doc["verification"]["status"], "passed");
    EXPECT_LE(doc["verification"]["max_rel_error"].get<double>(),
              doc["verification"]["tolerance"].get<double>());
    EXPECT_EQ(doc["samples"].size(), 3u);
    EXPECT_EQ(doc["samples"][0]["decode_step_s"].size(), 4u);
    const json& m = doc["metrics"];
    for (const char* name :
         {"prefill_tokens_per_second", "decode_tokens_per_second", "ttft_seconds", "tpot_seconds",
          "e2e_latency_seconds", "mfu_prefill_ratio", "decode_bytes_per_second",
          "harness_overhead_ratio"}) {
      ASSERT_TRUE(m.contains(name)) << name;
      EXPECT_GT(m[name]["value"].get<double>(), 0) << name;
      EXPECT_EQ(m[name]["how"], "measured") << name;
    }
    // Either an MBU or a note saying why there is none: the tiny model's steps (a few MiB)
    // fit in a last-level cache of 8 MiB or more, so memory bandwidth does not bound them.
    ASSERT_TRUE(doc.contains("ceiling_check"));
    bool said = false;
    for (const json& n : doc["ceiling_check"]["notes"]) {
      said |= n.get<std::string>().rfind("mbu_decode_ratio not reported", 0) == 0;
    }
    EXPECT_NE(m.contains("mbu_decode_ratio"), said) << doc["ceiling_check"].dump(1);
    if (doc["ceiling_check"]["cache_bytes"].get<double>() >= 8 << 20) {
      EXPECT_TRUE(said);
    }
    // Decode throughput is batch * gen_len over the decode time of the median repetition.
    EXPECT_EQ(m["tpot_seconds"]["distribution"]["count"], 12);
    EXPECT_EQ(doc["generated_tokens"].size(), 5u);  // the prefill's token + 4 decode steps
  }
}

TEST(Cli, PartialLayerRunIsLabelledExtrapolated) {
  const std::string out = FreshDir("extrapolated");
  const CliResult r =
      RunCli(RunArgs(out, {"--model", "tiny", "--layers", "2", "--prompt-len", "8", "--gen-len",
                           "2", "--repetitions", "2", "--format", "table"}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("extrapolated"), std::string::npos) << r.out;
  const std::vector<std::string> files = ListFiles(out);
  ASSERT_EQ(files.size(), 1u);
  const json doc = json::parse(ReadText(files[0]));
  EXPECT_TRUE(doc["workload"]["extrapolated"].get<bool>());
  EXPECT_EQ(doc["workload"]["layers_run"], 2);
  EXPECT_EQ(doc["metrics"]["decode_tokens_per_second"]["how"], "extrapolated");
  EXPECT_EQ(doc["metrics"]["harness_overhead_ratio"]["how"], "measured");
}

TEST(Cli, SmokeSuiteRunsAndPrintsATable) {
  const std::string out = FreshDir("smoke");
  const CliResult r = RunCli(RunArgs(out, {"--suite", "smoke", "--repetitions", "1"}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(ListFiles(out).size(), 4u);
  EXPECT_NE(r.out.find("tiny"), std::string::npos);
  EXPECT_NE(r.out.find("passed"), std::string::npos) << r.out;
}

struct BadInput {
  std::vector<std::string> args;
  std::string expect;  ///< part of the one-line error
};

class CliRejects : public ::testing::TestWithParam<BadInput> {};

TEST_P(CliRejects, WithExitCode2AndNoResultFile) {
  const std::string out = FreshDir("bad_input");
  const CliResult r = RunCli(RunArgs(out, GetParam().args));
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find(GetParam().expect), std::string::npos) << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;
  EXPECT_TRUE(ListFiles(out).empty());
}

INSTANTIATE_TEST_SUITE_P(
    BadInputs, CliRejects,
    ::testing::Values(BadInput{{"--model", "gpt-9"}, "unknown model 'gpt-9'"},
                      BadInput{{"--model", "tiny", "--backend", "tpu"}, "unknown backend 'tpu'"},
                      BadInput{{"--model", "tiny", "--dtype", "int4"},
                               "allowed values: fp32, bf16"},
                      BadInput{{"--model", "tiny", "--prompt-len", "1000", "--gen-len", "100"},
                               "exceeds the context"},
                      BadInput{{"--model", "tiny", "--batch", "x"}, "--batch expects integers"},
                      BadInput{{"--model", "tiny", "--format", "xml"}, "xml"},
                      BadInput{{"--model", "llama-3.1-70b", "--batch", "64"}, "needs about"},
                      BadInput{{"--suite", "no-such-suite"}, "cannot read suite file"},
                      BadInput{{"--model", "tiny", "--repetitions", "0"}, "repetitions"},
                      BadInput{{}, "give --model"}));

TEST(Cli, MalformedModelFileNamesLineAndColumn) {
  const std::string dir = FreshDir("bad_model");
  const std::string path = dir + "/model.json";
  WriteText(path, "{\n  \"name\": \"x\",\n  \"hidden_size\": 64\n  \"num_layers\": 2\n}\n");
  const std::string out = FreshDir("bad_model_out");
  const CliResult r = RunCli(RunArgs(out, {"--model", path}));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find(path + ":4:"), std::string::npos) << r.err;
  EXPECT_TRUE(ListFiles(out).empty());
}

TEST(Cli, ImpossibleShapeNamesTheField) {
  const std::string dir = FreshDir("bad_shape");
  const std::string path = dir + "/model.json";
  WriteText(path, R"({"name": "x", "hidden_size": 64, "num_layers": 2, "num_heads": 4,
                      "num_kv_heads": 3, "ffn_size": 128, "vocab_size": 100})");
  const CliResult r = RunCli(RunArgs(FreshDir("bad_shape_out"), {"--model", path}));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("field 'num_kv_heads'"), std::string::npos) << r.err;
}

TEST(Cli, ModelsAndBackendsList) {
  const CliResult models = RunCli({"models"});
  ASSERT_EQ(models.exit_code, 0) << models.err;
  for (const char* name :
       {"llama-3.2-1b", "llama-3.1-8b", "llama-3.1-70b", "qwen2.5-7b", "qwen3-32b", "tiny"}) {
    EXPECT_NE(models.out.find(name), std::string::npos) << name;
  }
  const CliResult backends = RunCli({"backends"});
  ASSERT_EQ(backends.exit_code, 0) << backends.err;
  EXPECT_NE(backends.out.find("cpu"), std::string::npos);
  EXPECT_NE(backends.out.find("available"), std::string::npos);
}

TEST(Cli, HelpOnEverySubcommand) {
  for (const char* sub : {"run", "models", "backends", "micro"}) {
    const CliResult r = RunCli({sub, "--help"});
    EXPECT_EQ(r.exit_code, 0) << sub;
    EXPECT_NE(r.out.find("--help"), std::string::npos) << sub;
  }
  EXPECT_EQ(RunCli({"frobnicate"}).exit_code, 2);
}

}  // namespace
}  // namespace cb::testing
