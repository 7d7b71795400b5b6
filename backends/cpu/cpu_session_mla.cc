// Multi-head latent attention in the cpu session: the latent norm's gain, kv_b split per head
// for the absorbed form, the compressed cache and its rotary table, and the attention op.
#include <algorithm>
#include <string>

#include "backends/cpu/cpu_session.h"
#include "workloads/quant.h"

namespace cb::cpu {

Status CpuSession::PlanMla(const OpStream& s, const WeightSource& weights) {
  if (!dims_.Mla()) return Status::Ok();
  const MlaShape shape{dims_.heads, dims_.qk_nope, dims_.qk_rope, dims_.head_dim, dims_.kv_lora};
  // MLA's absorbed matmuls run in the dtype of their inputs (fp32 in an int8 session, so
  // that no bf16 rounding moves the attention output's int8 codes away from the reference's).
  const DType mla_dtype = MatmulInputDType(cfg_.dtype);
  for (size_t i = 0; i < s.ops.size(); ++i) {
    const Op& op = s.ops[i];
    if (op.kind == OpKind::kMlaKvNorm) {
      const WeightDesc& d = *s.FindWeight(op.weights[0]);
      std::vector<float> g(static_cast<size_t>(d.Elements()));
      weights.FillRows(d, 0, d.rows, g.data());
      for (float& v : g) v = RoundTo(HighPrecisionOf(cfg_.dtype), v);
      plans_[i].gain[0] = gains_.emplace(d.name, std::move(g)).first->second.data();
    } else if (op.kind == OpKind::kMlaAttention) {
      auto w = std::make_unique<MlaWeights>();
      CB_RETURN_IF_ERROR(PackMlaWeights(*s.FindWeight(op.weights[0]), shape, mla_dtype,
                                        IsQuantized(cfg_.dtype), weights, w.get()));
      Progress(w->AllocatedBytes());
      plans_[i].mla = w.get();
      mla_weights_.push_back(std::move(w));
    }
  }
  CB_RETURN_IF_ERROR(latent_.Allocate(std::max(layers_, 1), cfg_.max_sequences, cfg_.max_context,
                                      dims_.kv_lora + dims_.qk_rope, HighPrecisionOf(cfg_.dtype)));
  CB_RETURN_IF_ERROR(MakeRopeTable(cfg_.max_context, dims_.qk_rope, s.model.rope_theta, &mla_rope_,
                                   "the MLA rotary table"));
  return mla_scratch_.Allocate(cfg_.max_step_tokens, shape, cfg_.max_context, mla_dtype);
}

Status CpuSession::RunMlaAttention(const Op& op, const OpPlan& plan, const StepIO& io) {
  for (const SeqStep& s : io.seqs) {
    const int64_t valid = latent_.Valid(op.layer, s.slot);
    if (valid < s.past_len) {
      return Status::InvalidInput(
          "slot " + std::to_string(s.slot) + " holds " + std::to_string(valid) +
          " cached positions, the step says past_len " + std::to_string(s.past_len));
    }
  }
  const MlaShape shape{dims_.heads, dims_.qk_nope, dims_.qk_rope, dims_.head_dim, dims_.kv_lora};
  CB_RETURN_IF_ERROR(MlaAttention(B(op.in).f32(), B(Buf::kKva).f32(), tokens_, row_pos_.data(),
                                  shape, *plan.mla, matmul_, latent_, op.layer, B(op.out).view(),
                                  mla_scratch_));
  for (const SeqStep& s : io.seqs) latent_.Valid(op.layer, s.slot) = s.past_len + s.new_tokens;
  return Status::Ok();
}

}  // namespace cb::cpu
