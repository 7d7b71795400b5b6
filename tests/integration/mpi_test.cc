// clusterbench under mpirun: tensor and data parallel runs compute what one rank computes,
// a failing rank ends the job quickly with exit code 1, and an impossible split is bad input.
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <tuple>

#include "tests/integration/cli_harness.h"

namespace cb::testing {
namespace {

using nlohmann::json;

/// 8 query heads and 4 KV heads: splits 1, 2 and 4 ways.
std::string ModelFile() {
  const std::string path = FreshDir("mpi_model") + "/tiny-tp4.json";
  WriteText(path, R"({"name": "tiny-tp4", "hidden_size": 128, "num_layers": 2, "num_heads": 8,
                      "num_kv_heads": 4, "head_dim": 16, "ffn_size": 256, "vocab_size": 512,
                      "max_context": 256})");
  return path;
}

std::vector<std::string> RunArgs(const std::string& model, const std::string& out,
                                 const char* repetitions = "2") {
  return {"run",
          "--model",
          model,
          "--results-dir",
          SharedResultsDir(),
          "--out",
          out,
          "--dtype",
          "fp32",
          "--batch",
          "4",
          "--prompt-len",
          "16",
          "--gen-len",
          "4",
          "--repetitions",
          repetitions,
          "--warmup",
          "1",
          "--collective-timeout",
          "60",
          "-q"};
}

CliResult MpiRun(int ranks, std::vector<std::string> args) {
  std::vector<std::string> cmd = {"--allow-run-as-root", "--oversubscribe", "-np",
                                  std::to_string(ranks), CLUSTERBENCH_BIN};
  cmd.insert(cmd.end(), args.begin(), args.end());
  return RunProgram(CLUSTERBENCH_MPIRUN, cmd);
}

json OnlyResult(const std::string& dir) {
  const auto files = ListFiles(dir);
  EXPECT_EQ(files.size(), 1u) << dir;
  return files.empty() ? json() : json::parse(ReadText(files[0]));
}

class ParallelMatchesSingleRank : public ::testing::TestWithParam<std::vector<int>> {};

TEST_P(ParallelMatchesSingleRank, SameTokensAndVerified) {
  const int tp = GetParam()[0], dp = GetParam()[1];
  const std::string model = ModelFile();
  const std::string single_dir = FreshDir("mpi_single");
  const CliResult single = RunCli(RunArgs(model, single_dir));
  ASSERT_EQ(single.exit_code, 0) << single.err;
  const json base = OnlyResult(single_dir);

  const std::string dir = FreshDir("mpi_tp" + std::to_string(tp) + "_dp" + std::to_string(dp));
  auto args = RunArgs(model, dir);
  args.insert(args.end(), {"--tp", std::to_string(tp), "--dp", std::to_string(dp)});
  const CliResult r = MpiRun(tp * dp, args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json doc = OnlyResult(dir);  // rank 0 alone writes
  EXPECT_EQ(doc["run"]["status"], "ok");
  EXPECT_EQ(doc["verification"]["status"], "passed");
  // fp32: the same greedy tokens as one rank, for the first sequence.
  EXPECT_EQ(doc["generated_tokens"], base["generated_tokens"]);
  ASSERT_TRUE(doc.contains("cluster"));
  EXPECT_EQ(doc["cluster"]["world_size"], tp * dp);
  EXPECT_EQ(doc["cluster"]["tp"], tp);
  EXPECT_EQ(doc["cluster"]["dp"], dp);
  EXPECT_EQ(doc["cluster"]["ep"], 1);
  EXPECT_EQ(doc["cluster"]["ranks"].size(), static_cast<size_t>(tp * dp));
  const json& m = doc["metrics"];
  EXPECT_GT(m["decode_tokens_per_second"]["value"].get<double>(), 0);
  EXPECT_NEAR(m["decode_tokens_per_second_per_device"]["value"].get<double>() * tp * dp,
              m["decode_tokens_per_second"]["value"].get<double>(),
              1e-6 * m["decode_tokens_per_second"]["value"].get<double>());
  if (tp > 1) {
    EXPECT_GT(m["communication_share_ratio"]["value"].get<double>(), 0);
  }
}

INSTANTIATE_TEST_SUITE_P(Layouts, ParallelMatchesSingleRank,
                         ::testing::Values(std::vector<int>{2, 1}, std::vector<int>{4, 1},
                                           std::vector<int>{1, 2}, std::vector<int>{2, 2}));

TEST(Mpi, AFailingRankEndsTheJobWithExitCode1) {
  const std::string dir = FreshDir("mpi_fault");
  auto args = RunArgs(ModelFile(), dir);
  args.insert(args.end(), {"--tp", "2", "--inject-fault", "throw-on-rank:1"});
  const auto start = std::chrono::steady_clock::now();
  const CliResult r = MpiRun(2, args);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_LT(seconds, 30);
  EXPECT_NE(r.err.find("rank 1"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("injected fault"), std::string::npos) << r.err;
  const json doc = OnlyResult(dir);
  EXPECT_EQ(doc["run"]["status"], "failed");
}

/// The pid of world rank `rank` among `launcher`'s descendants (Open MPI sets
/// OMPI_COMM_WORLD_RANK in each rank's environment); 0 when not (yet) found.
pid_t RankPid(pid_t launcher, int rank) {
  const std::string want = "OMPI_COMM_WORLD_RANK=" + std::to_string(rank);
  for (const auto& e : std::filesystem::directory_iterator("/proc")) {
    const std::string name = e.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string env = ReadText(e.path().string() + "/environ");
    std::replace(env.begin(), env.end(), '\0', '\n');
    if (env.find(want + "\n") == std::string::npos) continue;
    if (ReadText(e.path().string() + "/cmdline").find("clusterbench") == std::string::npos)
      continue;
    return static_cast<pid_t>(std::stol(name));
  }
  (void)launcher;
  return 0;
}

TEST(Mpi, ASignalToOneRankEndsTheJobWith130) {
  const std::string dir = FreshDir("mpi_sigterm");
  const std::string err = dir + "/err.txt";
  // Long enough to be mid-run when the signal comes.
  auto args = RunArgs(ModelFile(), dir + "/out", "100000");
  args.insert(args.end(), {"--tp", "2"});
  for (auto it = args.begin(); it != args.end(); ++it) {
    if (*it == "-q") {
      args.erase(it);
      break;
    }
  }
  std::vector<std::string> cmd = {"--allow-run-as-root", "--oversubscribe", "-np", "2",
                                  CLUSTERBENCH_BIN};
  cmd.insert(cmd.end(), args.begin(), args.end());
  const pid_t mpirun = Spawn(CLUSTERBENCH_MPIRUN, cmd, err);
  ASSERT_TRUE(WaitForText(err, "repetition 1/", 120)) << ReadText(err);
  const pid_t rank1 = RankPid(mpirun, 1);
  ASSERT_GT(rank1, 0);
  const auto t0 = std::chrono::steady_clock::now();
  kill(rank1, SIGTERM);
  const int code = WaitForExit(mpirun, 30);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const std::string text = ReadText(err);
  EXPECT_EQ(code, 130) << text;
  EXPECT_LT(seconds, 10) << text;
  // One message from rank 0, naming the interrupted rank.
  size_t count = 0;
  for (size_t at = text.find("clusterbench run: interrupted"); at != std::string::npos;
       at = text.find("clusterbench run: interrupted", at + 1)) {
    ++count;
  }
  EXPECT_EQ(count, 1u) << text;
  EXPECT_NE(text.find("rank 1"), std::string::npos) << text;
  EXPECT_TRUE(ListFiles(dir + "/out").empty());
}

TEST(Mpi, TensorParallelThatDoesNotDivideHeadsIsBadInput) {
  const std::string dir = FreshDir("mpi_bad_tp");
  auto args = RunArgs(ModelFile(), dir);
  args.insert(args.end(), {"--tp", "3"});
  const CliResult r = MpiRun(3, args);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("does not divide num_heads"), std::string::npos) << r.err;
  EXPECT_TRUE(ListFiles(dir).empty());
}

TEST(Mpi, RanksMustEqualTpTimesDp) {
  auto args = RunArgs(ModelFile(), FreshDir("mpi_bad_layout"));
  args.insert(args.end(), {"--tp", "2", "--dp", "2"});
  const CliResult r = MpiRun(2, args);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("but the job has 2"), std::string::npos) << r.err;
}

// MoE under tensor parallelism: the routed experts are split by expert over the ranks (each
// computes its experts for every token, the allreduce combines them), attention and shared
// experts by heads / FFN columns. fp32: the same greedy tokens as one rank, verified.
class MoeParallelMatchesSingleRank : public ::testing::TestWithParam<int> {};

TEST_P(MoeParallelMatchesSingleRank, SameTokensAndVerified) {
  const int tp = GetParam();
  const std::string single_dir = FreshDir("mpi_moe_single");
  const CliResult single = RunCli(RunArgs("tiny-moe-mla", single_dir));
  ASSERT_EQ(single.exit_code, 0) << single.err;
  const json base = OnlyResult(single_dir);
  const std::string dir = FreshDir("mpi_moe_tp" + std::to_string(tp));
  auto args = RunArgs("tiny-moe-mla", dir);
  args.insert(args.end(), {"--tp", std::to_string(tp)});
  const CliResult r = MpiRun(tp, args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json doc = OnlyResult(dir);
  EXPECT_EQ(doc["run"]["status"], "ok");
  EXPECT_EQ(doc["verification"]["status"], "passed");
  EXPECT_EQ(doc["generated_tokens"], base["generated_tokens"]);
  // Both load measures exist: per expert (the same routing as one rank) and per rank.
  EXPECT_EQ(doc["metrics"]["moe_load_imbalance_ratio"]["value"],
            base["metrics"]["moe_load_imbalance_ratio"]["value"]);
  EXPECT_GE(doc["metrics"]["moe_rank_load_imbalance_ratio"]["value"].get<double>(), 1.0);
}

INSTANTIATE_TEST_SUITE_P(TensorParallel, MoeParallelMatchesSingleRank, ::testing::Values(2, 4));

// Expert parallelism: --ep N on N ranks, each running attention for its share of the batch
// and 1/N of the experts; (token, expert) rows go to the expert's rank and back through
// alltoallv, in the session dtype (bf16 rows on the wire in bf16; one rank rounds expert
// outputs to bf16 the same way before combining). Every replica is verified against the whole
// model on the reference; the first sequence's greedy tokens are one rank's.
class MoeExpertParallelMatchesSingleRank
    : public ::testing::TestWithParam<std::tuple<int, const char*>> {};

TEST_P(MoeExpertParallelMatchesSingleRank, SameTokensAndVerified) {
  const int ep = std::get<0>(GetParam());
  const std::string dtype = std::get<1>(GetParam());
  auto with_dtype = [&](std::vector<std::string> args) {
    for (size_t i = 0; i + 1 < args.size(); ++i) {
      if (args[i] == "--dtype") args[i + 1] = dtype;
    }
    return args;
  };
  const std::string single_dir = FreshDir("mpi_moe_ep_single");
  const CliResult single = RunCli(with_dtype(RunArgs("tiny-moe-mla", single_dir)));
  ASSERT_EQ(single.exit_code, 0) << single.err;
  const json base = OnlyResult(single_dir);
  const std::string dir = FreshDir("mpi_moe_ep" + std::to_string(ep) + dtype);
  auto args = with_dtype(RunArgs("tiny-moe-mla", dir));
  args.insert(args.end(), {"--ep", std::to_string(ep)});
  const CliResult r = MpiRun(ep, args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json doc = OnlyResult(dir);
  EXPECT_EQ(doc["workload"]["dtype"], dtype);
  EXPECT_EQ(doc["run"]["status"], "ok");
  EXPECT_EQ(doc["verification"]["status"], "passed");
  EXPECT_EQ(doc["generated_tokens"], base["generated_tokens"]);
  EXPECT_EQ(doc["cluster"]["dp"], ep);
  EXPECT_EQ(doc["cluster"]["ep"], ep);
}

INSTANTIATE_TEST_SUITE_P(ExpertParallel, MoeExpertParallelMatchesSingleRank,
                         ::testing::Values(std::make_tuple(2, "fp32"), std::make_tuple(4, "fp32"),
                                           std::make_tuple(2, "bf16")),
                         [](const auto& info) {
                           return "ep" + std::to_string(std::get<0>(info.param)) + "_" +
                                  std::get<1>(info.param);
                         });

// MBU's bytes: replicas that shard the experts read each expert once per step for the whole
// batch; plain data-parallel replicas each read the experts their own tokens pick.
TEST(MpiMoe, ExpertParallelReadsSharedExpertsOnce) {
  auto decode_bytes_per_step = [](const json& doc) {
    const json& m = doc["metrics"];
    const double steps = 4 * 4;  // batch x gen-len of RunArgs
    const double time = steps / m["decode_tokens_per_second"]["value"].get<double>();
    return m["decode_bytes_per_second"]["value"].get<double>() * time / 4;
  };
  double bytes[2] = {0, 0};
  const char* layouts[2] = {"--ep", "--dp"};
  for (int i = 0; i < 2; ++i) {
    const std::string dir = FreshDir(std::string("mpi_moe_bytes") + layouts[i]);
    // One repetition: with an even count the median of tokens/s (per repetition) and the
    // bytes/s (over the median time) come from different times on a busy host.
    auto args = RunArgs("tiny-moe-mla", dir, "1");
    args.insert(args.end(), {layouts[i], "2", "--no-verify"});
    const CliResult r = MpiRun(2, args);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    bytes[i] = decode_bytes_per_step(OnlyResult(dir));
  }
  EXPECT_LT(bytes[0], 0.985 * bytes[1]) << bytes[0] << " " << bytes[1];
  EXPECT_GT(bytes[0], 0.5 * bytes[1]);  // the attention and dense weights are still per replica
}

TEST(MpiMoe, ExpertParallelNeedsOneRankPerShard) {
  const std::string dir = FreshDir("mpi_moe_ep_bad");
  auto args = RunArgs("tiny-moe-mla", dir);
  args.insert(args.end(), {"--ep", "2", "--tp", "2"});
  const CliResult r = MpiRun(2, args);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("--ep 2"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace cb::testing
