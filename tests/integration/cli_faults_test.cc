// Faults: a backend that yields NaN or wrong logits is reported INVALID (exit 1, never as a
// speed), and Ctrl-C during a run writes nothing partial and exits 130.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <thread>

#include "tests/integration/cli_harness.h"

namespace cb::testing {
namespace {

using nlohmann::json;

class CliFaults : public ::testing::TestWithParam<const char*> {};

TEST_P(CliFaults, WrongLogitsMakeTheRunInvalid) {
  const std::string out = FreshDir(std::string("fault_") + GetParam());
  const CliResult r = RunCli({"run", "--results-dir", SharedResultsDir(), "--out", out, "--model",
                              "tiny", "--prompt-len", "8", "--gen-len", "2", "--repetitions", "1",
                              "--inject-fault", GetParam(), "--format", "csv"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  const auto files = ListFiles(out);
  ASSERT_EQ(files.size(), 1u);  // the invalid run is kept, labelled
  const json doc = json::parse(ReadText(files[0]));
  EXPECT_EQ(doc["run"]["status"], "invalid");
  EXPECT_EQ(doc["verification"]["status"], "failed");
  EXPECT_FALSE(doc["metrics"].contains("decode_tokens_per_second"));
  EXPECT_NE(r.out.find("invalid"), std::string::npos) << r.out;
}

INSTANTIATE_TEST_SUITE_P(Modes, CliFaults, ::testing::Values("nan-logits", "skew-logits"));

TEST(CliSignals, CtrlCDuringARunWritesNothingAndExits130) {
  const std::string out = FreshDir("sigint");
  const std::string err_path = FreshDir("sigint_err") + "/err.txt";
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    freopen(err_path.c_str(), "w", stderr);
    freopen("/dev/null", "w", stdout);
    execl(CLUSTERBENCH_BIN, CLUSTERBENCH_BIN, "run", "--results-dir", SharedResultsDir().c_str(),
          "--out", out.c_str(), "--model", "tiny", "--prompt-len", "64", "--gen-len", "512",
          "--repetitions", "100000", "--warmup", "0", nullptr);
    _exit(127);
  }
  // Wait until measurement has started, then interrupt.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (ReadText(err_path).find("repetition 1/") == std::string::npos &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_NE(ReadText(err_path).find("repetition 1/"), std::string::npos) << ReadText(err_path);
  kill(pid, SIGINT);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 130) << ReadText(err_path);
  EXPECT_TRUE(ListFiles(out).empty());
}

}  // namespace
}  // namespace cb::testing
