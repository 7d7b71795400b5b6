#include "harness/runner.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <sstream>

#include "harness/cancel.h"
#include "harness/ceiling_check.h"
#include "harness/load_progress.h"
#include "harness/op_breakdown.h"
#include "harness/parallel.h"
#include "harness/run_events.h"
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

}  // namespace

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

  /// `step_s`: the step's (extrapolated) time; `measured_s`: time actually spent in the backend.
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

std::string Gib(uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f GiB", bytes / kGiB);
  return buf;
}

bool TokensValid(const StepIO& io, int64_t vocab) {
  if (io.next_tokens.size() != io.seqs.size()) return false;
  return std::all_of(io.next_tokens.begin(), io.next_tokens.end(),
                     [&](int32_t t) { return t >= 0 && t < vocab; });
}

}  // namespace

namespace {

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

/// Fills what the record knows before anything runs, including which layers run; `how`: how
/// its figures are obtained.
Status StartRecord(const WorkloadSpec& w, Device& device, const RunnerOptions& opts, RunRecord* rec,
                   Provenance* how) {
  rec->workload = w;
  rec->device = device.Props();
  CB_RETURN_IF_ERROR(PlanLayers(w.model, w.LayersRun(), &rec->layer_plan));
  rec->layers_run = rec->layer_plan.size();
  rec->extrapolated = rec->layer_plan.Partial();
  rec->ceilings = opts.ceilings;
  if (rec->extrapolated) rec->extrapolation_method = ExtrapolationMethod(rec->layer_plan);
  // A simulated device's clock is modelled time: its figures are modelled (the record's
  // `extrapolated` flag still says when layers were scaled).
  *how = device.clock().simulated() ? Provenance::kModelled
         : rec->extrapolated        ? Provenance::kExtrapolated
                                    : Provenance::kMeasured;
  return Status::Ok();
}

/// kResourceExhausted when one device cannot hold its share of the job.
Status CheckDeviceMemory(const WorkloadSpec& w, const ParallelContext& par,
                         const DeviceProps& props) {
  WorkloadSpec replica_w = w;  // a device holds its replica's sequences only
  replica_w.batch = LocalBatch(w.batch, par.dp, par.dp_rank);
  const MemoryEstimate mem = EstimateMemory(replica_w);
  if (props.mem_bytes == 0 || PerDevicePeak(mem, par.tp) <= props.mem_bytes) return Status::Ok();
  return Status::Exhausted(
      w.model.name + " " + std::string(DTypeName(w.dtype)) + " batch " + std::to_string(w.batch) +
      " needs about " + Gib(PerDevicePeak(mem, par.tp)) + " per device (weights " +
      Gib(mem.weights) + ", KV cache " + Gib(mem.kv_cache) + ", activations " +
      Gib(mem.activations) + ", verification " + Gib(mem.verification) + ") but " +
      Gib(props.mem_bytes) + " is available on " + props.name +
      "; run fewer layers with --layers N, a smaller batch or context, or --no-verify");
}

/// Every replica verifies on its own; the run is valid only if all of them passed. Leaves the
/// record failed or invalid when the run must stop.
Status VerifyReplicas(const WorkloadSpec& w, const ParallelContext& par, const OpStream& stream,
                      Session& session, const WeightSource& weights, bool weight_only,
                      const RunnerOptions& opts, RunRecord* rec) {
  if (w.verify) {
    Progress(opts, "verifying against the reference backend");
    WorkloadSpec replica = w;  // this replica's share of the batch
    replica.batch = LocalBatch(w.batch, par.dp, par.dp_rank);
    AccuracyRecord accuracy;
    Status s = VerifyAgainstReference(replica, stream, session, weights, par.tp_group,
                                      &rec->verification, weight_only, &accuracy);
    const bool quantized = IsQuantized(w.dtype) || IsQuantized(w.KvDType());
    if (s.ok() && quantized && accuracy.positions > 0) rec->accuracy = accuracy;
    if (!s.ok()) return SkipOrFailRun(rec, "verification", s);
  } else {
    rec->verification.status = "not_run";
    rec->verification.message = "disabled with --no-verify";
  }
  std::string any;
  const std::string mine = rec->verification.status == "failed" ? rec->verification.message : "";
  if (Status s = AgreeOnFailure(par, mine, &any); !s.ok()) return FailRun(rec, "verification", s);
  if (!any.empty()) {
    rec->verification.status = "failed";
    if (rec->verification.message.empty()) rec->verification.message = any;
    rec->status = "invalid";
    rec->status_message = "verification failed: " + rec->verification.message;
  }
  return Status::Ok();
}

/// What the repetitions of one run share.
struct Window {
  const WorkloadSpec& w;
  const RunnerOptions& opts;
  const ParallelContext& par;
  Clock& clock;
  StepTimer& timer;
  int64_t vocab = 0, first_seq = 0, local_batch = 0;
  DType matmul_dtype = DType::kBF16;  ///< whose peak MFU is judged against (MatmulDType)
};

/// One repetition: the prefill, then the decode steps. Leaves the record failed or invalid
/// when the run must stop; `window` is the repetition's whole wall time.
Status Repetition(const Window& win, int rep, MoeLoadSteps* moe_load, RepetitionSample* sample,
                  std::vector<int32_t>* tokens, double* window, RunRecord* rec) {
  const WorkloadSpec& w = win.w;
  const bool warm = rep < w.warmup;
  StepIO io = PrefillIO(w, win.vocab, win.first_seq, win.local_batch);
  win.par.tp_group->ResetTimers();
  const double window_start = win.clock.NowSeconds();
  double step_s = 0, step_measured = 0;
  if (Status s = win.timer.Step(io, &step_s, &step_measured); !s.ok()) {
    return FailRun(rec, "prefill", s);
  }
  sample->prefill_s = step_s;
  sample->backend_s += step_measured;
  if (!warm) moe_load->Add(io);
  bool valid = TokensValid(io, win.vocab);
  for (int64_t g = 0; g < w.gen_len && valid; ++g) {
    if (CancelRequested()) return Status::Cancelled("interrupted");
    tokens->push_back(io.next_tokens[0]);
    AdvanceToDecode(io);
    if (Status s = win.timer.Step(io, &step_s, &step_measured); !s.ok()) {
      return FailRun(rec, "decode", s);
    }
    sample->decode_step_s.push_back(step_s);
    sample->backend_s += step_measured;
    if (!warm) moe_load->Add(io);
    valid = TokensValid(io, win.vocab);
  }
  *window = win.clock.NowSeconds() - window_start;
  if (CancelRequested()) return Status::Cancelled("interrupted");
  if (!valid) {
    rec->status = "invalid";
    rec->status_message =
        "the backend produced an out-of-range token (NaN logits?) in repetition " +
        std::to_string(rep + 1);
    return Status::Ok();
  }
  tokens->push_back(io.next_tokens[0]);
  return Status::Ok();
}

/// Reads the energy meter started before the first measured repetition into the record.
void ReadEnergy(const RunnerOptions& opts, const Status& started, RankTimings* mine,
                RunRecord* rec) {
  if (!RecordEnergy(opts, started, rec)) return;
  mine->energy_source = rec->energy->reading.source;
  mine->energy_joules = rec->energy->reading.joules;
}

/// The warm-up and measured repetitions, every repetition started by a barrier. The measured
/// window is framed by the ceiling probes (right outside it) and the energy meter (right
/// inside). Every rank probes at the same moment, between barriers, so that no rank's probe
/// overlaps another's repetition. Leaves the record failed or invalid when the run must stop.
Status MeasureRepetitions(const Window& win, MoeLoadSteps* moe_load, RankTimings* mine,
                          RunRecord* rec) {
  const WorkloadSpec& w = win.w;
  const RunnerOptions& opts = win.opts;
  auto barrier = [&] { return win.par.world ? win.par.world->Barrier() : Status::Ok(); };
  const bool probe = opts.ceiling_probe != nullptr && w.serving.ceiling_probes;
  Status energy_started = Status::Unsupported("no energy meter");
  const int total = w.warmup + w.repetitions;
  for (int rep = 0; rep < total; ++rep) {
    const bool warm = rep < w.warmup;
    if (rep == w.warmup && probe) {
      if (Status s = barrier(); !s.ok()) return FailRun(rec, "synchronising ranks", s);
      Progress(opts,
               SampleCeilingsBeside(w, win.matmul_dtype, opts, /*before=*/true, &mine->probes));
    }
    // Replicas start each repetition together, so the slowest one sets the cluster's time.
    if (Status s = barrier(); !s.ok()) return FailRun(rec, "synchronising ranks", s);
    if (rep == w.warmup) energy_started = StartEnergy(opts);
    Progress(opts,
             warm ? "warm-up " + std::to_string(rep + 1) + "/" + std::to_string(w.warmup)
                  : "repetition " + std::to_string(rep - w.warmup + 1) + "/" +
                        std::to_string(w.repetitions),
             static_cast<double>(rep) / total);
    RepetitionSample sample;
    std::vector<int32_t> tokens;
    double window = 0;
    Status s = Repetition(win, rep, moe_load, &sample, &tokens, &window, rec);
    if (!s.ok() || rec->status != "ok") return s;
    if (warm) continue;
    rec->generated_tokens = tokens;
    double decode_s = 0;
    for (double t : sample.decode_step_s) decode_s += t;
    sample.e2e_s = sample.prefill_s + decode_s;
    rec->samples.push_back(sample);
    mine->prefill_s.push_back(sample.prefill_s);
    mine->decode_s.push_back(decode_s);
    mine->decode_step_s.push_back(sample.decode_step_s);
    mine->comm_s.push_back(win.par.tp_group->comm_seconds());
    mine->backend_s.push_back(sample.backend_s);
    mine->window_s.push_back(window);
  }
  ReadEnergy(opts, energy_started, mine, rec);
  if (probe) {
    if (Status s = barrier(); !s.ok()) return FailRun(rec, "synchronising ranks", s);
    Progress(opts,
             SampleCeilingsBeside(w, win.matmul_dtype, opts, /*before=*/false, &mine->probes));
  }
  return Status::Ok();
}

/// --op-breakdown after the window (single-rank runs), its roofline shares judged against
/// ceilings sampled right beside it.
Status OpBreakdownBeside(const Window& win, Session& session, const OpStream& stream,
                         RunRecord* rec) {
  const RunnerOptions& opts = win.opts;
  if (win.par.world_size > 1) {
    Progress(opts, "op breakdown: single-rank runs only; not measured");
    return Status::Ok();
  }
  Progress(opts, "op breakdown: timing one prefill and the decode steps op by op");
  WindowProbes probes;
  Progress(opts, SampleCeilingsBeside(win.w, win.matmul_dtype, opts, /*before=*/true, &probes,
                                      "the op breakdown"));
  OpBreakdownRecord b;
  CB_RETURN_IF_ERROR(MeasureOpBreakdown(session, win.clock, stream, win.w, win.vocab, win.first_seq,
                                        win.local_batch, &b));
  Progress(opts, SampleCeilingsBeside(win.w, win.matmul_dtype, opts, /*before=*/false, &probes,
                                      "the op breakdown"));
  if (probes.taken) {
    b.mem_read_before = probes.before.mem_read_bytes_per_s;
    b.mem_read_after = probes.after.mem_read_bytes_per_s;
    b.matmul_before = probes.before.matmul_flops_per_s;
    b.matmul_after = probes.after.matmul_flops_per_s;
    b.matmul_dtype = DTypeName(win.matmul_dtype);
  }
  rec->op_breakdown = std::move(b);
  return Status::Ok();
}

/// Rank 0 turns every rank's timings into the job's figures and its cluster section.
void FinishJob(const Window& win, const OpCost& prefill_cost, const OpCost& decode_cost,
               Provenance how, const MoeLoadSteps& moe_load, const RankTimings& mine,
               std::vector<RankTimings> ranks, RunRecord* rec) {
  const WorkloadSpec& w = win.w;
  const ParallelContext& par = win.par;
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
  AddJudgedMetrics(w, win.opts, rec->device.simulated, win.matmul_dtype, ranks, prefill_cost,
                   decode_cost, how, rec);
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
}

}  // namespace

