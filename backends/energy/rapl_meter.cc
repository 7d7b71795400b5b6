#include "backends/energy/rapl_meter.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "harness/core/fmt.h"

namespace cb::energy {
namespace {

/// Used to estimate how fast a counter can wrap when the zone states no maximum power.
constexpr double kAssumedMaxPowerW = 1000;

int ReadRealFile(const std::string& path, std::string* out) {
  FILE* f = std::fopen(path.c_str(), "r");
  if (f == nullptr) return errno ? errno : EIO;
  char buf[256];
  out->clear();
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out->append(buf, n);
  const int err = std::ferror(f) ? (errno ? errno : EIO) : 0;
  std::fclose(f);
  return err;
}

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\r')) s.pop_back();
  return s;
}

}  // namespace

double NowS() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::string RaplAccessHint(const std::string& root) {
  return "since Linux 5.10 (CVE-2020-8694) energy_uj is readable by root only; grant read "
         "access with `sudo chmod a+r " +
         root + "/intel-rapl:*/energy_uj " + root +
         "/intel-rapl:*/intel-rapl:*/energy_uj` (until reboot) or a udev rule such as "
         "`ACTION==\"add\", SUBSYSTEM==\"powercap\", RUN+=\"/bin/chmod a+r /sys%p/energy_uj\"` "
         "in /etc/udev/rules.d/99-rapl.rules, or run as root";
}

RaplMeter::RaplMeter(RaplOptions options) : opt_(std::move(options)) {
  if (!opt_.read_file) opt_.read_file = ReadRealFile;
}

RaplMeter::~RaplMeter() { sampler_.Stop(); }

int RaplMeter::Read(const std::string& path, uint64_t* value) const {
  std::string text;
  if (const int err = opt_.read_file(path, &text); err != 0) return err;
  text = Trim(text);
  if (text.empty()) return EINVAL;
  char* end = nullptr;
  errno = 0;
  const unsigned long long v = std::strtoull(text.c_str(), &end, 10);
  if (errno != 0 || end == nullptr || *end != '\0') return EINVAL;
  *value = v;
  return 0;
}

Status RaplMeter::Discover(std::vector<Domain>* out, std::vector<std::string>* notes) const {
  namespace fs = std::filesystem;
  std::error_code ec;
  std::vector<std::string> zones;
  for (const auto& e : fs::directory_iterator(opt_.root, ec)) {
    const std::string n = e.path().filename().string();
    if (n.rfind("intel-rapl:", 0) == 0) zones.push_back(n);
  }
  if (ec && zones.empty()) {
    return Status::Unsupported("no RAPL: " + opt_.root + " is not readable (" + ec.message() +
                               "); the powercap driver is absent (a VM, or a kernel without "
                               "intel_rapl_msr)");
  }
  std::sort(zones.begin(), zones.end());
  bool any_dram = false;
  for (const std::string& zone : zones) {
    const int depth = static_cast<int>(std::count(zone.begin(), zone.end(), ':'));
    std::string name;
    const std::string dir = opt_.root + "/" + zone;
    if (opt_.read_file(dir + "/name", &name) != 0) {
      notes->push_back("RAPL zone " + zone + " has no readable name; skipped");
      continue;
    }
    name = Trim(name);
    Domain d;
    d.zone = zone;
    if (depth == 1) {
      if (name.rfind("package", 0) != 0) continue;  // psys would count the packages twice
      d.name = name;
    } else if (depth == 2) {
      if (name != "dram" || !opt_.include_dram) continue;  // core/uncore are inside the package
      std::string parent;
      const std::string parent_zone = zone.substr(0, zone.rfind(':'));
      if (opt_.read_file(opt_.root + "/" + parent_zone + "/name", &parent) != 0) {
        parent = parent_zone;
      }
      d.name = Trim(parent) + "/dram";
      any_dram = true;
    } else {
      continue;
    }
    if (const int err = Read(dir + "/max_energy_range_uj", &d.max_range_uj); err != 0) {
      notes->push_back("RAPL zone " + zone + " (" + d.name + "): max_energy_range_uj unreadable (" +
                       std::strerror(err) + "); skipped");
      continue;
    }
    uint64_t max_power_uw = 0;
    const double max_w =
        Read(dir + "/constraint_0_max_power_uw", &max_power_uw) == 0 && max_power_uw > 0
            ? max_power_uw * 1e-6
            : kAssumedMaxPowerW;
    d.wrap_period_s = d.max_range_uj * 1e-6 / max_w;
    out->push_back(d);
  }
  if (out->empty()) {
    return Status::Unsupported("no RAPL package domains under " + opt_.root +
                               " (no powercap driver: a VM, or a kernel without intel_rapl)");
  }
  if (!any_dram && opt_.include_dram) {
    notes->push_back(
        "no RAPL DRAM domain (AMD CPUs and some Intel ones expose none): DRAM "
        "energy is not included");
  }
  return Status::Ok();
}

