// `clusterbench calibrate`: fits a catalog device's efficiency curves to per-op times measured
// on a real backend (the cpu backend on this machine), stores them next to the catalog, and
// reports the model's error on whole steps of shapes not used for the fit.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "backends/registry.h"
#include "backends/sim/calibration.h"
#include "backends/sim/sim_device.h"
#include "harness/cli/commands.h"
#include "harness/cli/output.h"
#include "harness/cost/run_energy_cost.h"
#include "harness/micro/ceilings.h"
#include "harness/runner.h"
#include "workloads/model_spec.h"
#include "workloads/op_cost.h"
#include "workloads/weights.h"

namespace cb {
namespace {

struct CalibrateFlags {
  std::string device, backend = "cpu", model = "llama-3.2-1b", dtype = "bf16";
  std::string results_dir = "results", out_dir, catalog_dir;
  int layers = 2, repetitions = 5;
};

struct Shape {
  int64_t batch, new_tokens, past;
  std::string Name() const {
    return (new_tokens > 1 ? "prefill b" + std::to_string(batch) + " p" + std::to_string(new_tokens)
                           : "decode b" + std::to_string(batch) + " ctx" + std::to_string(past));
  }
};

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

StepIO MakeIO(const Shape& s, int64_t vocab) {
  StepIO io;
  for (int64_t b = 0; b < s.batch; ++b) {
    io.seqs.push_back({b, s.past, s.new_tokens});
    for (int64_t p = 0; p < s.new_tokens; ++p) io.tokens.push_back(SyntheticToken(7, b, p, vocab));
  }
  return io;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n == 0 ? 0 : n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/// Fills the KV cache of a decode shape's sequences with `past` positions (a prefill).
Status Prime(Session& session, const OpStream& stream, const Shape& shape) {
  if (shape.past == 0) return Status::Ok();
  StepIO io = MakeIO({shape.batch, shape.past, 0}, stream.dims.vocab_full);  // new = past
  CB_RETURN_IF_ERROR(session.Run(stream, {0, stream.ops.size()}, io));
  return session.Synchronize();
}

/// Repetition `r` of a shape: a decode step follows the previous one's positions.
StepIO RepIO(const Shape& shape, int r, int64_t vocab) {
  Shape s = shape;
  if (s.past > 0) s.past += r;
  return MakeIO(s, vocab);
}

/// Per-op seconds of one step (median over repetitions), ops run one at a time.
Status TimeOps(Session& session, const OpStream& stream, const Shape& shape, int reps,
               std::vector<double>* out) {
  std::vector<std::vector<double>> t(stream.ops.size());
  CB_RETURN_IF_ERROR(Prime(session, stream, shape));
  for (int r = 0; r < reps + 1; ++r) {
    StepIO io = RepIO(shape, r, stream.dims.vocab_full);
    for (size_t i = 0; i < stream.ops.size(); ++i) {
      CB_RETURN_IF_ERROR(session.Synchronize());
      const double t0 = Now();
      CB_RETURN_IF_ERROR(session.Run(stream, {i, i + 1}, io));
      CB_RETURN_IF_ERROR(session.Synchronize());
      if (r > 0) t[i].push_back(Now() - t0);  // the first pass warms up
    }
  }
  out->clear();
  for (auto& v : t) out->push_back(Median(v));
  return Status::Ok();
}

/// Seconds of one whole step (best repetition).
Status TimeStep(Session& session, const OpStream& stream, const Shape& shape, int reps,
                double* out) {
  std::vector<double> t;
  CB_RETURN_IF_ERROR(Prime(session, stream, shape));
  for (int r = 0; r < reps + 1; ++r) {
    StepIO io = RepIO(shape, r, stream.dims.vocab_full);
    CB_RETURN_IF_ERROR(session.Synchronize());
    const double t0 = Now();
    CB_RETURN_IF_ERROR(session.Run(stream, {0, stream.ops.size()}, io));
    CB_RETURN_IF_ERROR(session.Synchronize());
    if (r > 0) t.push_back(Now() - t0);
  }
  *out = *std::min_element(t.begin(), t.end());  // best repetition, as above
  return Status::Ok();
}

double Predict(const sim::DeviceModel& m, const OpStream& stream, const Shape& shape, DType dt) {
  const StepIO io = MakeIO(shape, stream.dims.vocab_full);
  double t = 0;
  for (const Op& op : stream.ops) t += sim::OpSeconds(m, stream, op, io, dt);
  return t;
}

int Fail(const Status& s) {
  std::fprintf(stderr, "clusterbench calibrate: %s\n", s.message().c_str());
  return s.ExitCode();
}

int Calibrate(const CalibrateFlags& f) {
  DType dt;
  if (f.dtype == "bf16") {
    dt = DType::kBF16;
  } else if (f.dtype == "fp32") {
    dt = DType::kF32;
  } else {
    return Fail(Status::InvalidInput("command line: --dtype: allowed values: bf16, fp32"));
  }
  DeviceCatalog catalog;
  if (Status s = DeviceCatalog::Load(f.catalog_dir.empty() ? DefaultCatalogDir() : f.catalog_dir,
                                     &catalog);
      !s.ok()) {
    return Fail(s);
  }
  std::unique_ptr<Device> real;
  if (Status s = OpenDevice(f.backend, &real); !s.ok()) return Fail(s);
  const DeviceProps props = real->Props();
  if (props.simulated) return Fail(Status::InvalidInput("command line: calibrate a real backend"));
  const CatalogEntry* entry = nullptr;
  std::string by;
  if (Status s =
          EnergyCostPlanner::ResolveEntry(catalog, f.device, "command line", props, &entry, &by);
      !s.ok() || entry == nullptr) {
    return Fail(s.ok() ? Status::InvalidInput("command line: no catalog entry for " + props.name +
                                              "; give --device")
                       : s);
  }
  std::fprintf(stderr, "calibrating %s (%s) from the %s backend on %s\n", entry->id.c_str(),
               by.c_str(), f.backend.c_str(), props.name.c_str());

  sim::DeviceModel model;
  if (Status s = sim::ModelFromCatalog(*entry, &model); !s.ok()) return Fail(s);
  sim::Calibration cal;
  cal.device = entry->id;
  if (props.kind == "cpu") {
    // Where the device can be measured, the measurement wins over the catalog's figures.
    Ceilings c;
    if (Status s = LoadOrMeasureCeilings(f.results_dir, false, &c); !s.ok()) return Fail(s);
    for (int d = 0; d < kDTypeCount; ++d) {
      if (c.matmul_flops_per_s[d] > 0)
        model.peak_flops[d] = cal.peak_flops[d] = c.matmul_flops_per_s[d];
    }
    if (c.mem_read_bytes_per_s > 0)
      model.mem_bandwidth = cal.mem_bandwidth = c.mem_read_bytes_per_s;
  }
  if (model.Peak(dt) <= 0 || model.mem_bandwidth <= 0) {
    return Fail(Status::InvalidInput("no peak FLOP/s or bandwidth for " + entry->id));
  }

  ModelSpec spec;
  if (Status s = LoadModelSpec(f.model, &spec); !s.ok()) return Fail(s);
  const int layers = std::min<int>(f.layers, static_cast<int>(spec.num_layers));
  OpStream stream;
  if (Status s = BuildDenseDecoderStream(spec, ShardSpec{}, layers, &stream); !s.ok())
    return Fail(s);
  // Fitted on these shapes; the error is reported on others.
  const std::vector<Shape> fit_shapes = {{1, 16, 0}, {1, 64, 0},  {1, 256, 0}, {4, 64, 0},
                                         {1, 1, 64}, {4, 1, 128}, {16, 1, 64}, {64, 1, 32}};
  const std::vector<Shape> held_out = {{1, 32, 0},  {2, 96, 0},  {1, 384, 0}, {2, 1, 200},
                                       {8, 1, 100}, {16, 1, 96}, {1, 1, 480}};
  int64_t max_seqs = 0, max_ctx = 0, max_tokens = 0;
  for (const auto* set : {&fit_shapes, &held_out}) {
    for (const Shape& s : *set) {
      max_seqs = std::max(max_seqs, s.batch);
      max_ctx = std::max(max_ctx, s.past + s.new_tokens + 8);
      max_tokens = std::max(max_tokens, s.batch * std::max(s.new_tokens, s.past));
    }
  }
  SessionConfig cfg;
  cfg.dtype = dt;
  cfg.max_sequences = max_seqs;
  cfg.max_context = max_ctx;
  cfg.max_step_tokens = max_tokens;
  std::unique_ptr<Session> session;
  if (Status s = real->Open(cfg, &session); !s.ok()) return Fail(s);
  if (Status s = session->Load(stream, WeightSource(1)); !s.ok()) return Fail(s);

  std::vector<sim::OpSample> samples;
  for (const Shape& shape : fit_shapes) {
    std::fprintf(stderr, "  per-op times: %s\n", shape.Name().c_str());
    std::vector<double> secs;
    if (Status s = TimeOps(*session, stream, shape, f.repetitions, &secs); !s.ok()) return Fail(s);
    // Ops timed one at a time on a shared host are noisy and miss what a whole step costs
    // between ops: scale the shape's per-op times so they add up to its best whole step.
    double step = 0, sum = 0;
    if (Status s = TimeStep(*session, stream, shape, f.repetitions, &step); !s.ok()) return Fail(s);
    for (double x : secs) sum += x;
    if (sum > 0 && step > 0) {
      for (double& x : secs) x *= step / sum;
    }
    const StepIO io = MakeIO(shape, stream.dims.vocab_full);
    for (size_t i = 0; i < stream.ops.size(); ++i) {
      const Op& op = stream.ops[i];
      const sim::OpClass cls = sim::ClassOf(op.kind);
      if (cls == sim::OpClass::kCollective) continue;  // identity on one device
      sim::OpSample smp;
      smp.cls = cls;
      smp.cost = CostOfOp(stream, op, io, dt);
      smp.rows = BufferRows(op.out) == Rows::kSequenceRows ? static_cast<double>(io.seqs.size())
                                                           : static_cast<double>(io.TotalTokens());
      smp.dtype = dt;
      smp.seconds = std::max(secs[i], 1e-7);
      samples.push_back(smp);
    }
  }
  cal.fit_median_abs_error = sim::FitEfficiency(samples, &model);
  cal.eff = model.eff;

  std::printf("calibration of %s (%s) against the %s backend, %s, %s with %d layers\n",
              entry->id.c_str(), sim::kModelVersion, f.backend.c_str(), f.dtype.c_str(),
              spec.name.c_str(), layers);
  std::printf("fitted on %zu per-op times of %zu shapes: median abs error per op %.1f%%\n",
              samples.size(), fit_shapes.size(), 100 * cal.fit_median_abs_error);
  const sim::Efficiency& e = model.eff;
  std::printf(
      "  matmul_eff %.3f, matmul_m_half %.3g, matmul_mem_eff %.3f, attention_eff %.3f, "
      "attention_mem_eff %.3f, elementwise_mem_eff %.3f, launch %.3g us\n",
      e.matmul_eff, e.matmul_m_half, e.matmul_mem_eff, e.attention_eff, e.attention_mem_eff,
      e.elementwise_mem_eff, e.launch_s * 1e6);
  std::printf("held-out shapes (whole steps, not used to fit):\n");
  std::printf("  %-22s %14s %14s %8s\n", "shape", "measured tok/s", "sim tok/s", "error");
  std::vector<double> errors, prefill_err, decode_err;
  for (const Shape& shape : held_out) {
    double measured = 0;
    if (Status s = TimeStep(*session, stream, shape, f.repetitions, &measured); !s.ok())
      return Fail(s);
    const double predicted = Predict(model, stream, shape, dt);
    const double tokens = static_cast<double>(shape.batch * shape.new_tokens);
    const double err = measured / predicted - 1;  // (sim tok/s - measured tok/s) / measured
    errors.push_back(std::abs(err));
    (shape.new_tokens > 1 ? prefill_err : decode_err).push_back(std::abs(err));
    char line[256];
    std::snprintf(line, sizeof line, "%s: measured %.4g tok/s, sim %.4g tok/s, error %+.1f%%",
                  shape.Name().c_str(), tokens / measured, tokens / predicted, 100 * err);
    cal.held_out.push_back(line);
    std::printf("  %-22s %14.4g %14.4g %+7.1f%%\n", shape.Name().c_str(), tokens / measured,
                tokens / predicted, 100 * err);
  }
  cal.held_out_median_abs_error = Median(errors);
  std::printf(
      "median abs error of tokens/s on %zu held-out shapes: %.1f%% (prefill %.1f%%, "
      "decode %.1f%%)\n",
      errors.size(), 100 * cal.held_out_median_abs_error, 100 * Median(prefill_err),
      100 * Median(decode_err));

  cal.date = NowIso8601();
  cal.source = f.backend + " backend on " + props.host + " (" + props.name + ", " +
               std::to_string(props.threads) + " threads), " + f.dtype + ", per-op times of " +
               spec.name + " (" + std::to_string(layers) + " layers) at " +
               std::to_string(fit_shapes.size()) + " shapes; peaks from clusterbench micro";
  const std::string dir = f.out_dir.empty() ? sim::CalibrationDir() : f.out_dir;
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  const std::string path = sim::CalibrationPath(dir, entry->id);
  if (Status s = sim::SaveCalibration(path, cal); !s.ok()) return Fail(s);
  std::fprintf(stderr, "calibration written to %s; --backend sim:%s now uses it\n", path.c_str(),
               entry->id.c_str());
  return 0;
}

}  // namespace

CommandFn AddCalibrateCommand(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "calibrate",
      "Fit a catalog device's efficiency curves to per-op times measured on a real backend, "
      "store them with the date and source, and report the error on held-out shapes");
  auto f = std::make_shared<CalibrateFlags>();
  cmd->add_option("--device", f->device,
                  "Catalog device to calibrate (default: the entry matching this machine)");
  cmd->add_option("--backend", f->backend, "Real backend that measures (default cpu)");
  cmd->add_option("--model", f->model, "Model whose ops are timed (default llama-3.2-1b)");
  cmd->add_option("--layers", f->layers, "Decoder layers in the timed stream (default 2)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--dtype", f->dtype, "bf16 or fp32 (default bf16)");
  cmd->add_option("--repetitions", f->repetitions,
                  "Timed repetitions per shape; the best counts (default 5)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--results-dir", f->results_dir, "Results root (ceilings cache)");
  cmd->add_option("--out", f->out_dir,
                  "Directory for the calibration file (default backends/sim/calibration)");
  cmd->add_option("--catalog", f->catalog_dir, "Device catalog directory");
  AddOutputFlags(cmd, {}, "");  // -o/--output FILE: the report (a text report; no --format)
  return [f] { return Calibrate(*f); };
}

}  // namespace cb
