#include "harness/progress.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace cb {
namespace {

bool DetectTerminal() {
  const char* forced = std::getenv("CLUSTERBENCH_PROGRESS");
  if (forced && std::strcmp(forced, "plain") == 0) return false;
  if (forced && std::strcmp(forced, "tty") == 0) return true;
  return isatty(STDERR_FILENO) == 1;
}

size_t TerminalWidth() {
  winsize ws{};
  if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 20) return ws.ws_col;
  return 100;
}

}  // namespace

PlanProgress& PlanProgress::Get() {
  static PlanProgress progress;
  return progress;
}

void PlanProgress::Start(std::vector<double> work, bool quiet) {
  tty_ = DetectTerminal();
  quiet_ = quiet;
  work_ = std::move(work);
  index_ = 0;
  fraction_ = 0;
  drawn_ = false;
  start_ = std::chrono::steady_clock::now();
}

void PlanProgress::BeginRun(size_t index) {
  index_ = index;
  fraction_ = 0;
}

std::string PlanProgress::Clock(double seconds) {
  const long s = seconds > 0 ? static_cast<long>(seconds + 0.5) : 0;
  char buf[32];
  if (s >= 3600) {
    std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
  } else {
    std::snprintf(buf, sizeof buf, "%ld:%02ld", s / 60, s % 60);
  }
  return buf;
}

std::string PlanProgress::StatusText(size_t index, size_t runs, double done, double total,
                                     double elapsed_s, const std::string& what) {
  std::string eta = "ETA --:--";
  // Once some work is done, the rate of finished work predicts the rest.
  if (total > 0 && done > 0.02 * total && elapsed_s > 1) {
    eta = "ETA " + Clock(elapsed_s * (total - done) / done);
  }
  return "[" + std::to_string(index + 1) + "/" + std::to_string(runs) + "] " + Clock(elapsed_s) +
         " elapsed, " + eta + " | " + what;
}

void PlanProgress::Step(const std::string& prefix, const std::string& what, double fraction) {
  if (quiet_) return;
  if (!tty_) {
    std::fprintf(stderr, "%s %s\n", prefix.c_str(), what.c_str());
    return;
  }
  if (fraction >= 0) fraction_ = std::clamp(fraction, 0.0, 1.0);
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  double done = 0, total = 0;
  for (size_t i = 0; i < work_.size(); ++i) {
    total += work_[i];
    if (i < index_) done += work_[i];
  }
  if (index_ < work_.size()) done += fraction_ * work_[index_];
  Draw(StatusText(index_, std::max<size_t>(work_.size(), 1), done, total, elapsed, what));
}

void PlanProgress::Line(const std::string& text) {
  Clear();
  std::fprintf(stderr, "%s\n", text.c_str());
  std::fflush(stderr);
}

void PlanProgress::Finish() { Clear(); }

void PlanProgress::Draw(const std::string& text) {
  std::string line = text;
  const size_t width = TerminalWidth() - 1;
  if (line.size() > width) line = line.substr(0, width - 3) + "...";
  std::fprintf(stderr, "\r\033[K%s", line.c_str());
  std::fflush(stderr);
  drawn_ = true;
}

void PlanProgress::Clear() {
  if (!drawn_) return;
  std::fprintf(stderr, "\r\033[K");
  drawn_ = false;
}

}  // namespace cb
