#include "backends/sim/step_model.h"

#include <algorithm>
#include <cmath>

#include "backends/sim/sim_device.h"

namespace cb::sim {
namespace {

bool IsCollective(OpKind k) { return k == OpKind::kAllReduce || k == OpKind::kAllGather; }
bool DependsOnContext(OpKind k) { return k == OpKind::kAttention || k == OpKind::kMlaAttention; }

/// Bytes per element a dispatch sends: FP8 with one fp32 scale per 128 values (DeepEP's FP8
/// dispatch), int8 with a per-token scale, else the activations' own width.
double DispatchBytes(DType dt) {
  if (dt == DType::kFP8) return 1.0 + 4.0 / 128.0;
  return static_cast<double>(DTypeBytes(dt));
}
/// Combine sends the experts' outputs back in bf16 when compute is 8-bit.
double CombineBytes(DType dt) {
  return IsQuantized(dt) ? 2.0 : static_cast<double>(DTypeBytes(dt));
}

/// The grouped-GEMM pipeline's memory-bound kernels around the GEMMs, as separate passes like
/// every other elementwise op of the stream: permuting the received rows into expert order
/// (read and write), SwiGLU of the gate/up output (and the down projection's input
/// quantisation), and gathering the weighted outputs back to token order.
double ExpertPassSeconds(const DeviceModel& dev, const LocalDims& d, double rows, DType dt) {
  if (rows <= 0) return 0;
  const double a = static_cast<double>(DTypeBytes(dt));
  const double o = IsQuantized(dt) ? 2.0 : a;  // GEMM outputs: bf16 for 8-bit compute
  const double h = static_cast<double>(d.hidden), f = static_cast<double>(d.expert_ffn);
  OpCost c;
  c.bytes = rows * (2 * h * a + 2 * f * o + f * a + 2 * h * o);
  return OpSeconds(dev, OpClass::kElementwise, c, rows, dt) + 2 * dev.eff.launch_s;
}

StepSummary Half(const StepSummary& s) {
  return StepSummary{s.tokens / 2, s.seqs / 2, s.attended / 2, s.cached / 2};
}

}  // namespace

Status StepModel::Create(const DeviceModel& device, const Topology& topology,
                         const ModelSpec& model, const StepModelConfig& config,
                         std::unique_ptr<StepModel>* out) {
  CB_RETURN_IF_ERROR(ValidatePool(model, config.pool, config.redundant_experts, "layout"));
  std::unique_ptr<StepModel> m(new StepModel(device, topology, config));
  // Every rank of an attention group holds the tp shard; experts are placed by the model.
  const int layers = config.layers > 0 ? config.layers : static_cast<int>(model.num_layers);
  CB_RETURN_IF_ERROR(
      BuildDenseDecoderStream(model, ShardSpec{config.pool.tp, 0}, layers, &m->stream_));
  if (config.pool.ep > 1) {
    m->placement_ =
        ExpertPlacement::Shared(model, config.pool.ep, config.redundant_experts, topology.domain);
  }
  m->has_comm_ = config.pool.tp > 1 || config.pool.ep > 1;
  m->shared_device_ = device;
  for (double& p : m->shared_device_.peak_flops) p *= 1 - topology.a2a_throughput.compute_share;
  m->cache_.resize(m->stream_.ops.size());
  *out = std::move(m);
  return Status::Ok();
}

DType StepModel::ComputeDType(OpKind k) const {
  // Attention math and the router stay in bf16 when weights and activations are 8-bit.
  const bool high = k == OpKind::kAttention || k == OpKind::kMlaAttention || k == OpKind::kRouter;
  return high && IsQuantized(cfg_.dtype) ? DType::kBF16 : cfg_.dtype;
}

double StepModel::Collective(const Op& op, const StepSummary& s) const {
  const int tp = cfg_.pool.tp;
  if (tp <= 1) return 0;
  const double act = CombineBytes(cfg_.dtype);
  double t = 0;
  if (op.kind == OpKind::kAllReduce) {
    t = CollectiveSeconds(topo_, Collective::kAllReduce, tp, s.tokens * stream_.dims.hidden * act);
  } else {
    t = CollectiveSeconds(topo_, Collective::kAllGather, tp,
                          s.seqs * stream_.dims.vocab_full * 4.0);
  }
  return t + device_.eff.launch_s;
}

double StepModel::AllToAllSeconds(double tokens, double element_bytes, double imbalance,
                                  AllToAllKind kind) const {
  const AllToAllRates& r =
      kind == AllToAllKind::kThroughput ? topo_.a2a_throughput : topo_.a2a_low_latency;
  const double row = tokens * static_cast<double>(stream_.dims.hidden) * element_bytes;
  double up = 0, out = 0;
  if (kind == AllToAllKind::kThroughput) {
    // One copy per destination rank (and per destination domain across the scale-out network).
    up = row * placement_.remote_ranks_per_token();
    out = row * placement_.remote_domains_per_token();
  } else {
    // Low-latency kernels send each (token, expert) pair on its own, all of them over the
    // network (RDMA) once the group spans several scale-up domains.
    const double picks = row * static_cast<double>(stream_.dims.top_k);
    const double remote =
        placement_.in_domain_remote_pick_share() + placement_.out_of_domain_pick_share();
    if (placement_.out_of_domain_pick_share() > 0) {
      out = picks * remote;
    } else {
      up = picks * remote;
    }
  }
  const double transfer = std::max(up / r.scale_up_bytes_s, out / r.scale_out_bytes_s);
  return r.latency_s + transfer * std::max(1.0, imbalance);
}

void StepModel::AddExperts(const Pass& pass, std::vector<Item>* items, StepCost* cost) const {
  const StepSummary& full = pass.full;
  const StepSummary& micro = pass.micro;
  const int micros = pass.micros;
  const AllToAllKind kind = pass.kind;
  const DeviceModel& dev = Device(pass.shared);
  const LocalDims& d = stream_.dims;
  const double per_expert = 3.0 * d.hidden * d.expert_ffn;
  const double dt = static_cast<double>(DTypeBytes(cfg_.dtype));
  auto expert_cost = [&](const ExpertPlacement::RankLoad& load, double tokens) {
    OpCost c;
    c.flops = load.assignments * (2.0 * per_expert + 5.0 * d.expert_ffn + 2.0 * d.hidden);
    c.weight_bytes = load.distinct_slots * per_expert * dt;
    c.bytes = c.weight_bytes + 2.0 * load.assignments * d.hidden * dt + tokens * d.hidden * 4.0;
    return c;
  };
  const ExpertPlacement::RankLoad& whole = pass.whole_load;
  cost->work += expert_cost(whole, full.tokens);
  ExpertPlacement::RankLoad mean = whole;
  mean.assignments = whole.mean_assignments;
  mean.distinct_slots = std::min(whole.slots, whole.distinct_slots);
  cost->mean_work += expert_cost(mean, full.tokens);
  cost->received_bytes += whole.assignments * d.hidden * DispatchBytes(cfg_.dtype);

  const ExpertPlacement::RankLoad& load = pass.micro_load;
  const double imbalance = load.mean_assignments > 0 ? load.assignments / load.mean_assignments : 1;
  const OpCost c = expert_cost(load, micro.tokens);
  const double rows = load.distinct_slots > 0 ? load.assignments / load.distinct_slots : 1;
  Item dispatch{true}, experts{false}, combine{true};
  dispatch.seconds[0] = AllToAllSeconds(micro.tokens, DispatchBytes(cfg_.dtype), imbalance, kind);
  experts.seconds[0] = OpSeconds(dev, OpClass::kMatMul, c, rows, cfg_.dtype);
  experts.busy[0] = experts.seconds[0] * OpUtilisation(dev, OpClass::kMatMul, c, rows, cfg_.dtype);
  const double passes = ExpertPassSeconds(dev, d, load.assignments, cfg_.dtype);
  experts.seconds[0] += passes;
  experts.busy[0] += passes;
  combine.seconds[0] = AllToAllSeconds(micro.tokens, CombineBytes(cfg_.dtype), imbalance, kind);
  cost->comm_seconds += (dispatch.seconds[0] + combine.seconds[0]) * micros;
  cost->compute_seconds += experts.seconds[0] * micros;
  // Overlapped low-latency kernels hold every SM while they send and receive (a share of
  // their time) and none in flight: their send runs on the compute stream after the op before
  // it, their receive before the op after it, as two-batch overlap orders them.
  const double on_sms =
      micros == 2 && kind == AllToAllKind::kLowLatency ? topo_.a2a_low_latency.compute_share : 0.0;
  Item receive{false};
  if (on_sms > 0) {
    receive.seconds[0] = on_sms * combine.seconds[0] / 2;
    if (items->empty() || items->back().comm) items->push_back(Item{false});
    items->back().seconds[0] += on_sms * dispatch.seconds[0] / 2;
    experts.seconds[0] += on_sms * (dispatch.seconds[0] + combine.seconds[0]) / 2;
    dispatch.seconds[0] *= 1 - on_sms;
    combine.seconds[0] *= 1 - on_sms;
  }
  items->push_back(dispatch);
  items->push_back(experts);
  items->push_back(combine);
  if (on_sms > 0) items->push_back(receive);
}

void StepModel::AddOp(size_t index, const Pass& pass, std::vector<Item>* items,
                      StepCost* cost) const {
  const StepSummary& full = pass.full;
  const StepSummary& micro = pass.micro;
  const int micros = pass.micros;
  const Op& op = stream_.ops[index];
  if (op.kind == OpKind::kMoeExperts && cfg_.pool.ep > 1) {
    AddExperts(pass, items, cost);
    return;
  }
  if (IsCollective(op.kind)) {
    Item c{true};
    c.seconds[0] = Collective(op, micro);
    cost->comm_seconds += c.seconds[0] * micros;
    if (c.seconds[0] > 0) items->push_back(c);
    return;
  }
  OpEval fresh;
  OpEval* e = &fresh;
  if (!DependsOnContext(op.kind)) e = &cache_[index];
  if (e != &cache_[index] || e->tokens != full.tokens || e->seqs != full.seqs ||
      e->micro != micros || e->shared != pass.shared) {
    const DType cdt = ComputeDType(op.kind);
    const OpClass cls = ClassOf(op.kind);
    const OpCost mc = CostOfOp(stream_, op, micro, cfg_.dtype, cfg_.kv_dtype);
    double rows = BufferRows(op.out) == Rows::kSequenceRows ? micro.seqs : micro.tokens;
    double passes = 0;
    if (op.kind == OpKind::kMoeExperts) {
      // Grouped expert matmuls: each expert's matmul sees only the rows routed to it.
      const MoeStepLoad load = ExpectedMoeLoad(stream_, micro.tokens);
      if (load.distinct_experts > 0) rows = load.assignments / load.distinct_experts;
      passes = ExpertPassSeconds(Device(pass.shared), stream_.dims, load.assignments, cfg_.dtype);
    }
    e->tokens = full.tokens;
    e->seqs = full.seqs;
    e->micro = micros;
    e->shared = pass.shared;
    e->work = micros == 1 ? mc : CostOfOp(stream_, op, full, cfg_.dtype, cfg_.kv_dtype);
    const DeviceModel& dev = Device(pass.shared);
    e->seconds = OpSeconds(dev, cls, mc, rows, cdt);
    e->busy = e->seconds * OpUtilisation(dev, cls, mc, rows, cdt) + passes;
    e->seconds += passes;
  }
  cost->work += e->work;
  cost->mean_work += e->work;
  cost->compute_seconds += e->seconds * micros;
  if (items->empty() || items->back().comm) items->push_back(Item{false});
  items->back().seconds[0] += e->seconds;
  items->back().busy[0] += e->busy;
}

StepCost StepModel::Schedule(const std::vector<Item>& items, int micros, StepCost cost) const {
  SimRuntime rt;
  const SimRuntime::StreamId compute = 0, comm = rt.CreateStream();
  SimRuntime::EventId done[2] = {-1, -1};
  for (const Item& item : items) {
    for (int mb = 0; mb < micros; ++mb) {
      const SimRuntime::StreamId s = item.comm ? comm : compute;
      if (done[mb] >= 0) rt.StreamWaitEvent(s, done[mb]);
      rt.Launch(s, item.seconds[0], item.seconds[0] > 0 ? item.busy[0] / item.seconds[0] : 0);
      done[mb] = rt.RecordEvent(s);
    }
  }
  rt.SynchronizeDevice();
  cost.seconds = rt.now();
  cost.busy_seconds = rt.busy_seconds();
  return cost;
}

StepModel::Pass StepModel::MakePass(const StepSummary& full, const StepSummary& micro, int micros,
                                    AllToAllKind kind, bool shared) const {
  Pass p{full, micro, micros, kind, shared, {}, {}};
  if (cfg_.pool.ep > 1) {
    p.whole_load = placement_.SlowestRank(full.tokens);
    p.micro_load = micros == 1 ? p.whole_load : placement_.SlowestRank(micro.tokens);
  }
  return p;
}

StepCost StepModel::Step(const StepSummary& rank, AllToAllKind kind, size_t begin, size_t end,
                         bool mtp_drafts) const {
  const int micros = cfg_.overlap && has_comm_ && rank.tokens >= 2 ? 2 : 1;
  const StepSummary micro = micros == 2 ? Half(rank) : rank;
  // Overlapped with throughput all-to-alls, compute runs on what their kernels leave.
  const bool shared = micros == 2 && cfg_.pool.ep > 1 && kind == AllToAllKind::kThroughput;
  const Pass pass = MakePass(rank, micro, micros, kind, shared);
  StepCost cost;
  std::vector<Item> items;
  for (size_t i = begin; i < end && i < stream_.ops.size(); ++i) AddOp(i, pass, &items, &cost);
  if (mtp_drafts && cfg_.mtp > 0) {
    // Each draft runs the MTP module (one layer like the model's last, after a 2h -> h
    // projection) and the LM head over one token per sequence, attending over the context.
    const StepSummary draft{rank.seqs, rank.seqs, rank.cached, rank.cached};
    const StepSummary draft_micro = micros == 2 ? Half(draft) : draft;
    const auto [lb, le] = stream_.LayerRange(stream_.layers - 1);
    const auto tail_begin = le;
    OpCost proj;
    const double h = static_cast<double>(stream_.dims.hidden);
    proj.flops = 2.0 * draft_micro.tokens * 2 * h * h;
    proj.weight_bytes = 2 * h * h * DTypeBytes(cfg_.dtype);
    proj.bytes = proj.weight_bytes + draft_micro.tokens * 3 * h * 4.0;
    for (int d = 0; d < cfg_.mtp; ++d) {
      StepCost part;
      std::vector<Item> draft_items;
      draft_items.push_back(Item{false});
      draft_items.back().seconds[0] =
          OpSeconds(Device(shared), OpClass::kMatMul, proj, draft_micro.tokens, cfg_.dtype);
      const Pass draft_pass = MakePass(draft, draft_micro, micros, kind, shared);
      for (size_t i = lb; i < le; ++i) AddOp(i, draft_pass, &draft_items, &part);
      for (size_t i = tail_begin; i < stream_.ops.size(); ++i) {
        AddOp(i, draft_pass, &draft_items, &part);
      }
      // The draft's costs are not cached under the main step's shape.
      for (size_t i = lb; i < stream_.ops.size(); ++i) cache_[i].tokens = -1;
      items.insert(items.end(), draft_items.begin(), draft_items.end());
      for (OpCost* w : {&cost.work, &cost.mean_work}) {
        *w += w == &cost.work ? part.work : part.mean_work;
        w->flops += proj.flops * micros;
        w->bytes += proj.bytes * micros;
        w->weight_bytes += proj.weight_bytes * micros;
      }
      cost.compute_seconds += part.compute_seconds + draft_items.front().seconds[0] * micros;
      cost.comm_seconds += part.comm_seconds;
      cost.received_bytes += part.received_bytes;
    }
  }
  return Schedule(items, micros, cost);
}

}  // namespace cb::sim
