#include "harness/op_breakdown.h"

#include <algorithm>
#include <map>

#include "harness/offline_work.h"
#include "workloads/op_cost.h"

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

/// Per op label: its time, and the work an ideal implementation does (workloads/op_cost).
struct Timed {
  double seconds = 0;
  OpCost work;
};

/// One step run op by op: adds each op's time and work x its layer's weight to `by_label`.
Status TimedOps(Session& session, Clock& clock, const OpStream& stream, const WorkloadSpec& w,
                StepIO& io, std::map<std::string, Timed>* by_label) {
  const StepSummary step = SummarizeStep(io);  // before the run: the step's own positions
  for (size_t i = 0; i < stream.ops.size(); ++i) {
    const Op& op = stream.ops[i];
    CB_RETURN_IF_ERROR(session.Synchronize());
    const double t0 = clock.NowSeconds();
    CB_RETURN_IF_ERROR(session.Run(stream, {i, i + 1}, io));
    CB_RETURN_IF_ERROR(session.Synchronize());
    const double weight =
        op.layer >= 0 && stream.plan.Partial() ? stream.plan.Scale(op.layer) : 1.0;
    Timed& t = (*by_label)[OpLabel(op)];
    t.seconds += (clock.NowSeconds() - t0) * weight;
    const OpCost c = CostOfOp(stream, op, step, w.dtype, w.KvDType());
    t.work.flops += c.flops * weight;
    t.work.bytes += c.bytes * weight;
  }
  return Status::Ok();
}

std::vector<OpShare> Shares(const std::map<std::string, Timed>& by_label, double steps) {
  double total = 0;
  for (const auto& [label, t] : by_label) total += t.seconds;
  std::vector<OpShare> shares;
  for (const auto& [label, t] : by_label) {
    shares.push_back({label, t.seconds / steps, total > 0 ? t.seconds / total : 0.0,
                      t.work.flops / steps, t.work.bytes / steps});
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
      "a layer's ops weighted by the model layers it stands for; each op's FLOPs and bytes are "
      "the ideal work the run's MFU and MBU count (workloads/op_cost)";
  StepIO io = PrefillIO(w, vocab, first_seq, sequences);
  std::map<std::string, Timed> prefill, decode;
  CB_RETURN_IF_ERROR(TimedOps(session, clock, stream, w, io, &prefill));
  const int steps = static_cast<int>(std::min<int64_t>(w.gen_len, kOpBreakdownDecodeSteps));
  for (int s = 0; s < steps; ++s) {
    AdvanceToDecode(io);
    CB_RETURN_IF_ERROR(TimedOps(session, clock, stream, w, io, &decode));
  }
  b.decode_steps = steps;
  b.prefill = Shares(prefill, 1.0);
  if (steps > 0) b.decode = Shares(decode, steps);
  *out = std::move(b);
  return Status::Ok();
}

}  // namespace cb
