#include "results/op_breakdown_record.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "results/json_number.h"

namespace cb {
namespace {

using nlohmann::json;

json SharesJson(const std::vector<OpShare>& shares) {
  json a = json::array();
  for (const OpShare& s : shares) {
    a.push_back({{"op", s.op},
                 {"seconds", FiniteOrNull(s.seconds)},
                 {"share", FiniteOrNull(s.share)},
                 {"flops", FiniteOrNull(s.flops)},
                 {"bytes", FiniteOrNull(s.bytes)}});
  }
  return a;
}

std::vector<OpShare> SharesOf(const json& a) {
  std::vector<OpShare> shares;
  for (const json& s : a) {
    OpShare o;
    s.at("op").get_to(o.op);
    o.seconds = NumberOrNaN(s.at("seconds"));
    o.share = NumberOrNaN(s.at("share"));
    o.flops =
        s.contains("flops") ? NumberOrNaN(s.at("flops")) : 0;  // optional: older records have none
    o.bytes = s.contains("bytes") ? NumberOrNaN(s.at("bytes")) : 0;
    shares.push_back(std::move(o));
  }
  return shares;
}

}  // namespace

double OpShare::Roofline(double flops_per_s, double bytes_per_s) const {
  if (!(flops_per_s > 0) || !(bytes_per_s > 0) || !(seconds > 0)) return NAN;
  return std::max(flops / flops_per_s, bytes / bytes_per_s) / seconds;
}

std::string OpSharesLine(const std::vector<OpShare>& shares, double flops_per_s,
                         double bytes_per_s) {
  std::string line;
  for (const OpShare& s : shares) {
    if (!(s.share >= 0.01)) continue;
    char buf[48];
    std::snprintf(buf, sizeof buf, " %.1f%%", 100 * s.share);
    std::string item = s.op + buf;
    const double roofline = s.Roofline(flops_per_s, bytes_per_s);
    if (std::isfinite(roofline)) {
      std::snprintf(buf, sizeof buf, " (%.2f%s)", roofline, roofline > 1 ? "!" : "");
      item += buf;
    }
    line += (line.empty() ? "" : ", ") + item;
  }
  return line;
}

bool AnyAboveRoofline(const std::vector<OpShare>& shares, double flops_per_s, double bytes_per_s) {
  return std::any_of(shares.begin(), shares.end(), [&](const OpShare& s) {
    return s.share >= 0.01 && s.Roofline(flops_per_s, bytes_per_s) > 1;
  });
}

double OpBreakdownRecord::Drift() const {
  auto apart = [](double a, double b) {
    return a > 0 && b > 0 ? std::abs(a - b) / std::max(a, b) : 0.0;
  };
  return std::max(apart(mem_read_before, mem_read_after), apart(matmul_before, matmul_after));
}

json OpBreakdownRecordToJson(const OpBreakdownRecord& b) {
  json j = {{"method", b.method},
            {"decode_steps", b.decode_steps},
            {"prefill", SharesJson(b.prefill)},
            {"decode", SharesJson(b.decode)}};
  if (b.MemRead() > 0) {
    j["ceilings"] = {{"memory_read_before", FiniteOrNull(b.mem_read_before)},
                     {"memory_read_after", FiniteOrNull(b.mem_read_after)},
                     {"matmul_before", FiniteOrNull(b.matmul_before)},
                     {"matmul_after", FiniteOrNull(b.matmul_after)},
                     {"matmul_dtype", b.matmul_dtype}};
  }
  return j;
}

Status OpBreakdownRecordFromJson(const json& j, const std::string& origin, OpBreakdownRecord* out) {
  try {
    OpBreakdownRecord b;
    j.at("method").get_to(b.method);
    j.at("decode_steps").get_to(b.decode_steps);
    b.prefill = SharesOf(j.at("prefill"));
    b.decode = SharesOf(j.at("decode"));
    if (j.contains("ceilings")) {  // optional: older records have none
      const json& c = j.at("ceilings");
      b.mem_read_before = NumberOrNaN(c.at("memory_read_before"));
      b.mem_read_after = NumberOrNaN(c.at("memory_read_after"));
      b.matmul_before = NumberOrNaN(c.at("matmul_before"));
      b.matmul_after = NumberOrNaN(c.at("matmul_after"));
      c.at("matmul_dtype").get_to(b.matmul_dtype);
    }
    *out = std::move(b);
  } catch (const json::exception& e) {
    return Status::InvalidInput(origin + ": field 'op_breakdown': " + e.what());
  }
  return Status::Ok();
}

}  // namespace cb
