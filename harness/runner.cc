#include "harness/runner.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "harness/cancel.h"
#include "harness/load_progress.h"
#include "harness/parallel.h"
#include "harness/run_metrics.h"
#include "harness/stats.h"
#include "harness/verify.h"
#include "workloads/moe_routing.h"
#include "workloads/op_cost.h"

namespace cb {
namespace {

/// Expert-load imbalance of each measured step of a MoE model, from the routers' counts
/// (StepIO::expert_load): max / mean tokens per expert, and per rank when the experts are
/// split over ranks, averaged over the MoE layers run. Under expert parallelism the counts of
/// all ranks are summed (an allreduce after the timed step); otherwise rank 0's replica.
class MoeLoadSteps {
 public:
  MoeLoadSteps(const LocalDims& d, Communicator* ep)
      : experts_(d.experts),
        per_rank_(d.local_experts < d.experts ? d.local_experts : 0),
        ep_(ep != nullptr && ep->size() > 1 ? ep : nullptr) {}
  void Add(const StepIO& io) {
    if (experts_ == 0 || io.expert_load.empty()) return;  // dense, or a modelled backend
    const std::vector<int32_t>* load = &io.expert_load;
    std::vector<int32_t> summed;
    if (ep_ != nullptr) {
      std::vector<float> f(io.expert_load.begin(), io.expert_load.end());
      if (!ep_->AllReduceSum(f.data(), f.size()).ok()) return;
      summed.assign(f.begin(), f.end());
      load = &summed;
    }
    per_expert_.push_back(ExpertLoadImbalance(*load, experts_));
    if (per_rank_ > 0) per_rank_ratio_.push_back(ExpertLoadImbalance(*load, experts_, per_rank_));
  }
  void AddMetrics(RunRecord* rec) const {
    auto add = [&](const char* name, const std::vector<double>& v) {
      if (v.empty()) return;
      const Distribution d = Summarize(v);
      rec->metrics.push_back({name, "ratio", Provenance::kMeasured, d.p50, true, d});
    };
    add("moe_load_imbalance_ratio", per_expert_);
    add("moe_rank_load_imbalance_ratio", per_rank_ratio_);
  }

 private:
  int64_t experts_ = 0, per_rank_ = 0;
  Communicator* ep_ = nullptr;
  std::vector<double> per_expert_, per_rank_ratio_;
};

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

/// The op ranges of one step: before the layers, each layer, after the layers.
struct Segments {
  OpRange head, tail;
  std::vector<OpRange> layers;
};

Segments SplitByLayer(const OpStream& s) {
  Segments seg;
  for (int l = 0; l < s.layers; ++l) {
    const auto [b, e] = s.LayerRange(l);
    seg.layers.push_back({b, e});
  }
  seg.head = {0, seg.layers.empty() ? s.ops.size() : seg.layers.front().begin};
  seg.tail = {seg.layers.empty() ? s.ops.size() : seg.layers.back().end, s.ops.size()};
  return seg;
}

}  // namespace

/// Work of one step of the whole model: every layer of the stream, each scaled by the model
/// layers it stands for (LayerPlan::Scale: its kind's count / the kind's layers run), the
/// same way StepTimer extrapolates time.
OpCost ExtrapolatedCost(const OpStream& stream, const StepIO& io, DType dtype) {
  const Segments seg = SplitByLayer(stream);
  OpCost c = CostOfOps(stream, seg.head.begin, seg.head.end, io, dtype);
  c += CostOfOps(stream, seg.tail.begin, seg.tail.end, io, dtype);
  for (size_t i = 0; i < seg.layers.size(); ++i) {
    OpCost layer = CostOfOps(stream, seg.layers[i].begin, seg.layers[i].end, io, dtype);
    const double scale = stream.plan.Scale(static_cast<int>(i));
    layer.flops *= scale;
    layer.bytes *= scale;
    layer.weight_bytes *= scale;
    layer.kv_bytes *= scale;
    c += layer;
  }
  return c;
}

namespace {

/// Times steps. A stream with every layer of the model runs as one call; a partial stream runs
/// segment by segment and its step time is extrapolated to the model as head + tail + the sum
/// over its layers of time x the model layers each stands for (per kind: dense, MoE).
class StepTimer {
 public:
  StepTimer(Session& session, Clock& clock, const OpStream& stream)
      : session_(session),
        clock_(clock),
        stream_(stream),
        seg_(SplitByLayer(stream)),
        extrapolate_(stream.plan.Partial()) {}

