#include "harness/op_breakdown.h"

#include <algorithm>
#include <map>

#include "harness/offline_work.h"

namespace cb {
namespace {

/// An op's row in the breakdown: its kind, a matmul also its first weight without the layer
/// prefix ("matmul wq", "matmul lm_head").
std::string OpLabel(const Op& op) {
  std::string label(OpKindName(op.kind));
  if (op.kind != OpKind::kMatMul || op.weights.empty()) return label;
  std::string w = op.weights[0];
  if (w.rfind("layers.", 0) == 0) {
    const size_t dot = w.find('.', 7);
    if (dot != std::string::npos) w = w.substr(dot + 1);
  }
  return label + " " + w;
}

/// One step run op by op: adds each op's time x its layer's weight to `by_label`.
Status TimedOps(Session& session, Clock& clock, const OpStream& stream, StepIO& io,
                std::map<std::string, double>* by_label) {
  for (size_t i = 0; i < stream.ops.size(); ++i) {
    const Op& op = stream.ops[i];
    CB_RETURN_IF_ERROR(session.Synchronize());
    const double t0 = clock.NowSeconds();
    CB_RETURN_IF_ERROR(session.Run(stream, {i, i + 1}, io));
    CB_RETURN_IF_ERROR(session.Synchronize());
    const double weight =
        op.layer >= 0 && stream.plan.Partial() ? stream.plan.Scale(op.layer) : 1.0;
    (*by_label)[OpLabel(op)] += (clock.NowSeconds() - t0) * weight;
  }
  return Status::Ok();
}

std::vector<OpShare> Shares(const std::map<std::string, double>& by_label, double steps) {
  double total = 0;
  for (const auto& [label, t] : by_label) total += t;
  std::vector<OpShare> shares;
  for (const auto& [label, t] : by_label) {
    shares.push_back({label, t / steps, total > 0 ? t / total : 0.0});
  }
  std::sort(shares.begin(), shares.end(),
            [](const OpShare& a, const OpShare& b) { return a.seconds > b.seconds; });
  return shares;
}

}  // namespace

Status MeasureOpBreakdown(Session& session, Clock& clock, const OpStream& stream,
                          const WorkloadSpec& w, int64_t vocab, int64_t first_seq,
                          int64_t sequences, OpBreakdownRecord* out) {
  OpBreakdownRecord b;
  b.method =
      "one prefill and up to " + std::to_string(kOpBreakdownDecodeSteps) +
      " decode steps after the measured window, each op timed alone between synchronisations; "
      "a layer's ops weighted by the model layers it stands for";
  StepIO io = PrefillIO(w, vocab, first_seq, sequences);
  std::map<std::string, double> prefill, decode;
  CB_RETURN_IF_ERROR(TimedOps(session, clock, stream, io, &prefill));
  const int steps = static_cast<int>(std::min<int64_t>(w.gen_len, kOpBreakdownDecodeSteps));
  for (int s = 0; s < steps; ++s) {
    AdvanceToDecode(io);
    CB_RETURN_IF_ERROR(TimedOps(session, clock, stream, io, &decode));
  }
  b.decode_steps = steps;
  b.prefill = Shares(prefill, 1.0);
  if (steps > 0) b.decode = Shares(decode, steps);
  *out = std::move(b);
  return Status::Ok();
}

}  // namespace cb