Status RunOffline(const WorkloadSpec& w, Device& device, const RunnerOptions& opts,
                  RunRecord* rec) {
  Provenance how = Provenance::kMeasured;
  CB_RETURN_IF_ERROR(StartRecord(w, device, opts, rec, &how));
  const Support support = device.Supports(w.dtype);
  if (!support.supported) {
    rec->status = "skipped";
    rec->status_message = support.reason;
    return Status::Ok();
  }
  rec->precision = PrecisionLabel(w.dtype, support.weight_only);
  // A single process (opts.parallel null) is a job of one rank with a one-rank TP group.
  static SingleRankCommunicator single_rank;
  static const ParallelContext kSingle = [] {
    ParallelContext p;
    p.tp_group = p.ep_group = &single_rank;
    return p;
  }();
  const ParallelContext& par = opts.parallel ? *opts.parallel : kSingle;
  CB_RETURN_IF_ERROR(CheckDeviceMemory(w, par, rec->device));

  const int64_t local_batch = LocalBatch(w.batch, par.dp, par.dp_rank);
  OpStream stream, full;
  CB_RETURN_IF_ERROR(BuildDenseDecoderStream(
      w.model, ShardSpec{par.tp, par.tp_rank, par.ep, par.ep_rank}, w.LayersRun(), &stream));
  CB_RETURN_IF_ERROR(BuildDenseDecoderStream(w.model, ShardSpec{}, w.LayersRun(), &full));

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
  if (Status s = device.Open(cfg, &session); !s.ok()) {
    return SkipOrFailRun(rec, "opening a session", s);
  }
  Progress(opts, "loading " + w.model.name + " (" + std::to_string(rec->layers_run) + " layers, " +
                     Gib(EstimateMemory(w).weights / par.tp) + " of " +
                     std::string(DTypeName(w.dtype)) + " weights" +
                     (par.tp > 1 ? " on this rank" : "") + ")");
  const WeightSource weights(w.seed);
  if (Status s = session->Load(stream, weights); !s.ok()) {
    return SkipOrFailRun(rec, "loading weights", s);
  }
  load_progress.Done(session->AllocatedBytes());
  if (Status s = VerifyReplicas(w, par, stream, *session, weights, support.weight_only, opts, rec);
      !s.ok() || rec->status != "ok") {
    return s;
  }

  StepTimer timer(*session, device.clock(), stream);
  RunnerOptions run_opts = opts;
  if (rec->device.simulated) run_opts.ceiling_probe = nullptr;  // modelled: nothing to sample
  const Window win{w,
                   run_opts,
                   par,
                   device.clock(),
                   timer,
                   stream.dims.vocab_full,
                   FirstSequence(w.batch, par.dp, par.dp_rank),
                   local_batch,
                   MatmulDType(w.dtype, support.weight_only)};
  OpCost prefill_cost, decode_cost;
  JobWork(w, full, win.vocab, par, &prefill_cost, &decode_cost);

  RankTimings mine;
  mine.rank = par.world_rank;
  mine.tp_rank = par.tp_rank;
  mine.dp_rank = par.dp_rank;
  mine.host = par.host;
  mine.sequences = local_batch;
  MoeLoadSteps moe_load(stream.dims, par.ep_group);
  if (Status s = MeasureRepetitions(win, &moe_load, &mine, rec); !s.ok() || rec->status != "ok") {
    return s;
  }
  if (w.op_breakdown && !rec->device.simulated) {
    if (Status s = OpBreakdownBeside(win, *session, stream, rec); !s.ok()) {
      return FailRun(rec, "the op breakdown", s);
    }
  }
  std::vector<RankTimings> ranks;
  if (Status s = GatherTimings(par, mine, &ranks); !s.ok()) {
    return FailRun(rec, "gathering results", s);
  }
  if (par.world_rank == 0) {
    FinishJob(win, prefill_cost, decode_cost, how, moe_load, mine, std::move(ranks), rec);
  }
  rec->status = "ok";
  return Status::Ok();
}

}  // namespace cb
