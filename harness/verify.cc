#include "harness/verify.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "backends/registry.h"
#include "workloads/quant.h"

namespace cb {
namespace {

constexpr uint64_t kVerifySalt = 0x7665726966ULL;

/// Routes of a MoE model's steps: [step][layer] -> kRoute rows (see StepIO::record_routes).
struct RouteLog {
  std::vector<std::vector<std::vector<float>>> steps, logits;
  int64_t decisions = 0, mismatches = 0, beyond_margin = 0;
  double logit_error = 0;
};

/// Runs the teacher-forced steps; appends each step's logits [sequences, vocab]. With `record`
/// the routes of a MoE model are logged; with `replay` the (reference) session uses them.
Status RunTeacherForced(const WorkloadSpec& w, const VerifyShape& shape, const OpStream& stream,
                        Session& session, std::vector<std::vector<float>>* logits,
                        RouteLog* record = nullptr, RouteLog* replay = nullptr) {
  const int64_t vocab = stream.dims.vocab_full;
  const OpRange all{0, stream.ops.size()};
  for (int64_t step = 0; step <= shape.decode_steps; ++step) {
    StepIO io;
    io.want_logits = true;
    const int64_t past = step == 0 ? 0 : shape.prefill_len + step - 1;
    const int64_t n = step == 0 ? shape.prefill_len : 1;
    for (int64_t s = 0; s < shape.sequences; ++s) {
      io.seqs.push_back({s, past, n});
      for (int64_t p = past; p < past + n; ++p) {
        io.tokens.push_back(SyntheticToken(w.seed ^ kVerifySalt, s, p, vocab));
      }
    }
    io.record_routes = record != nullptr;
    if (replay != nullptr && static_cast<size_t>(step) < replay->steps.size()) {
      io.replay_routes = &replay->steps[step];
      io.replay_logits = &replay->logits[step];
    }
    CB_RETURN_IF_ERROR(session.Run(stream, all, io));
    CB_RETURN_IF_ERROR(session.Synchronize());
    if (record != nullptr) {
      record->steps.push_back(std::move(io.routes));
      record->logits.push_back(std::move(io.route_logits));
    }
    if (replay != nullptr) {
      replay->decisions += io.route_decisions;
      replay->mismatches += io.route_mismatches;
      replay->beyond_margin += io.route_beyond_margin;
      replay->logit_error = std::max(replay->logit_error, io.route_logit_error);
    }
    if (io.logits.size() != static_cast<size_t>(shape.sequences * vocab)) {
      return Status::Internal("backend returned " + std::to_string(io.logits.size()) +
                              " logits, expected " + std::to_string(shape.sequences * vocab));
    }
    logits->push_back(std::move(io.logits));
  }
  return Status::Ok();
}

}  // namespace

/// Reference (on `stream`, unsharded) against the backend (on `backend_stream`, or `stream`).
static Status Compare(const WorkloadSpec& w, const OpStream& stream, const OpStream* backend_stream,
                      Session& session, const WeightSource& weights, Verification* out,
                      bool weight_only, AccuracyRecord* accuracy);

/// Quantised runs compare with the reference quantised the same way. Weight-only: the same
/// codes and bf16 inputs on both sides, only fp32 accumulation order differs (1e-2), except in
/// MLA models, whose absorbed form keeps bf16 intermediates (the queries in latent space, the
/// attended latent) that the reference's naive form holds in double, as in a bf16 run. With
/// quantised activations, the last-ulp differences of the ops before a matmul (fp32 against
/// double) now and then move an activation code by one step (1/127 of the token's largest
/// value), and later layers carry it: tiny dense models differ by up to 3.2e-2 (100 seeds),
/// while op by op the kernels agree to 1e-4 (tests/conformance/quant_conformance_test.cc,
/// MoE and MLA streams included). MLA models quantise four more, narrow, inputs per layer
/// (q_a, q_b, kv_a, o on 32..64 columns in the tiny model), so a flip weighs more: over 1,000
/// conformance runs of tiny-moe-mla in int8 the median error is 2.5e-7 (no flip), but a run
/// with a flip reaches 5e-2 in the logits and 8e-2 in the router's (p99 6.6e-2, largest seen
/// 1.08e-1), hence 1.5e-1 there; a wrong kernel, scale or expert gives errors of order 1.
/// An 8-bit KV cache (--kv-dtype int8 / fp8): both sides quantise K and V per (token, KV head)
/// the same way, but from values that differ by the compute's rounding, so a value near a
/// rounding boundary takes the neighbouring code on one side (1/127 of the head's largest
/// value in int8, 1/16 to 1/8 of the value in e4m3). Where K and V differ by last-ulp amounts
/// (fp32, fp8 weight-only) that is rare: up to 9.4e-3 and 2.0e-2 over 500 conformance runs of
/// each of 4 tiny models; at least 5e-2. Where they differ at bf16 level (bf16) or by
/// activation codes (int8 W8A8) it is common: bf16 with an fp8 cache up to 7.1e-2 (p99 5.7e-2,
/// 1,600 runs), int8 with int8 or fp8 caches up to 5.9e-2; at least 1e-1
/// (tests/conformance/model_conformance_test.cc).
double VerifyTolerance(DType dtype, bool weight_only, bool mla, std::optional<DType> kv_dtype) {
  double tol = 5e-2;
  if (dtype == DType::kF32) tol = 2e-3;
  if (IsQuantized(dtype) && weight_only && !mla) tol = 1e-2;
  if (IsQuantized(dtype) && !weight_only && mla) tol = 1.5e-1;
  if (kv_dtype && IsQuantized(*kv_dtype)) {
    const bool coarse = dtype == DType::kBF16 || (IsQuantized(dtype) && !weight_only);
    tol = std::max(tol, coarse ? 1e-1 : 5e-2);
  }
  return tol;
}

double RouteLogitTolerance(DType dtype, bool weight_only, double tolerance) {
  return IsQuantized(dtype) && weight_only ? std::max(tolerance, 2.5e-2) : tolerance;
}

std::string PrecisionLabel(DType dtype, bool weight_only) {
  if (!IsQuantized(dtype)) return "";
  return std::string(DTypeName(dtype)) + (weight_only ? " (weight-only)" : " (W8A8)");
}

AccuracyRecord AccuracyOf(const std::vector<std::vector<float>>& baseline,
                          const std::vector<std::vector<float>>& run, int64_t vocab) {
  AccuracyRecord a;
  double kl_sum = 0;
  auto log_softmax = [vocab](const float* l, std::vector<double>* out) {
    const double mx = *std::max_element(l, l + vocab);
    double sum = 0;
    for (int64_t v = 0; v < vocab; ++v) sum += std::exp(l[v] - mx);
    const double lse = mx + std::log(sum);
    out->resize(vocab);
    for (int64_t v = 0; v < vocab; ++v) (*out)[v] = l[v] - lse;
  };
  std::vector<double> lp, lq;
  int64_t agree = 0;
  for (size_t step = 0; step < baseline.size() && step < run.size(); ++step) {
    const int64_t rows = static_cast<int64_t>(baseline[step].size()) / vocab;
    for (int64_t r = 0; r < rows; ++r) {
      const float* p = baseline[step].data() + r * vocab;
      const float* q = run[step].data() + r * vocab;
      log_softmax(p, &lp);
      log_softmax(q, &lq);
      double kl = 0;
      for (int64_t v = 0; v < vocab; ++v) kl += std::exp(lp[v]) * (lp[v] - lq[v]);
      kl_sum += std::max(kl, 0.0);
      agree += std::max_element(p, p + vocab) - p == std::max_element(q, q + vocab) - q;
      ++a.positions;
    }
  }
  if (a.positions > 0) {
    a.top1_agreement = static_cast<double>(agree) / a.positions;
    a.mean_kl_divergence = kl_sum / a.positions;
  }
  return a;
}

VerifyShape VerifyShapeFor(const WorkloadSpec& w) {
  VerifyShape v;
  v.sequences = std::min<int64_t>(w.batch, 2);
  const int64_t len =
      w.verify_len > 0 ? w.verify_len : std::min<int64_t>(w.prompt_len + w.gen_len, 8);
  v.prefill_len = std::clamp<int64_t>(len - 3, 1, w.prompt_len);
  v.decode_steps = std::max<int64_t>(len - v.prefill_len, 0);
  return v;
}

Status VerifyAgainstReference(const WorkloadSpec& w, const OpStream& stream, Session& session,
                              const WeightSource& weights, Communicator* group, Verification* out,
                              bool weight_only, AccuracyRecord* accuracy) {
  if (group != nullptr && group->size() > 1) {
    std::vector<std::vector<float>> actual;
    const VerifyShape shape = VerifyShapeFor(w);
    if (group->rank() != 0) {
      CB_RETURN_IF_ERROR(RunTeacherForced(w, shape, stream, session, &actual));
    } else {
      OpStream whole;
      CB_RETURN_IF_ERROR(BuildDenseDecoderStream(w.model, ShardSpec{}, stream.layers, &whole));
      CB_RETURN_IF_ERROR(Compare(w, whole, &stream, session, weights, out, weight_only, accuracy));
    }
    // Rank 0's verdict for the whole group.
    struct Wire {
      double abs, rel, tol, agree, route_logit_error;
      int64_t seqs, positions, route_decisions, route_flips;
      int passed, nan;
      char message[400];
    } wire{};
    if (group->rank() == 0) {
      wire = {out->max_abs_error,      out->max_rel_error,     out->tolerance,
              out->argmax_agreement,   out->route_logit_error, out->sequences,
              out->positions,          out->route_decisions,   out->route_flips,
              out->status == "passed", out->nan_found,         {}};
      std::snprintf(wire.message, sizeof wire.message, "%s", out->message.c_str());
    }
    CB_RETURN_IF_ERROR(group->Broadcast(&wire, sizeof wire, 0));
    *out = Verification{};
    out->status = wire.passed ? "passed" : "failed";
    out->message = wire.message;
    out->max_abs_error = wire.abs;
    out->max_rel_error = wire.rel;
    out->tolerance = wire.tol;
    out->argmax_agreement = wire.agree;
    out->sequences = wire.seqs;
    out->positions = wire.positions;
    out->nan_found = wire.nan;
    out->route_decisions = wire.route_decisions;
    out->route_flips = wire.route_flips;
    out->route_logit_error = wire.route_logit_error;
    return Status::Ok();
  }
  if (stream.shard.ep_size > 1) {  // the reference runs every expert
    OpStream whole;
    CB_RETURN_IF_ERROR(BuildDenseDecoderStream(w.model, ShardSpec{}, stream.layers, &whole));
    return Compare(w, whole, &stream, session, weights, out, weight_only, accuracy);
  }
  return Compare(w, stream, nullptr, session, weights, out, weight_only, accuracy);
}

/// The teacher-forced logits of the reference backend in `dtype` (replaying `routes` if given).
static Status RunReference(const WorkloadSpec& w, const VerifyShape& shape, const OpStream& stream,
                           const WeightSource& weights, DType dtype, std::optional<DType> kv_dtype,
                           bool weight_only, RouteLog* routes,
                           std::vector<std::vector<float>>* logits) {
  std::unique_ptr<Device> ref_device;
  CB_RETURN_IF_ERROR(OpenDevice("reference", &ref_device));
  SessionConfig cfg;
  cfg.dtype = dtype;
  cfg.kv_dtype = kv_dtype;
  cfg.weight_only = weight_only;
  cfg.max_sequences = shape.sequences;
  cfg.max_context = shape.prefill_len + shape.decode_steps;
  cfg.max_step_tokens = shape.sequences * shape.prefill_len;
  std::unique_ptr<Session> ref;
  CB_RETURN_IF_ERROR(ref_device->Open(cfg, &ref));
  CB_RETURN_IF_ERROR(ref->Load(stream, weights));
  return RunTeacherForced(w, shape, stream, *ref, logits, nullptr, routes);
}

static Status Compare(const WorkloadSpec& w, const OpStream& stream, const OpStream* backend_stream,
                      Session& session, const WeightSource& weights, Verification* out,
                      bool weight_only, AccuracyRecord* accuracy) {
  const VerifyShape shape = VerifyShapeFor(w);
  *out = Verification{};
  out->sequences = shape.sequences;
  out->positions = shape.decode_steps + 1;
  out->tolerance = VerifyTolerance(w.dtype, weight_only, stream.dims.Mla(), w.KvDType());

  // The backend first: under tensor parallelism its steps are collective, and the other ranks
  // of the group must not wait while this one runs the reference.
  std::vector<std::vector<float>> expected, actual;
  // MoE: the reference replays the backend's expert choices (a near-tie flipped by rounding
  // would otherwise differ by O(1)) and judges each choice it would have made differently by
  // the router's margin: only a near-tie within the dtype's rounding may differ.
  const bool moe = stream.model.moe.enabled();
  RouteLog routes;
  CB_RETURN_IF_ERROR(RunTeacherForced(w, shape, backend_stream ? *backend_stream : stream, session,
                                      &actual, moe ? &routes : nullptr));
  CB_RETURN_IF_ERROR(RunReference(w, shape, stream, weights, w.dtype, w.kv_dtype, weight_only,
                                  moe ? &routes : nullptr, &expected));
  if (accuracy != nullptr && (IsQuantized(w.dtype) || IsQuantized(w.KvDType()))) {
    // The unquantised model (weights, activations and KV cache), routing on its own.
    std::vector<std::vector<float>> baseline;
    CB_RETURN_IF_ERROR(RunReference(w, shape, stream, weights, HighPrecisionOf(w.dtype),
                                    std::nullopt, false, nullptr, &baseline));
    *accuracy = AccuracyOf(baseline, actual, stream.dims.vocab_full);
    accuracy->baseline_dtype = std::string(DTypeName(HighPrecisionOf(w.dtype)));
  }

  const int64_t vocab = stream.dims.vocab_full;
  double max_ref = 0, max_abs = 0;
  int64_t agree = 0, compared = 0;
  for (size_t step = 0; step < expected.size(); ++step) {
    for (int64_t s = 0; s < shape.sequences; ++s) {
      const float* e = expected[step].data() + s * vocab;
      const float* a = actual[step].data() + s * vocab;
      int64_t arg_e = 0, arg_a = 0;
      for (int64_t v = 0; v < vocab; ++v) {
        if (!std::isfinite(a[v])) out->nan_found = true;
        max_ref = std::max(max_ref, std::fabs(static_cast<double>(e[v])));
        max_abs = std::max(max_abs, std::fabs(static_cast<double>(a[v]) - e[v]));
        if (e[v] > e[arg_e]) arg_e = v;
        if (a[v] > a[arg_a]) arg_a = v;
      }
      agree += arg_e == arg_a;
      ++compared;
    }
  }
  out->max_abs_error = max_abs;
  out->max_rel_error = max_ref > 0 ? max_abs / max_ref : max_abs;
  out->argmax_agreement = compared ? static_cast<double>(agree) / compared : 0;
  // The backend's router: its gate logits within the dtype's tolerance of the reference's, and
  // every decision that differs explained by that deviation (a near-tie, FlipWithinMargin).
  const double route_tol = RouteLogitTolerance(w.dtype, weight_only, out->tolerance);
  const bool logits_ok = routes.logit_error <= route_tol;
  const bool routed_ok = logits_ok && routes.beyond_margin == 0;
  const bool passed = !out->nan_found && out->max_rel_error <= out->tolerance && routed_ok;
  out->status = passed ? "passed" : "failed";
  out->route_decisions = routes.decisions;
  out->route_flips = routes.mismatches;
  out->route_logit_error = routes.logit_error;
  if (out->nan_found) {
    out->message = "backend logits contain NaN or infinity";
  } else if (!logits_ok) {
    out->message = "the backend's router logits differ from the reference's by " +
                   std::to_string(routes.logit_error) + " of the largest, above the " +
                   std::string(DTypeName(w.dtype)) + " tolerance " + std::to_string(route_tol);
  } else if (!routed_ok) {
    out->message = "the backend's router chose other experts than the reference in " +
                   std::to_string(routes.mismatches) + " of " + std::to_string(routes.decisions) +
                   " decisions, " + std::to_string(routes.beyond_margin) +
                   " of them where the reference's scores are no near-tie its logits' deviation "
                   "could flip";
  } else if (!passed) {
    out->message = "max relative logit error " + std::to_string(out->max_rel_error) +
                   " exceeds the " + std::string(DTypeName(w.dtype)) + " tolerance " +
                   std::to_string(out->tolerance);
  }
  return Status::Ok();
}

}  // namespace cb
