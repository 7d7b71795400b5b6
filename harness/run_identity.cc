#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <random>

#include "harness/runner.h"

namespace cb {
namespace {

std::string GitCommit() {
  const std::string cmd = "git -C '" + DataDir() + "' rev-parse HEAD 2>/dev/null";
  std::string out;
  if (FILE* p = popen(cmd.c_str(), "r")) {
    std::array<char, 128> buf{};
    while (fgets(buf.data(), buf.size(), p)) out += buf.data();
    pclose(p);
  }
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out.empty() ? "unknown" : out;
}

}  // namespace

std::string NowIso8601() {
  const auto now = std::chrono::system_clock::now();
  const std::time_t t = std::chrono::system_clock::to_time_t(now);
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[80];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms));
  return buf;
}

void StampRun(RunRecord* r) {
  static const std::string commit = GitCommit();
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  r->host = host;
  r->git_commit = commit;
  r->tool_version = CLUSTERBENCH_VERSION;
  r->start_time = NowIso8601();
  std::random_device rd;
  char id[64];
  std::snprintf(id, sizeof id, "%s-%08x", r->start_time.c_str(), rd());
  r->run_id = id;
  for (char& c : r->run_id) {
    if (c == ':' || c == '.') c = '-';
  }
}

}  // namespace cb
