// Robustness: no crash, no hang, no silent change on hostile inputs. Each class of problem
// found by hand (huge fields, wraparound, near-zero rates, huge device counts, bad output
// directories, devices as model files, long names, numbers out of range, idle clients of
// `serve`, stale temporary files) has a regression test here.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <thread>

#include "tests/integration/cli_harness.h"

namespace cb::testing {
namespace {

using nlohmann::json;

struct Hostile {
  std::string name;
  std::vector<std::string> args;  ///< after `run --out DIR`; "%DIR%" is a scratch directory
  std::string expect;             ///< part of the one-line error
};

std::string Scratch(const std::string& name) { return FreshDir("robust_" + name); }

/// Writes a model file whose `field` is `value` (raw JSON text) into `dir`.
std::string ModelWith(const std::string& dir, const std::string& field, const std::string& value) {
  const std::string path = dir + "/model.json";
  std::string text = R"({"name": "m", "hidden_size": 64, "num_layers": 2, "num_heads": 4,
    "num_kv_heads": 2, "ffn_size": 128, "vocab_size": 256, "max_context": 512})";
  text = std::regex_replace(text, std::regex("\"" + field + "\": [^,}]+"),
                            "\"" + field + "\": " + value);
  if (text.find("\"" + field + "\"") == std::string::npos) {
    text.insert(1, "\"" + field + "\": " + value + ", ");
  }
  WriteText(path, text);
  return path;
}

class HostileInput : public ::testing::TestWithParam<Hostile> {};

TEST_P(HostileInput, ExitsTwoQuicklyNamingTheFieldAndWritesNothing) {
  const Hostile& h = GetParam();
  const std::string dir = Scratch(h.name);
  const std::string out = dir + "/out";
  std::vector<std::string> args = {"run", "--results-dir", SharedResultsDir(), "--out",
                                   out,   "--quiet"};
  for (std::string a : h.args) {
    if (a == "%MODEL_HIDDEN%") a = ModelWith(dir, "hidden_size", "4611686018427387904");
    if (a == "%MODEL_1E400%") a = ModelWith(dir, "ffn_size", "1e400");
    if (a == "%MODEL_LONGNAME%") a = ModelWith(dir, "name", "\"" + std::string(300, 'x') + "\"");
    if (a == "%MODEL_COLON%") a = ModelWith(dir, "name", "\"a:b/c\"");
    if (a == "%SUITE_HUGE%") {
      json lists = json::array();
      for (int i = 1; i <= 60; ++i) lists.push_back(i);
      WriteText(dir + "/suite.json", json{{"workloads", json::array({{{"model", "tiny"},
                                                                      {"batch", lists},
                                                                      {"prompt_len", lists},
                                                                      {"gen_len", lists}}})}}
                                         .dump());
      a = dir + "/suite.json";
    }
    args.push_back(a);
  }
  const auto t0 = std::chrono::steady_clock::now();
  const CliResult r = RunCli(args);
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(r.exit_code, 2) << h.name << ": " << r.err;
  EXPECT_NE(r.err.find(h.expect), std::string::npos) << h.name << ": " << r.err;
  EXPECT_EQ(r.err.find("internal error"), std::string::npos) << r.err;
  EXPECT_LT(wall, 10.0) << h.name;  // found before anything was measured
  EXPECT_TRUE(ListFiles(out).empty()) << h.name;
}

INSTANTIATE_TEST_SUITE_P(
    Classes, HostileInput,
    ::testing::Values(
        Hostile{"huge_field", {"--model", "%MODEL_HIDDEN%"}, "field 'hidden_size'"},
        Hostile{"number_1e400", {"--model", "%MODEL_1E400%"}, "malformed JSON"},
        Hostile{"long_name", {"--model", "%MODEL_LONGNAME%"}, "field 'name'"},
        Hostile{"name_in_file_names", {"--model", "%MODEL_COLON%"}, "field 'name'"},
        Hostile{"layers_wrap", {"--model", "tiny", "--layers", "4294967297"}, "field 'layers'"},
        Hostile{"warmup_wrap", {"--model", "tiny", "--warmup", "4294967297"}, "warmup"},
        Hostile{
            "batch_huge", {"--model", "tiny", "--batch", "4611686018427387904"}, "field 'batch'"},
        Hostile{"rate_near_zero",
                {"--model", "tiny", "--scenario", "server", "--rate", "1e-300"},
                "field 'rate'"},
        Hostile{"device_file", {"--model", "/dev/zero"}, "not a regular file"},
        Hostile{"directory_as_suite", {"--suite", "/tmp/"}, "not a regular file"},
        Hostile{"suite_explodes", {"--suite", "%SUITE_HUGE%"}, "100000"},
        Hostile{"devices_huge",
                {"--model", "tiny", "--backend", "sim", "--devices", "65537"},
                "field 'devices'"},
        Hostile{"fault_overflow",
                {"--model", "tiny", "--inject-fault", "throw-on-rank:99999999999"},
                "--inject-fault"},
        Hostile{"out_unwritable", {"--model", "tiny", "--out", "/proc/clusterbench"}, "--out"},
        Hostile{"out_empty", {"--model", "tiny", "--out", ""}, "--out"}),
    [](const ::testing::TestParamInfo<Hostile>& info) { return info.param.name; });

