#include "harness/runner.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "harness/cancel.h"
#include "harness/stats.h"
#include "harness/verify.h"
#include "workloads/op_cost.h"

namespace cb {
namespace {

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

/// Times steps. A stream with every layer of the model runs as one call; a partial stream runs
/// segment by segment and its step time is extrapolated to the model's layer count as
/// head + tail + mean(layer) * num_layers.
class StepTimer {
 public:
  StepTimer(Session& session, Clock& clock, const OpStream& stream, int model_layers)
      : session_(session),
        clock_(clock),
        stream_(stream),
        seg_(SplitByLayer(stream)),
        model_layers_(model_layers),
        extrapolate_(stream.layers < model_layers) {}

  /// `step_s`: the step's (extrapolated) time; `measured_s`: time actually spent in the backend.
  Status Step(StepIO& io, double* step_s, double* measured_s) {
    if (!extrapolate_) {
      double t = 0;
      CB_RETURN_IF_ERROR(Timed({0, stream_.ops.size()}, io, &t));
      *step_s = *measured_s = t;
      return Status::Ok();
    }
    double head = 0, tail = 0, layers = 0;
    CB_RETURN_IF_ERROR(Timed(seg_.head, io, &head));
    for (const OpRange& r : seg_.layers) {
      double t = 0;
      CB_RETURN_IF_ERROR(Timed(r, io, &t));
      layers += t;
    }
    CB_RETURN_IF_ERROR(Timed(seg_.tail, io, &tail));
    *measured_s = head + layers + tail;
    *step_s = head + tail + layers / static_cast<double>(seg_.layers.size()) * model_layers_;
    return Status::Ok();
  }

