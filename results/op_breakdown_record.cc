#include "results/op_breakdown_record.h"

#include <cstdio>

#include "results/json_number.h"

namespace cb {
namespace {

using nlohmann::json;

json SharesJson(const std::vector<OpShare>& shares) {
  json a = json::array();
  for (const OpShare& s : shares) {
    a.push_back(
        {{"op", s.op}, {"seconds", FiniteOrNull(s.seconds)}, {"share", FiniteOrNull(s.share)}});
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
    shares.push_back(std::move(o));
  }
  return shares;
}

}  // namespace

std::string OpSharesLine(const std::vector<OpShare>& shares) {
  std::string line;
  for (const OpShare& s : shares) {
    if (!(s.share >= 0.01)) continue;
    char buf[32];
    std::snprintf(buf, sizeof buf, " %.1f%%", 100 * s.share);
    line += (line.empty() ? "" : ", ") + s.op + buf;
  }
  return line;
}

json OpBreakdownRecordToJson(const OpBreakdownRecord& b) {
  return {{"method", b.method},
          {"decode_steps", b.decode_steps},
          {"prefill", SharesJson(b.prefill)},
          {"decode", SharesJson(b.decode)}};
}

Status OpBreakdownRecordFromJson(const json& j, const std::string& origin, OpBreakdownRecord* out) {
  try {
    OpBreakdownRecord b;
    j.at("method").get_to(b.method);
    j.at("decode_steps").get_to(b.decode_steps);
    b.prefill = SharesOf(j.at("prefill"));
    b.decode = SharesOf(j.at("decode"));
    *out = std::move(b);
  } catch (const json::exception& e) {
    return Status::InvalidInput(origin + ": field 'op_breakdown': " + e.what());
  }
  return Status::Ok();
}

}  // namespace cb