  Status Step(StepIO& io, double* step_s, double* measured_s) {
    if (!extrapolate_) {
      double t = 0;
      CB_RETURN_IF_ERROR(Timed({0, stream_.ops.size()}, io, &t));
      *step_s = *measured_s = t;
      return Status::Ok();
    }
    double head = 0, tail = 0, layers = 0, scaled = 0;
    CB_RETURN_IF_ERROR(Timed(seg_.head, io, &head));
    for (size_t i = 0; i < seg_.layers.size(); ++i) {
      double t = 0;
      CB_RETURN_IF_ERROR(Timed(seg_.layers[i], io, &t));
      layers += t;
      scaled += t * stream_.plan.Scale(static_cast<int>(i));
    }
    CB_RETURN_IF_ERROR(Timed(seg_.tail, io, &tail));
    *measured_s = head + layers + tail;
    *step_s = head + tail + scaled;
    return Status::Ok();
  }

 private:
  Status Timed(OpRange r, StepIO& io, double* seconds) {
    CB_RETURN_IF_ERROR(session_.Synchronize());
    const double t0 = clock_.NowSeconds();
    CB_RETURN_IF_ERROR(session_.Run(stream_, r, io));
    CB_RETURN_IF_ERROR(session_.Synchronize());
    *seconds = clock_.NowSeconds() - t0;
    return Status::Ok();
  }

