// Mixture of experts in the cpu session: the router (gate matmul, then RouteTokens) and the
// routed experts (dispatch, ExpertKernels' gate/up and down with the combine).
#include <algorithm>
#include <cstring>
#include <string>

#include "backends/cpu/cpu_session.h"
#include "workloads/moe_routing.h"
#include "workloads/quant.h"

namespace cb::cpu {

Status CpuSession::PlanMoe(const OpStream& s, const WeightSource& weights) {
  if (dims_.experts == 0) return Status::Ok();
  for (size_t i = 0; i < s.ops.size(); ++i) {
    const Op& op = s.ops[i];
    if (op.kind == OpKind::kRouter) {
      auto m = std::make_unique<PackedMatrix>();
      // The router is never quantised: bf16 values in an int8 or fp8 session, as the reference
      // holds them, in the dtype of its input (fp32 in int8 sessions, where rounding the
      // input to bf16 would move the route weights and with them the next layer's int8 codes).
      CB_RETURN_IF_ERROR(
          PackWeights({s.FindWeight(op.weights[0])}, weights, BufDType(op.in), m.get()));
      if (IsQuantized(cfg_.dtype)) RoundValuesToBf16(m.get());
      CB_RETURN_IF_ERROR(matmul_.CheckLayout(*m));
      Progress(m->data.size());
      plans_[i].matrix = m.get();
      matrices_.push_back(std::move(m));
      if (op.weights.size() > 1) {
        const WeightDesc& d = *s.FindWeight(op.weights[1]);
        std::vector<float> v(static_cast<size_t>(d.Elements()));
        weights.FillRows(d, 0, d.rows, v.data());
        for (float& x : v) x = RoundTo(HighPrecisionOf(cfg_.dtype), x);
        plans_[i].gain[0] = dense_f32_.emplace(d.name, std::move(v)).first->second.data();
      }
    } else if (op.kind == OpKind::kMoeExperts) {
      const WeightDesc& gu = *s.FindWeight(op.weights[0]);
      const WeightDesc& dn = *s.FindWeight(op.weights[1]);
      const ExpertShape shape{dims_.local_experts, dims_.hidden, dims_.expert_ffn};
      if (gu.rows != shape.experts * 2 * shape.ffn || gu.cols != shape.hidden ||
          dn.rows != shape.experts * shape.hidden || dn.cols != shape.ffn) {
        return Status::InvalidInput(std::string(OpKindName(op.kind)) + " of layer " +
                                    std::to_string(op.layer) +
                                    ": expert weights do not match the dimensions");
      }
      std::unique_ptr<ExpertKernels> k;
      CB_RETURN_IF_ERROR(MakeExpertKernels(cfg_.dtype, shape, gu, dn, weights, &matmul_, &k));
      Progress(static_cast<uint64_t>(gu.Elements() + dn.Elements()) * DTypeBytes(cfg_.dtype));
      plans_[i].experts = k.get();
      experts_.push_back(std::move(k));
    }
  }
  CB_RETURN_IF_ERROR(router_logits_.Allocate(
      static_cast<size_t>(cfg_.max_step_tokens * dims_.experts) * sizeof(float), "router logits"));
  // A token meets each of its top-k experts once; this rank holds local_experts of them.
  return EnsureMoePairs(cfg_.max_step_tokens * std::min(dims_.top_k, dims_.local_experts));
}

Status CpuSession::EnsureMoePairs(int64_t pairs) {
  if (pairs <= moe_pairs_) return Status::Ok();
  moe_pairs_ = pairs;
  const ExpertShape shape{dims_.local_experts, dims_.hidden, dims_.expert_ffn};
  return moe_act_.Allocate(static_cast<size_t>(std::max<int64_t>(pairs, 1) * shape.FfnPad()) *
                               DTypeBytes(MatmulInputDType(cfg_.dtype)),
                           "expert SwiGLU rows");
}

Status CpuSession::RunRouter(const Op& op, const OpPlan& plan, StepIO& io) {
  const ActBuffer& in = B(op.in);
  float* route = B(op.out).f32();
  float* logits = router_logits_.as<float>();
  CB_RETURN_IF_ERROR(
      matmul_.Run(*plan.matrix, in.mem.data(), in.dtype, op.k, tokens_, logits, op.n));
  RouteTokens(moe_, zipf_s_, logits, tokens_, plan.gain[0], route);
  CountExpertLoad(route, tokens_, dims_.top_k, dims_.experts, op.layer, layers_, &io.expert_load);
  if (io.record_routes) {
    if (static_cast<int>(io.routes.size()) < layers_) io.routes.resize(layers_);
    io.routes[op.layer].assign(route, route + tokens_ * 2 * dims_.top_k);
    if (static_cast<int>(io.route_logits.size()) < layers_) io.route_logits.resize(layers_);
    io.route_logits[op.layer].assign(logits, logits + tokens_ * dims_.experts);
  }
  return Status::Ok();
}

Status CpuSession::RunMoeExperts(const Op& op, const OpPlan& plan) {
  const ActBuffer& in = B(op.in);
  float* out = B(op.out).f32();
  dispatch_.Build(B(Buf::kRoute).f32(), tokens_, dims_.top_k, dims_.expert_begin,
                  dims_.local_experts);
  const ExpertRows rows{dispatch_.offset.data(), dispatch_.token.data(), dispatch_.weight.data(),
                        dims_.local_experts};
  CB_RETURN_IF_ERROR(EnsureMoePairs(rows.pairs()));
  std::memset(out, 0, static_cast<size_t>(tokens_ * dims_.hidden) * sizeof(float));
  CB_RETURN_IF_ERROR(plan.experts->GateUp(in.mem.data(), dims_.hidden, rows, moe_act_.data()));
  return plan.experts->DownCombine(moe_act_.data(), rows, out, dims_.hidden);
}

}  // namespace cb::cpu
