#include "tests/integration/cli_harness.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

namespace cb::testing {
namespace fs = std::filesystem;

namespace {
std::string Quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}
}  // namespace

std::string ReadText(const std::string& path) {
  std::ifstream in(path);
  std::stringstream b;
  b << in.rdbuf();
  return b.str();
}

void WriteText(const std::string& path, const std::string& text) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path) << text;
}

std::string SharedResultsDir() { return CLUSTERBENCH_TEST_RESULTS; }

pid_t Spawn(const std::string& program, const std::vector<std::string>& args,
            const std::string& err_path) {
  std::vector<std::string> argv_store = {program};
  argv_store.insert(argv_store.end(), args.begin(), args.end());
  const pid_t pid = fork();
  if (pid != 0) return pid;
  setpgid(0, 0);  // its own group: a signal meant for it does not reach the test
  if (!freopen(err_path.c_str(), "w", stderr) || !freopen("/dev/null", "w", stdout)) _exit(126);
  std::vector<char*> argv;
  for (std::string& a : argv_store) argv.push_back(a.data());
  argv.push_back(nullptr);
  execv(program.c_str(), argv.data());
  _exit(127);
}

bool WaitForText(const std::string& path, const std::string& needle, double seconds) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < deadline) {
    if (ReadText(path).find(needle) != std::string::npos) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

int WaitForExit(pid_t pid, double seconds) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  int status = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    if (waitpid(pid, &status, WNOHANG) == pid) {
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  kill(-pid, SIGKILL);
  kill(pid, SIGKILL);
  waitpid(pid, &status, 0);
  return -1;
}

int ValidateAgainstSchema(const std::vector<std::string>& files) {
  std::string cmd =
      "/usr/bin/python3 " CLUSTERBENCH_SOURCE_DIR
      "/tests/tools/validate_json.py " CLUSTERBENCH_SOURCE_DIR "/results/schema/run.schema.json";
  for (const auto& f : files) cmd += " '" + f + "'";
  const int status = std::system(cmd.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

namespace {
/// This process's scratch root, scratch/<pid>: CTest runs tests in processes of their own,
/// possibly at once (ctest -j), and each must not clear another's directories. The roots of
/// processes that have exited are removed the first time; other entries are left alone.
const fs::path& ScratchRoot() {
  static const fs::path root = [] {
    const fs::path all = fs::path(CLUSTERBENCH_TEST_RESULTS) / "scratch";
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(all, ec)) {
      const std::string name = e.path().filename().string();
      const bool pid =
          !name.empty() && name.size() <= 9 && std::all_of(name.begin(), name.end(), ::isdigit);
      // Only other processes' roots: the Python tests keep their own directories here.
      if (pid && kill(std::stoi(name), 0) != 0 && errno == ESRCH) fs::remove_all(e.path(), ec);
    }
    return all / std::to_string(getpid());
  }();
  return root;
}
}  // namespace

std::string FreshDir(const std::string& name) {
  const fs::path p = ScratchRoot() / name;
  fs::remove_all(p);
  fs::create_directories(p);
  return p.string();
}

std::vector<std::string> ListFiles(const std::string& dir) {
  std::vector<std::string> files;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) files.push_back(e.path().string());
  std::sort(files.begin(), files.end());
  return files;
}

CliResult RunCli(const std::vector<std::string>& args) {
  return RunProgram(CLUSTERBENCH_BIN, args);
}

CliResult RunProgram(const std::string& program, const std::vector<std::string>& args) {
  const std::string err_path = FreshDir("stderr") + "/err.txt";
  std::string cmd = Quote(program);
  for (const auto& a : args) cmd += " " + Quote(a);
  cmd += " 2>" + Quote(err_path) + " </dev/null";
  CliResult r;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  const int status = pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.err = ReadText(err_path);
  return r;
}

}  // namespace cb::testing
