#include "results/cluster_record.h"

namespace cb {

using nlohmann::json;

json ClusterRecordToJson(const ClusterRecord& c) {
  json ranks = json::array();
  for (const RankRecord& r : c.ranks) {
    ranks.push_back({{"rank", r.rank},
                     {"tp_rank", r.tp_rank},
                     {"dp_rank", r.dp_rank},
                     {"host", r.host},
                     {"sequences", r.sequences},
                     {"prefill_s", r.prefill_s},
                     {"decode_step_min_s", r.decode_step_min_s},
                     {"decode_step_mean_s", r.decode_step_mean_s},
                     {"decode_step_max_s", r.decode_step_max_s},
                     {"comm_s", r.comm_s},
                     {"comm_share", r.comm_share}});
  }
  return {{"world_size", c.world_size},
          {"tp", c.tp},
          {"dp", c.dp},
          {"ep", c.ep},
          {"nodes", c.nodes},
          {"launcher", c.launcher},
          {"collective_timeout_s", c.collective_timeout_s},
          {"ranks", ranks}};
}

Status ClusterRecordFromJson(const json& j, const std::string& origin, ClusterRecord* out) {
  try {
    ClusterRecord c;
    j.at("world_size").get_to(c.world_size);
    j.at("tp").get_to(c.tp);
    j.at("dp").get_to(c.dp);
    c.ep = j.value("ep", 1);  // results written before expert parallelism have no "ep"
    j.at("nodes").get_to(c.nodes);
    j.at("launcher").get_to(c.launcher);
    j.at("collective_timeout_s").get_to(c.collective_timeout_s);
    for (const json& r : j.at("ranks")) {
      RankRecord rr;
      r.at("rank").get_to(rr.rank);
      r.at("tp_rank").get_to(rr.tp_rank);
      r.at("dp_rank").get_to(rr.dp_rank);
      r.at("host").get_to(rr.host);
      r.at("sequences").get_to(rr.sequences);
      r.at("prefill_s").get_to(rr.prefill_s);
      r.at("decode_step_min_s").get_to(rr.decode_step_min_s);
      r.at("decode_step_mean_s").get_to(rr.decode_step_mean_s);
      r.at("decode_step_max_s").get_to(rr.decode_step_max_s);
      r.at("comm_s").get_to(rr.comm_s);
      r.at("comm_share").get_to(rr.comm_share);
      c.ranks.push_back(rr);
    }
    *out = std::move(c);
  } catch (const json::exception& e) {
    return Status::InvalidInput(origin + ": field 'cluster': " + e.what());
  }
  return Status::Ok();
}

}  // namespace cb