  /// Work of a step of the whole model (extrapolated the same way as the time).
  OpCost Cost(const StepIO& io, DType dtype) const {
    OpCost c = CostOfOps(stream_, seg_.head.begin, seg_.head.end, io, dtype);
    c += CostOfOps(stream_, seg_.tail.begin, seg_.tail.end, io, dtype);
    if (!seg_.layers.empty()) {
      OpCost layer = CostOfOps(stream_, seg_.layers[0].begin, seg_.layers[0].end, io, dtype);
      const double n = extrapolate_ ? model_layers_ : static_cast<double>(seg_.layers.size());
      layer.flops *= n;
      layer.bytes *= n;
      layer.weight_bytes *= n;
      layer.kv_bytes *= n;
      c += layer;
    }
    return c;
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
  int model_layers_;
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

StepIO PrefillIO(const WorkloadSpec& w, int64_t vocab) {
  StepIO io;
  for (int64_t s = 0; s < w.batch; ++s) {
    io.seqs.push_back({s, 0, w.prompt_len});
    for (int64_t p = 0; p < w.prompt_len; ++p)
      io.tokens.push_back(SyntheticToken(w.seed, s, p, vocab));
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

bool TokensValid(const StepIO& io, int64_t vocab) {
  if (io.next_tokens.size() != io.seqs.size()) return false;
  return std::all_of(io.next_tokens.begin(), io.next_tokens.end(),
                     [&](int32_t t) { return t >= 0 && t < vocab; });
}

Metric MakeMetric(const std::string& name, const std::string& unit, Provenance how,
                  const std::vector<double>& samples) {
  Metric m{name, unit, how, Median(samples), true, Summarize(samples)};
  return m;
}

Metric Scalar(const std::string& name, const std::string& unit, Provenance how, double value) {
  return Metric{name, unit, how, value, false, {}};
}

}  // namespace

MemoryEstimate EstimateMemory(const WorkloadSpec& w) {
  const ModelSpec& m = w.model;
  const int layers = w.LayersRun();
  const double dt = static_cast<double>(DTypeBytes(w.dtype));
  const double hd = m.head_dim > 0 ? m.head_dim : m.hidden_size / m.num_heads;
  const double layer_params = static_cast<double>(m.LayerParams());
  const double outer =
      static_cast<double>(m.vocab_size) * m.hidden_size * (m.tie_embeddings ? 1 : 2);
  MemoryEstimate e;
  const double params = outer + layers * layer_params + m.hidden_size;
  e.weights = static_cast<uint64_t>(params * dt);
  e.kv_cache = static_cast<uint64_t>(2.0 * layers * w.batch * (w.prompt_len + w.gen_len) *
                                     m.num_kv_heads * hd * dt);
  const double tokens = static_cast<double>(w.batch) * w.prompt_len;
  const double per_token =
      4.0 *
      (4.0 * m.hidden_size + (2.0 * m.num_heads + 2.0 * m.num_kv_heads) * hd + 3.0 * m.ffn_size);
  e.activations = static_cast<uint64_t>(tokens * per_token + 2.0 * w.batch * m.vocab_size * 4.0);
  if (w.verify) e.verification = static_cast<uint64_t>(params * 4.0);
  return e;
}

Status RunOffline(const WorkloadSpec& w, Device& device, const RunnerOptions& opts,
                  RunRecord* rec) {
  const DeviceProps props = device.Props();
  rec->workload = w;
  rec->device = props;
  rec->layers_run = w.LayersRun();
  rec->extrapolated = w.Extrapolated();
  rec->ceilings = opts.ceilings;
  const Provenance how = rec->extrapolated ? Provenance::kExtrapolated : Provenance::kMeasured;
  if (rec->extrapolated) {
    rec->extrapolation_method = "ran " + std::to_string(rec->layers_run) + " of " +
                                std::to_string(w.model.num_layers) +
                                " decoder layers; step time = time outside the layers + mean "
                                "measured layer time x " +
                                std::to_string(w.model.num_layers);
  }

  const Support support = device.Supports(w.dtype);
  if (!support.supported) {
    rec->status = "skipped";
    rec->status_message = support.reason;
    return Status::Ok();
  }
  const MemoryEstimate mem = EstimateMemory(w);
  if (props.mem_bytes > 0 && mem.Peak() > props.mem_bytes) {
    return Status::Exhausted(
        w.model.name + " " + std::string(DTypeName(w.dtype)) + " batch " + std::to_string(w.batch) +
        " needs about " + Gib(mem.Peak()) + " (weights " + Gib(mem.weights) + ", KV cache " +
        Gib(mem.kv_cache) + ", activations " + Gib(mem.activations) + ", verification " +
        Gib(mem.verification) + ") but " + Gib(props.mem_bytes) + " is available on " + props.name +
        "; run fewer layers with --layers N, a smaller batch or context, or --no-verify");
  }

  OpStream stream;
  CB_RETURN_IF_ERROR(BuildDenseDecoderStream(w.model, ShardSpec{}, w.LayersRun(), &stream));
  auto fail = [&](const std::string& what, const Status& s) {
    rec->status = "failed";
    rec->status_message = what + ": " + s.message();
    return s.code() == StatusCode::kCancelled ? s : Status::Ok();
  };

  SessionConfig cfg;
  cfg.dtype = w.dtype;
  cfg.max_sequences = w.batch;
  cfg.max_context = w.prompt_len + w.gen_len;
  cfg.max_step_tokens = w.batch * w.prompt_len;
  std::unique_ptr<Session> session;
  if (Status s = device.Open(cfg, &session); !s.ok()) return fail("opening a session", s);
  Progress(opts, "loading " + w.model.name + " (" + std::to_string(rec->layers_run) + " layers, " +
                     Gib(mem.weights) + " of " + std::string(DTypeName(w.dtype)) + " weights)");
  const WeightSource weights(w.seed);
  if (Status s = session->Load(stream, weights); !s.ok()) return fail("loading weights", s);

  if (w.verify) {
    Progress(opts, "verifying against the reference backend");
    Status s = VerifyAgainstReference(w, stream, *session, weights, &rec->verification);
    if (!s.ok()) return fail("verification", s);
    if (rec->verification.status != "passed") {
      rec->status = "invalid";
      rec->status_message = "verification failed: " + rec->verification.message;
      return Status::Ok();
    }
  } else {
    rec->verification.status = "not_run";
    rec->verification.message = "disabled with --no-verify";
  }

  StepTimer timer(*session, device.clock(), stream, static_cast<int>(w.model.num_layers));
  const int64_t vocab = stream.dims.vocab_full;

  // The work of one repetition, computed before anything is timed.
  StepIO shape = PrefillIO(w, vocab);
  const OpCost prefill_cost = timer.Cost(shape, w.dtype);
  OpCost decode_cost;
  shape.next_tokens.assign(w.batch, 0);
  for (int64_t g = 0; g < w.gen_len; ++g) {
    AdvanceToDecode(shape);
    decode_cost += timer.Cost(shape, w.dtype);
  }

  std::vector<double> prefill_tps, decode_tps, ttft, tpot, e2e, overhead;
  const int total = w.warmup + w.repetitions;
  Status energy_started = Status::Unsupported("no energy meter");
  for (int rep = 0; rep < total; ++rep) {
    const bool warm = rep < w.warmup;
    if (rep == w.warmup && opts.energy != nullptr) energy_started = opts.energy->Start();
    Progress(opts, warm ? "warm-up " + std::to_string(rep + 1) + "/" + std::to_string(w.warmup)
                        : "repetition " + std::to_string(rep - w.warmup + 1) + "/" +
                              std::to_string(w.repetitions));
    RepetitionSample sample;
    StepIO io = PrefillIO(w, vocab);
    std::vector<int32_t> first_seq_tokens;
    const double window_start = device.clock().NowSeconds();
    double measured = 0;
    double step_s = 0, step_measured = 0;
    if (Status s = timer.Step(io, &step_s, &step_measured); !s.ok()) return fail("prefill", s);
    sample.prefill_s = step_s;
    measured += step_measured;
    bool valid = TokensValid(io, vocab);
    for (int64_t g = 0; g < w.gen_len && valid; ++g) {
      if (CancelRequested()) return Status::Cancelled("interrupted");
      first_seq_tokens.push_back(io.next_tokens[0]);
      AdvanceToDecode(io);
      if (Status s = timer.Step(io, &step_s, &step_measured); !s.ok()) return fail("decode", s);
      sample.decode_step_s.push_back(step_s);
      measured += step_measured;
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
    prefill_tps.push_back(static_cast<double>(w.batch * w.prompt_len) / sample.prefill_s);
    decode_tps.push_back(static_cast<double>(w.batch * w.gen_len) / decode_s);
    ttft.push_back(sample.prefill_s);
    tpot.insert(tpot.end(), sample.decode_step_s.begin(), sample.decode_step_s.end());
    e2e.push_back(sample.e2e_s);
    overhead.push_back(window > 0 ? std::max(0.0, 1.0 - measured / window) : 0.0);
  }

  if (opts.energy != nullptr) {
    EnergyRecord energy;
    Status s = energy_started;
    if (s.ok()) s = opts.energy->StopReading(&energy.reading);
    if (s.ok()) {
      rec->energy = std::move(energy);
    } else {
      Progress(opts, "energy not measured: " + s.message());
    }
  }

  auto& M = rec->metrics;
  M.push_back(MakeMetric("prefill_tokens_per_second", "tokens/s", how, prefill_tps));
  M.push_back(MakeMetric("decode_tokens_per_second", "tokens/s", how, decode_tps));
  M.push_back(MakeMetric("ttft_seconds", "s", how, ttft));
  M.push_back(MakeMetric("tpot_seconds", "s", how, tpot));
  M.push_back(MakeMetric("e2e_latency_seconds", "s", how, e2e));
  M.push_back(MakeMetric("harness_overhead_ratio", "ratio", Provenance::kMeasured, overhead));

  const double prefill_s = Median(ttft);
  std::vector<double> decode_totals;
  for (const auto& s : rec->samples) decode_totals.push_back(s.e2e_s - s.prefill_s);
  const double decode_s = Median(decode_totals);
  M.push_back(Scalar("prefill_flops_per_second", "FLOP/s", how, prefill_cost.flops / prefill_s));
  M.push_back(Scalar("decode_bytes_per_second", "bytes/s", how, decode_cost.bytes / decode_s));
  const double peak = opts.ceilings.matmul_flops_per_s[static_cast<int>(w.dtype)];
  const double bw = opts.ceilings.mem_read_bytes_per_s;
  if (peak > 0) {
    M.push_back(Scalar("mfu_prefill_ratio", "ratio", how, prefill_cost.flops / prefill_s / peak));
    M.push_back(Scalar("mfu_decode_ratio", "ratio", how, decode_cost.flops / decode_s / peak));
  }
  if (bw > 0) {
    M.push_back(Scalar("mbu_prefill_ratio", "ratio", how, prefill_cost.bytes / prefill_s / bw));
    M.push_back(Scalar("mbu_decode_ratio", "ratio", how, decode_cost.bytes / decode_s / bw));
  }
  rec->status = "ok";
  return Status::Ok();
}

}  // namespace cb