  Session& session_;
  Clock& clock_;
  const OpStream& stream_;
  Segments seg_;
  bool extrapolate_;
};

void Progress(const RunnerOptions& o, const std::string& what) {
  if (!o.quiet) std::fprintf(stderr, "%s %s\n", o.progress_prefix.c_str(), what.c_str());
}

std::string Gib(uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f GiB", bytes / kGiB);
  return buf;
}

/// Prompts of sequences [first, first + count) of the workload, in cache slots 0..count-1.
StepIO PrefillIO(const WorkloadSpec& w, int64_t vocab, int64_t first, int64_t count) {
  StepIO io;
  for (int64_t s = 0; s < count; ++s) {
    io.seqs.push_back({s, 0, w.prompt_len});
    for (int64_t p = 0; p < w.prompt_len; ++p) {
      io.tokens.push_back(SyntheticToken(w.seed, first + s, p, vocab));
    }
  }
  return io;
}

/// Turns `io` (after a step) into the next decode step: each sequence feeds back its sample.
void AdvanceToDecode(StepIO& io) {
  for (auto& s : io.seqs) {
    s.past_len += s.new_tokens;
    s.new_tokens = 1;
  }
  io.tokens.assign(io.next_tokens.begin(), io.next_tokens.end());
}

/// Weight bytes of the routed experts in one step of the whole model (extrapolated like
/// ExtrapolatedCost).
double ExpertWeightBytes(const OpStream& stream, const StepIO& io, DType dtype) {
  double bytes = 0;
  for (const Op& op : stream.ops) {
    if (op.kind != OpKind::kMoeExperts) continue;
    bytes += CostOfOp(stream, op, io, dtype).weight_bytes * stream.plan.Scale(op.layer);
  }
  return bytes;
}

/// Replaces the experts' weight reads that `cost` counted replica by replica (each replica's
/// tokens against every expert) with one read for the whole batch's step `whole`.
void ShareExpertReads(const OpStream& stream, const StepIO& whole, const WorkloadSpec& w, int dp,
                      OpCost* cost) {
  double per_replica = 0;
  for (int d = 0; d < dp; ++d) {
    StepIO part;
    const int64_t first = FirstSequence(w.batch, dp, d), count = LocalBatch(w.batch, dp, d);
    part.seqs.assign(whole.seqs.begin() + first, whole.seqs.begin() + first + count);
    per_replica += ExpertWeightBytes(stream, part, w.dtype);
  }
  const double shared = ExpertWeightBytes(stream, whole, w.dtype);
  cost->weight_bytes += shared - per_replica;
  cost->bytes += shared - per_replica;
}

/// How a partial-layer run is scaled, for the record.
std::string ExtrapolationMethod(const LayerPlan& plan) {
  std::string per_kind;
  int64_t total = 0;
  for (const LayerKind& k : plan.kinds) {
    per_kind += (per_kind.empty() ? "" : ", ") + k.name + " x " + std::to_string(k.model_layers);
    total += k.model_layers;
  }
  return "ran layers " + plan.Describe() + " of " + std::to_string(total) +
         "; step time = time outside the layers + per kind of layer the mean measured time of "
         "its layers run x its layers in the model (" +
         per_kind + "); FLOPs and bytes scaled the same way";
}

bool TokensValid(const StepIO& io, int64_t vocab) {
  if (io.next_tokens.size() != io.seqs.size()) return false;
  return std::all_of(io.next_tokens.begin(), io.next_tokens.end(),
                     [&](int32_t t) { return t >= 0 && t < vocab; });
}

}  // namespace

Status RunOffline(const WorkloadSpec& w, Device& device, const RunnerOptions& opts,
                  RunRecord* rec) {
  const DeviceProps props = device.Props();
  rec->workload = w;
  rec->device = props;
  CB_RETURN_IF_ERROR(PlanLayers(w.model, w.LayersRun(), &rec->layer_plan));
  rec->layers_run = rec->layer_plan.size();
  rec->extrapolated = rec->layer_plan.Partial();
  rec->ceilings = opts.ceilings;
  // A simulated device's clock is modelled time: its figures are modelled (the record's
  // `extrapolated` flag still says when layers were scaled).
  const Provenance how = device.clock().simulated() ? Provenance::kModelled
                         : rec->extrapolated        ? Provenance::kExtrapolated
                                                    : Provenance::kMeasured;
  if (rec->extrapolated) rec->extrapolation_method = ExtrapolationMethod(rec->layer_plan);

  const Support support = device.Supports(w.dtype);
  if (!support.supported) {
    rec->status = "skipped";
    rec->status_message = support.reason;
    return Status::Ok();
  }
  rec->precision = PrecisionLabel(w.dtype, support.weight_only);
  static const ParallelContext kSingle;
  const ParallelContext& par = opts.parallel ? *opts.parallel : kSingle;
  WorkloadSpec replica_w = w;  // a device holds its replica's sequences only
  replica_w.batch = LocalBatch(w.batch, par.dp, par.dp_rank);
  const MemoryEstimate mem = EstimateMemory(replica_w);
  if (props.mem_bytes > 0 && PerDevicePeak(mem, par.tp) > props.mem_bytes) {
    return Status::Exhausted(
        w.model.name + " " + std::string(DTypeName(w.dtype)) + " batch " + std::to_string(w.batch) +
        " needs about " + Gib(PerDevicePeak(mem, par.tp)) + " per device (weights " +
        Gib(mem.weights) + ", KV cache " + Gib(mem.kv_cache) + ", activations " +
        Gib(mem.activations) + ", verification " + Gib(mem.verification) + ") but " +
        Gib(props.mem_bytes) + " is available on " + props.name +
        "; run fewer layers with --layers N, a smaller batch or context, or --no-verify");
  }

  const int64_t local_batch = LocalBatch(w.batch, par.dp, par.dp_rank);
  const int64_t first_seq = FirstSequence(w.batch, par.dp, par.dp_rank);
  OpStream stream, full;
  CB_RETURN_IF_ERROR(BuildDenseDecoderStream(
      w.model, ShardSpec{par.tp, par.tp_rank, par.ep, par.ep_rank}, w.LayersRun(), &stream));
  CB_RETURN_IF_ERROR(BuildDenseDecoderStream(w.model, ShardSpec{}, w.LayersRun(), &full));
  // A combination the backend cannot run (a KV dtype, a quantised MoE model) is skipped.
  auto fail = [&](const std::string& what, const Status& s) {
    rec->status = s.code() == StatusCode::kUnsupported ? "skipped" : "failed";
    rec->status_message = what + ": " + s.message();
    return s.code() == StatusCode::kCancelled ? s : Status::Ok();
  };

  SessionConfig cfg;
  cfg.dtype = w.dtype;
  cfg.kv_dtype = w.kv_dtype;
  cfg.weight_only = support.weight_only;
  cfg.max_sequences = local_batch;
  cfg.max_context = w.prompt_len + w.gen_len;
  cfg.max_step_tokens = local_batch * w.prompt_len;
  cfg.tp_comm = par.tp_group;
  cfg.ep_comm = par.ep_group;
  LoadProgress load_progress(opts.progress_prefix, opts.quiet);
  cfg.load_progress = load_progress.Callback();
  std::unique_ptr<Session> session;
  if (Status s = device.Open(cfg, &session); !s.ok()) return fail("opening a session", s);
  Progress(opts, "loading " + w.model.name + " (" + std::to_string(rec->layers_run) + " layers, " +
                     Gib(mem.weights / par.tp) + " of " + std::string(DTypeName(w.dtype)) +
                     " weights" + (par.tp > 1 ? " on this rank" : "") + ")");
  const WeightSource weights(w.seed);
  if (Status s = session->Load(stream, weights); !s.ok()) return fail("loading weights", s);
  load_progress.Done(session->AllocatedBytes());

  if (w.verify) {
    Progress(opts, "verifying against the reference backend");
    WorkloadSpec replica = w;  // this replica's share of the batch
    replica.batch = local_batch;
    AccuracyRecord accuracy;
    Status s = VerifyAgainstReference(replica, stream, *session, weights, par.tp_group,
                                      &rec->verification, support.weight_only, &accuracy);
    if (s.ok() && IsQuantized(w.dtype) && accuracy.positions > 0) rec->accuracy = accuracy;
    if (!s.ok()) return fail("verification", s);
  } else {
    rec->verification.status = "not_run";
    rec->verification.message = "disabled with --no-verify";
  }
  {
    // Every replica verified on its own; the run is valid only if all of them passed.
    std::string any;
    const std::string mine = rec->verification.status == "failed" ? rec->verification.message : "";
    if (Status s = AgreeOnFailure(par, mine, &any); !s.ok()) return fail("verification", s);
    if (!any.empty()) {
      rec->verification.status = "failed";
      if (rec->verification.message.empty()) rec->verification.message = any;
      rec->status = "invalid";
      rec->status_message = "verification failed: " + rec->verification.message;
      return Status::Ok();
    }
  }

  StepTimer timer(*session, device.clock(), stream);
  const int64_t vocab = stream.dims.vocab_full;

  // The work of one repetition for the whole job (all shards, all replicas), computed before
  // anything is timed.
  // Each replica reads its own copy of the weights, so the work is summed replica by replica.
  OpCost prefill_cost, decode_cost;
  for (int d = 0; d < par.dp; ++d) {
    const int64_t count = LocalBatch(w.batch, par.dp, d);
    StepIO shape = PrefillIO(w, vocab, FirstSequence(w.batch, par.dp, d), count);
    prefill_cost += ExtrapolatedCost(full, shape, w.dtype);
    shape.next_tokens.assign(count, 0);
    for (int64_t g = 0; g < w.gen_len; ++g) {
      AdvanceToDecode(shape);
      decode_cost += ExtrapolatedCost(full, shape, w.dtype);
    }
  }
  if (par.ep > 1) {
    // Under expert parallelism the replicas share one set of experts: each expert's weights
    // are read once per step, by its rank, for the tokens of every replica.
    StepIO shape = PrefillIO(w, vocab, 0, w.batch);
    ShareExpertReads(full, shape, w, par.dp, &prefill_cost);
    shape.next_tokens.assign(w.batch, 0);
    for (int64_t g = 0; g < w.gen_len; ++g) {
      AdvanceToDecode(shape);
      ShareExpertReads(full, shape, w, par.dp, &decode_cost);
    }
  }

  RankTimings mine;
  mine.rank = par.world_rank;
  mine.tp_rank = par.tp_rank;
  mine.dp_rank = par.dp_rank;
  mine.host = par.host;
  mine.sequences = local_batch;
  const int total = w.warmup + w.repetitions;
  MoeLoadSteps moe_load(stream.dims, par.ep_group);
  Status energy_started = Status::Unsupported("no energy meter");
  for (int rep = 0; rep < total; ++rep) {
    const bool warm = rep < w.warmup;
    // Replicas start each repetition together, so the slowest one sets the cluster's time.
    if (Status s = par.world ? par.world->Barrier() : Status::Ok(); !s.ok()) {
      return fail("synchronising ranks", s);
    }
    if (rep == w.warmup && opts.energy != nullptr) energy_started = opts.energy->Start();
    Progress(opts, warm ? "warm-up " + std::to_string(rep + 1) + "/" + std::to_string(w.warmup)
                        : "repetition " + std::to_string(rep - w.warmup + 1) + "/" +
                              std::to_string(w.repetitions));
    RepetitionSample sample;
    StepIO io = PrefillIO(w, vocab, first_seq, local_batch);
    std::vector<int32_t> first_seq_tokens;
    par.tp_group->ResetTimers();
    const double window_start = device.clock().NowSeconds();
    double measured = 0;
    double step_s = 0, step_measured = 0;
    if (Status s = timer.Step(io, &step_s, &step_measured); !s.ok()) return fail("prefill", s);
    sample.prefill_s = step_s;
    measured += step_measured;
    if (!warm) moe_load.Add(io);
    bool valid = TokensValid(io, vocab);
    for (int64_t g = 0; g < w.gen_len && valid; ++g) {
      if (CancelRequested()) return Status::Cancelled("interrupted");
      first_seq_tokens.push_back(io.next_tokens[0]);
      AdvanceToDecode(io);
      if (Status s = timer.Step(io, &step_s, &step_measured); !s.ok()) return fail("decode", s);
      sample.decode_step_s.push_back(step_s);
      measured += step_measured;
      if (!warm) moe_load.Add(io);
      valid = TokensValid(io, vocab);
    }
    const double window = device.clock().NowSeconds() - window_start;
    if (CancelRequested()) return Status::Cancelled("interrupted");
    if (!valid) {
      rec->status = "invalid";
      rec->status_message =
          "the backend produced an out-of-range token (NaN logits?) in repetition " +
          std::to_string(rep + 1);
      return Status::Ok();
    }
    if (warm) continue;
    first_seq_tokens.push_back(io.next_tokens[0]);
    rec->generated_tokens = first_seq_tokens;
    double decode_s = 0;
    for (double t : sample.decode_step_s) decode_s += t;
    sample.e2e_s = sample.prefill_s + decode_s;
    sample.backend_s = measured;
    rec->samples.push_back(sample);
    mine.prefill_s.push_back(sample.prefill_s);
    mine.decode_s.push_back(decode_s);
    mine.decode_step_s.push_back(sample.decode_step_s);
    mine.comm_s.push_back(par.tp_group->comm_seconds());
    mine.backend_s.push_back(measured);
    mine.window_s.push_back(window);
  }

  if (opts.energy != nullptr) {
    EnergyRecord energy;
    Status s = energy_started;
    if (s.ok()) s = opts.energy->StopReading(&energy.reading);
    if (s.ok()) {
      mine.energy_source = energy.reading.source;
      mine.energy_joules = energy.reading.joules;
      rec->energy = std::move(energy);
    } else {
      Progress(opts, "energy not measured: " + s.message());
    }
  }

  std::vector<RankTimings> ranks;
  if (Status s = GatherTimings(par, mine, &ranks); !s.ok()) return fail("gathering results", s);
  if (par.world_rank != 0) {
    rec->status = "ok";
    return Status::Ok();
  }
  if (par.virtual_cluster) {
    // One simulated TP group stands for every device: replica 0 has the most sequences, so
    // its time is the slowest replica's.
    ranks.clear();
    for (int r = 0; r < par.tp * par.dp; ++r) {
      RankTimings t = mine;
      t.rank = r;
      t.tp_rank = r % par.tp;
      t.dp_rank = r / par.tp;
      t.sequences = LocalBatch(w.batch, par.dp, t.dp_rank);
      ranks.push_back(std::move(t));
    }
  }
  AddThroughputMetrics(w, ranks, prefill_cost, decode_cost, opts.ceilings, how, rec);
  moe_load.AddMetrics(rec);
  if (par.world_size > 1 || par.virtual_cluster) {
    rec->cluster = MakeClusterRecord(par, ranks);
    rec->cluster->world_size = static_cast<int>(ranks.size());
  }
  if (par.world_size > 1 && rec->energy) {
    double joules = 0;
    std::string method;
    if (ClusterEnergy(ranks, &joules, &method)) {
      rec->energy->reading.joules = joules;
      rec->energy->reading.notes.push_back(method);
    }
  }
  rec->status = "ok";
  return Status::Ok();
}

}  // namespace cb