Status RaplMeter::Start() {
  sampler_.Stop();
  std::vector<Domain> domains;
  std::vector<std::string> notes;
  CB_RETURN_IF_ERROR(Discover(&domains, &notes));
  for (Domain& d : domains) {
    const std::string path = opt_.root + "/" + d.zone + "/energy_uj";
    if (const int err = Read(path, &d.last_uj); err != 0) {
      if (err == EACCES || err == EPERM) {
        return Status::Unsupported(path + " is not readable (" + std::strerror(err) +
                                   "): " + RaplAccessHint(opt_.root));
      }
      return Status::Unsupported(path + " is not readable (" + std::strerror(err) + ")");
    }
  }
  double min_wrap = 0;
  for (const Domain& d : domains) {
    if (d.wrap_period_s > 0 && (min_wrap == 0 || d.wrap_period_s < min_wrap)) {
      min_wrap = d.wrap_period_s;
    }
  }
  double interval = opt_.sample_interval_s;
  if (min_wrap > 0) interval = std::min(interval, min_wrap / 4);
  interval = std::max(interval, kUpdatePeriodS);
  {
    std::lock_guard<std::mutex> lock(mu_);
    domains_ = std::move(domains);
    notes_ = std::move(notes);
    interval_s_ = interval;
    min_wrap_s_ = min_wrap;
    start_s_ = last_sample_s_ = NowS();
    max_gap_s_ = 0;
    read_failed_ = false;
    running_ = true;
  }
  sampler_.Start(interval, [this] { SampleNow(); });
  return Status::Ok();
}

void RaplMeter::SampleNow() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!running_) return;
  const double now = NowS();
  max_gap_s_ = std::max(max_gap_s_, now - last_sample_s_);
  last_sample_s_ = now;
  for (Domain& d : domains_) {
    uint64_t v = 0;
    const std::string path = opt_.root + "/" + d.zone + "/energy_uj";
    if (const int err = Read(path, &v); err != 0) {
      if (!read_failed_) {
        notes_.push_back("reading " + path + " failed during the window (" + std::strerror(err) +
                         ")");
      }
      read_failed_ = true;
      continue;
    }
    if (v >= d.last_uj) {
      d.total_uj += static_cast<double>(v - d.last_uj);
    } else {  // wrapped once (the sampling period is shorter than a wrap period)
      d.total_uj += static_cast<double>(d.max_range_uj - d.last_uj) + static_cast<double>(v);
      ++d.wraps;
    }
    d.last_uj = v;
  }
}

Status RaplMeter::StopReading(EnergyReading* out) {
  if (!running_) return Status::Internal("RaplMeter::Stop without a successful Start");
  sampler_.Stop();
  SampleNow();
  std::lock_guard<std::mutex> lock(mu_);
  running_ = false;
  EnergyReading r;
  r.source = "rapl";
  r.window_s = last_sample_s_ - start_s_;
  r.sampling_interval_s = interval_s_;
  r.notes = notes_;
  r.valid = !read_failed_;
  for (const Domain& d : domains_) {
    r.domains.push_back({d.name, opt_.root + "/" + d.zone, d.total_uj * 1e-6});
    r.joules += d.total_uj * 1e-6;
    if (d.total_uj == 0) {
      r.valid = false;
      r.notes.push_back("the " + d.name + " counter did not advance in " + Fmt(r.window_s, "%.3g") +
                        " s");
    }
    if (d.wraps > 0) {
      r.notes.push_back(d.name + " counter wrapped " + std::to_string(d.wraps) +
                        " time(s) at max_energy_range_uj = " + std::to_string(d.max_range_uj));
    }
  }
  if (min_wrap_s_ > 0 && max_gap_s_ > min_wrap_s_ / 2) {
    r.valid = false;
    r.notes.push_back("sampling gap of " + Fmt(max_gap_s_, "%.3g") +
                      " s exceeds half the fastest wrap "
                      "period (" +
                      Fmt(min_wrap_s_, "%.3g") + " s): a wrap may have been missed");
  }
  if (r.window_s < kUpdatePeriodS) {
    r.valid = false;
    r.notes.push_back("window of " + Fmt(r.window_s, "%.3g") +
                      " s is shorter than the RAPL update "
                      "period (~1 ms)");
  }
  *out = std::move(r);
  return Status::Ok();
}

Status RaplMeter::Stop(double* joules) {
  EnergyReading r;
  CB_RETURN_IF_ERROR(StopReading(&r));
  *joules = r.joules;
  return Status::Ok();
}

}  // namespace cb::energy