TEST(Robustness, AHugeSimulatedDeploymentFinishesFast) {
  const std::string out = Scratch("sim_devices");
  const auto t0 = std::chrono::steady_clock::now();
  const CliResult r =
      RunCli({"run", "--out", out, "--quiet", "--backend", "sim", "--devices", "65536", "--tp", "1",
              "--batch", "65536", "--model", "tiny", "--prompt-len", "8", "--gen-len", "2"});
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_LT(wall, 5.0);
  // Experts placed over a large EP group without a quadratic search.
  const auto t1 = std::chrono::steady_clock::now();
  const CliResult e = RunCli({"run",
                              "--out",
                              out + "/ep",
                              "--quiet",
                              "--backend",
                              "sim",
                              "--devices",
                              "16384",
                              "--ep",
                              "16384",
                              "--redundant-experts",
                              "16128",
                              "--batch",
                              "16384",
                              "--model",
                              "deepseek-v3",
                              "--dtype",
                              "int8",
                              "--prompt-len",
                              "8",
                              "--gen-len",
                              "2"});
  EXPECT_EQ(e.exit_code, 0) << e.err;
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count(), 10.0);
}

TEST(Robustness, CtrlCEndsAWaitForASlowArrival) {
  const std::string dir = Scratch("slow_rate");
  const std::string err = dir + "/err.txt";
  // One request every 1,000 s on average: the pass waits for its first arrival.
  const pid_t pid = Spawn(CLUSTERBENCH_BIN,
                          {"run",
                           "--results-dir",
                           SharedResultsDir(),
                           "--out",
                           dir + "/out",
                           "--model",
                           "tiny",
                           "--scenario",
                           "server",
                           "--rate",
                           "0.001",
                           "--requests",
                           "3",
                           "--warmup-requests",
                           "0",
                           "--prompt-len",
                           "8",
                           "--gen-len",
                           "2",
                           "--no-verify"},
                          err);
  ASSERT_TRUE(WaitForText(err, "serving 3 requests", 120)) << ReadText(err);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const auto t0 = std::chrono::steady_clock::now();
  kill(pid, SIGINT);
  EXPECT_EQ(WaitForExit(pid, 10), 130) << ReadText(err);
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 1.5);
  EXPECT_TRUE(ListFiles(dir + "/out").empty());
}

TEST(Robustness, StaleTemporaryFilesOfDeadWritersAreRemoved) {
  const std::string out = Scratch("stale_tmp");
  const pid_t dead = fork();
  if (dead == 0) _exit(0);
  waitpid(dead, nullptr, 0);
  const std::string stale = out + "/old.json.tmp." + std::to_string(dead) + ".ab12cd";
  const std::string live = out + "/new.json.tmp." + std::to_string(getpid()) + ".ef34gh";
  WriteText(stale, "{half a record");
  WriteText(live, "{being written");
  const CliResult r = RunCli({"run", "--results-dir", SharedResultsDir(), "--out", out, "--model",
                              "tiny", "--backend", "sim", "--prompt-len", "8", "--gen-len", "2"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_FALSE(std::ifstream(stale).good()) << "a dead writer's temporary file survived";
  EXPECT_TRUE(std::ifstream(live).good()) << "a live writer's temporary file was removed";
  EXPECT_NE(r.err.find("removed 1 temporary file"), std::string::npos) << r.err;
}

/// A TCP connection to 127.0.0.1:port, or -1.
int Connect(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    close(fd);
    return -1;
  }
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

/// GET /metrics on a fresh connection; the status line, or "" after 5 s.
std::string Scrape(int port) {
  const int fd = Connect(port);
  if (fd < 0) return "";
  const std::string req = "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  if (send(fd, req.data(), req.size(), 0) < 0) return "";
  char buf[256] = {};
  const ssize_t n = recv(fd, buf, sizeof buf - 1, 0);
  close(fd);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)).substr(0, 15) : "";
}

TEST(Robustness, ServeAnswersWhileClientsSitIdle) {
  const std::string dir = Scratch("serve_idle");
  const std::string err = dir + "/err.txt";
  const pid_t pid =
      Spawn(CLUSTERBENCH_BIN, {"serve", "--listen", "127.0.0.1:0", "--results", dir}, err);
  ASSERT_TRUE(WaitForText(err, "listening on", 10)) << ReadText(err);
  std::smatch m;
  const std::string text = ReadText(err);
  ASSERT_TRUE(std::regex_search(text, m, std::regex(":(\\d+)/metrics")));
  const int port = std::stoi(m[1]);
  // Idle connections (connected, silent) and a slow client (one byte, then nothing).
  std::vector<int> idle;
  for (int i = 0; i < 16; ++i) idle.push_back(Connect(port));
  const int slow = Connect(port);
  send(slow, "G", 1, 0);
  for (int i = 0; i < 20; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(Scrape(port), "HTTP/1.1 200 OK") << "scrape " << i;
    EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 1.0);
  }
  for (int fd : idle) close(fd);
  close(slow);
  kill(pid, SIGTERM);
  EXPECT_EQ(WaitForExit(pid, 10), 0) << ReadText(err);
}

}  // namespace
}  // namespace cb::testing
