#include "harness/parallel.h"

#include <nlohmann/json.hpp>
#include <set>

#include "backends/comm/mpi_world.h"

namespace cb {

using nlohmann::json;

Status ParallelGroups::Init(int tp, int dp, World& world, double collective_timeout_s, int ep) {
  ctx_ = ParallelContext{};
  if (tp < 1 || dp < 1)
    return Status::InvalidInput("command line: --tp and --dp must be at least 1");
  if (tp * dp != world.size()) {
    return Status::InvalidInput("command line: --tp " + std::to_string(tp) + " x --dp " +
                                std::to_string(dp) + " = " + std::to_string(tp * dp) +
                                " ranks, but the job has " + std::to_string(world.size()) +
                                (world.mpi() ? "" : " (start it with mpirun -np N or srun)"));
  }
  ctx_.tp = tp;
  ctx_.dp = dp;
  ctx_.world_rank = world.rank();
  ctx_.world_size = world.size();
  ctx_.tp_rank = world.rank() % tp;
  ctx_.dp_rank = world.rank() / tp;
  ctx_.host = world.host();
  ctx_.launcher = world.mpi() ? "mpi" : "none";
  ctx_.collective_timeout_s = collective_timeout_s;
  world.set_collective_timeout(collective_timeout_s);
  ctx_.world = &world.world();
  if (ep < 1 || (ep > 1 && (tp != 1 || dp != ep))) {
    return Status::InvalidInput("command line: --ep " + std::to_string(ep) +
                                " needs --tp 1 and one data-parallel rank per expert shard (" +
                                std::to_string(ep) + " ranks; got tp " + std::to_string(tp) +
                                ", dp " + std::to_string(dp) + ")");
  }
  ctx_.ep = ep;
  ctx_.ep_rank = ep > 1 ? ctx_.dp_rank : 0;
  if (tp == 1) {
    single_ = std::make_unique<SingleRankCommunicator>();
    ctx_.tp_group = single_.get();
    ctx_.ep_group = ep > 1 ? ctx_.world : single_.get();
  } else {
    CB_RETURN_IF_ERROR(world.Split(ctx_.dp_rank, ctx_.tp_rank, &tp_group_));
    ctx_.tp_group = tp_group_.get();
  }
  return Status::Ok();
}

int64_t LocalBatch(int64_t batch, int dp, int dp_rank) {
  return batch / dp + (dp_rank < batch % dp ? 1 : 0);
}

int64_t FirstSequence(int64_t batch, int dp, int dp_rank) {
  int64_t first = 0;
  for (int d = 0; d < dp_rank; ++d) first += LocalBatch(batch, dp, d);
  return first;
}

namespace {

json ToJson(const CeilingSample& s) {
  return {{"mem", s.mem_read_bytes_per_s},
          {"flops", s.matmul_flops_per_s},
          {"mem_s", s.mem_read_s},
          {"flops_s", s.matmul_s}};
}

CeilingSample SampleOf(const json& j) {
  return {j.at("mem").get<double>(), j.at("flops").get<double>(), j.at("mem_s").get<double>(),
          j.at("flops_s").get<double>()};
}

json ToJson(const RankTimings& t) {
  const WindowProbes& p = t.probes;
  return {{"rank", t.rank},
          {"tp_rank", t.tp_rank},
          {"dp_rank", t.dp_rank},
          {"host", t.host},
          {"sequences", t.sequences},
          {"prefill_s", t.prefill_s},
          {"decode_s", t.decode_s},
          {"decode_step_s", t.decode_step_s},
          {"comm_s", t.comm_s},
          {"backend_s", t.backend_s},
          {"window_s", t.window_s},
          {"energy_source", t.energy_source},
          {"energy_joules", t.energy_joules},
          {"probes",
           {{"taken", p.taken},
            {"before", ToJson(p.before)},
            {"after", ToJson(p.after)},
            {"error", p.error}}}};
}

RankTimings FromJson(const json& j) {
  RankTimings t;
  j.at("rank").get_to(t.rank);
  j.at("tp_rank").get_to(t.tp_rank);
  j.at("dp_rank").get_to(t.dp_rank);
  j.at("host").get_to(t.host);
  j.at("sequences").get_to(t.sequences);
  j.at("prefill_s").get_to(t.prefill_s);
  j.at("decode_s").get_to(t.decode_s);
  j.at("decode_step_s").get_to(t.decode_step_s);
  j.at("comm_s").get_to(t.comm_s);
  j.at("backend_s").get_to(t.backend_s);
  j.at("window_s").get_to(t.window_s);
  j.at("energy_source").get_to(t.energy_source);
  j.at("energy_joules").get_to(t.energy_joules);
  const json& p = j.at("probes");
  p.at("taken").get_to(t.probes.taken);
  t.probes.before = SampleOf(p.at("before"));
  t.probes.after = SampleOf(p.at("after"));
  p.at("error").get_to(t.probes.error);
  return t;
}

}  // namespace

Status GatherTimings(const ParallelContext& ctx, const RankTimings& mine,
                     std::vector<RankTimings>* all) {
  all->clear();
  if (ctx.world_size == 1) {
    all->push_back(mine);
    return Status::Ok();
  }
  const std::string text = ToJson(mine).dump();
  int64_t size = static_cast<int64_t>(text.size()), longest = size;
  std::vector<int64_t> sizes(ctx.world_size);
  CB_RETURN_IF_ERROR(ctx.world->Gather(&size, sizeof size, sizes.data(), 0));
  for (int64_t s : sizes) longest = std::max(longest, s);
  CB_RETURN_IF_ERROR(ctx.world->Broadcast(&longest, sizeof longest, 0));
  std::string padded = text;
  padded.resize(static_cast<size_t>(longest), ' ');
  std::string gathered(static_cast<size_t>(longest * ctx.world_size), ' ');
  CB_RETURN_IF_ERROR(ctx.world->Gather(padded.data(), padded.size(), gathered.data(), 0));
  if (ctx.world_rank != 0) return Status::Ok();
  try {
    for (int r = 0; r < ctx.world_size; ++r) {
      all->push_back(FromJson(json::parse(gathered.substr(r * longest, sizes[r]))));
    }
  } catch (const std::exception& e) {
    return Status::Internal(std::string("gathering rank timings: ") + e.what());
  }
  return Status::Ok();
}

bool ClusterEnergy(const std::vector<RankTimings>& ranks, double* joules, std::string* method) {
  std::set<std::string> hosts_counted;
  bool any = false;
  *joules = 0;
  for (const RankTimings& r : ranks) {  // in rank order: a host's lowest rank comes first
    if (r.energy_source.empty()) continue;
    any = true;
    if (r.energy_source == "nvml") {
      *joules += r.energy_joules;
    } else if (hosts_counted.insert(r.host).second) {
      *joules += r.energy_joules;
    }
  }
  *method =
      "summed on rank 0: NVML per rank (one GPU each); RAPL and the CPU power model once "
      "per host (" +
      std::to_string(hosts_counted.size()) + " host(s)), from its lowest rank";
  return any;
}

Status AgreeOnFailure(const ParallelContext& ctx, const std::string& my_failure,
                      std::string* any_failure) {
  *any_failure = my_failure;
  if (ctx.world_size == 1) return Status::Ok();
  // Lowest failing rank wins: everyone learns its rank, then its message.
  float failing = my_failure.empty() ? static_cast<float>(ctx.world_size) : ctx.world_rank;
  std::vector<float> all(ctx.world_size);
  CB_RETURN_IF_ERROR(ctx.world->AllGather(&failing, 1, all.data()));
  int first = ctx.world_size;
  for (float f : all) first = std::min(first, static_cast<int>(f));
  if (first == ctx.world_size) return Status::Ok();
  char buf[512] = {};
  if (ctx.world_rank == first) std::snprintf(buf, sizeof buf, "%s", my_failure.c_str());
  CB_RETURN_IF_ERROR(ctx.world->Broadcast(buf, sizeof buf, first));
  *any_failure = "rank " + std::to_string(first) + ": " + buf;
  return Status::Ok();
}

}  // namespace cb
