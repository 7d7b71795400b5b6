#include "workloads/op_stream.h"

#include <cmath>

namespace cb {

std::string_view BufName(Buf b) {
  switch (b) {
    case Buf::kNone:
      return "none";
    case Buf::kTokens:
      return "tokens";
    case Buf::kX:
      return "x";
    case Buf::kH:
      return "h";
    case Buf::kQkv:
      return "qkv";
    case Buf::kAttn:
      return "attn";
    case Buf::kProj:
      return "proj";
    case Buf::kGateUp:
      return "gate_up";
    case Buf::kAct:
      return "act";
    case Buf::kXLast:
      return "x_last";
    case Buf::kHLast:
      return "h_last";
    case Buf::kLogits:
      return "logits";
    case Buf::kRoute:
      return "route";
    case Buf::kSharedGateUp:
      return "shared_gate_up";
    case Buf::kSharedAct:
      return "shared_act";
    case Buf::kQa:
      return "q_a";
    case Buf::kQaNorm:
      return "q_a_norm";
    case Buf::kQ:
      return "q";
    case Buf::kKva:
      return "kv_a";
    case Buf::kNextTokens:
      return "next_tokens";
  }
  return "?";
}

std::string_view OpKindName(OpKind k) {
  switch (k) {
    case OpKind::kEmbedding:
      return "embedding";
    case OpKind::kRmsNorm:
      return "rmsnorm";
    case OpKind::kMatMul:
      return "matmul";
    case OpKind::kQkNorm:
      return "qk_norm";
    case OpKind::kRope:
      return "rope";
    case OpKind::kAttention:
      return "attention";
    case OpKind::kSwiGlu:
      return "swiglu";
    case OpKind::kResidualAdd:
      return "residual_add";
    case OpKind::kAllReduce:
      return "allreduce";
    case OpKind::kSelectLast:
      return "select_last";
    case OpKind::kAllGather:
      return "allgather";
    case OpKind::kSampleGreedy:
      return "sample_greedy";
    case OpKind::kRouter:
      return "router";
    case OpKind::kMoeExperts:
      return "moe_experts";
    case OpKind::kMlaKvNorm:
      return "mla_kv_norm";
    case OpKind::kMlaRope:
      return "mla_rope";
    case OpKind::kMlaAttention:
      return "mla_attention";
  }
  return "?";
}

Rows BufferRows(Buf b) {
  switch (b) {
    case Buf::kXLast:
    case Buf::kHLast:
    case Buf::kLogits:
    case Buf::kNextTokens:
      return Rows::kSequenceRows;
    default:
      return Rows::kTokenRows;
  }
}

int64_t BufferWidth(const LocalDims& d, Buf b) {
  switch (b) {
    case Buf::kNone:
      return 0;
    case Buf::kTokens:
    case Buf::kNextTokens:
      return 1;
    case Buf::kX:
    case Buf::kH:
    case Buf::kProj:
    case Buf::kXLast:
    case Buf::kHLast:
      return d.hidden;
    case Buf::kQkv:
      return d.QkvWidth();
    case Buf::kAttn:
      return d.heads * d.head_dim;
    case Buf::kGateUp:
      return 2 * d.ffn;
    case Buf::kAct:
      return d.ffn;
    case Buf::kLogits:
      return d.vocab_full;
    case Buf::kRoute:
      return 2 * d.top_k;
    case Buf::kSharedGateUp:
      return 2 * d.shared_ffn;
    case Buf::kSharedAct:
      return d.shared_ffn;
    case Buf::kQa:
    case Buf::kQaNorm:
      return d.q_lora;
    case Buf::kQ:
      return d.Mla() ? d.heads * d.QkHeadDim() : 0;
    case Buf::kKva:
      return d.Mla() ? d.kv_lora + d.qk_rope : 0;
  }
  return 0;
}

const WeightDesc* OpStream::FindWeight(std::string_view name) const {
  for (const auto& w : weights) {
    if (w.name == name) return &w;
  }
  return nullptr;
}

std::pair<size_t, size_t> OpStream::LayerRange(int layer) const {
  size_t begin = ops.size(), end = ops.size();
  for (size_t i = 0; i < ops.size(); ++i) {
    if (ops[i].layer != layer) continue;
    if (begin == ops.size()) begin = i;
    end = i + 1;
  }
  if (begin == ops.size()) return {0, 0};
  return {begin, end};
}

namespace {

std::string LayerName(int layer, const char* suffix) {
  return "layers." + std::to_string(layer) + "." + suffix;
}

/// A stream layer: its index in the stream (Op::layer) and the model layer it runs (weights).
struct LayerIds {
  int stream = 0, model = 0;
};

/// Kaiming-uniform-like bound: unit-variance inputs give unit-variance outputs.
float FanInScale(int64_t fan_in) { return std::sqrt(3.0f / static_cast<float>(fan_in)); }

class StreamBuilder {
 public:
  StreamBuilder(const ShardSpec& s, OpStream* out) : s_(s), out_(out) {}

  /// A weight split by rows ([rows_local] of [rows_global]) on this rank.
  void RowSharded(const std::string& name, int64_t rows_global, int64_t cols, float scale,
                  const std::string& key = "") {
    const int64_t rows = rows_global / s_.tp_size;
    out_->weights.push_back({name, key, rows, cols, rows_global, cols, rows * s_.tp_rank, 0,
                             WeightInit::kUniform, scale});
  }
  void ColSharded(const std::string& name, int64_t rows, int64_t cols_global, float scale) {
    const int64_t cols = cols_global / s_.tp_size;
    out_->weights.push_back({name, "", rows, cols, rows, cols_global, 0, cols * s_.tp_rank,
                             WeightInit::kUniform, scale});
  }
  void Replicated(const std::string& name, int64_t rows, int64_t cols, WeightInit init,
                  float scale) {
    out_->weights.push_back({name, "", rows, cols, rows, cols, 0, 0, init, scale});
  }
  /// A stacked expert tensor [experts * rows_per_expert, cols]; this rank holds the rows of
  /// its experts [expert_begin, expert_begin + local_experts).
  void ExpertSharded(const std::string& name, const LocalDims& d, int64_t rows_per_expert,
                     int64_t cols, float scale) {
    out_->weights.push_back({name, "", d.local_experts * rows_per_expert, cols,
                             d.experts * rows_per_expert, cols, d.expert_begin * rows_per_expert, 0,
                             WeightInit::kUniform, scale});
  }
  void Add(Op op) { out_->ops.push_back(std::move(op)); }

 private:
  const ShardSpec& s_;
  OpStream* out_;
};

Status CheckDivides(int64_t value, const char* what, const ShardSpec& shard) {
  if (value % shard.tp_size != 0) {
    return Status::InvalidInput("tensor parallel size " + std::to_string(shard.tp_size) +
                                " does not divide " + what + " (" + std::to_string(value) + ")");
  }
  return Status::Ok();
}

}  // namespace

float RoutingSkewBias(double zipf_s, int64_t expert) {
  if (zipf_s == 0) return 0.0f;
  return static_cast<float>(-zipf_s * std::log(static_cast<double>(expert) + 1.0));
}

namespace {

/// GQA attention of layer `l` (Llama / Qwen), from kH to kProj (+ allreduce under TP).
void AddGqaAttention(const ModelSpec& m, const LocalDims& d, const LayerIds& id, bool tp,
                     StreamBuilder& b) {
  const int l = id.stream;
  const int64_t hd = d.head_dim, q_width = m.num_heads * hd, kv_width = m.num_kv_heads * hd;
  const std::string wq = LayerName(id.model, "wq"), wk = LayerName(id.model, "wk"),
                    wv = LayerName(id.model, "wv"), wo = LayerName(id.model, "wo");
  b.RowSharded(wq, q_width, m.hidden_size, FanInScale(m.hidden_size));
  b.RowSharded(wk, kv_width, m.hidden_size, FanInScale(m.hidden_size));
  b.RowSharded(wv, kv_width, m.hidden_size, FanInScale(m.hidden_size));
  b.ColSharded(wo, m.hidden_size, q_width, FanInScale(q_width));
  b.Add({OpKind::kMatMul, l, Buf::kH, Buf::kQkv, {wq, wk, wv}, d.QkvWidth(), m.hidden_size});
  if (m.qk_norm) {
    const std::string q_norm = LayerName(id.model, "q_norm"),
                      k_norm = LayerName(id.model, "k_norm");
    b.Replicated(q_norm, 1, hd, WeightInit::kNearOne, 0.1f);
    b.Replicated(k_norm, 1, hd, WeightInit::kNearOne, 0.1f);
    b.Add({OpKind::kQkNorm, l, Buf::kQkv, Buf::kQkv, {q_norm, k_norm}, hd, 0});
  }
  b.Add({OpKind::kRope, l, Buf::kQkv, Buf::kQkv, {}, hd, 0});
  b.Add({OpKind::kAttention, l, Buf::kQkv, Buf::kAttn, {}, d.heads * hd, 0});
  b.Add({OpKind::kMatMul, l, Buf::kAttn, Buf::kProj, {wo}, m.hidden_size, d.heads * hd});
  if (tp) b.Add({OpKind::kAllReduce, l, Buf::kProj, Buf::kProj, {}, m.hidden_size, 0});
}

/// Multi-head latent attention of layer `l` (DeepSeek-V3 / Kimi K2), from kH to kProj.
/// Projections are head-major: rows of head h are [h * width, (h + 1) * width), so a
/// row split over TP ranks is a split by heads.
void AddMlaAttention(const ModelSpec& m, const LocalDims& d, const LayerIds& id, bool tp,
                     StreamBuilder& b) {
  const int l = id.stream;
  const MlaSpec& a = m.mla;
  const int64_t hidden = m.hidden_size, qk = a.QkHeadDim();
  const std::string wkv_a = LayerName(id.model, "wkv_a"),
                    kv_norm = LayerName(id.model, "kv_a_norm"),
                    wkv_b = LayerName(id.model, "wkv_b"), wo = LayerName(id.model, "wo");
  if (a.q_lora_rank > 0) {
    const std::string wq_a = LayerName(id.model, "wq_a"), q_norm = LayerName(id.model, "q_a_norm"),
                      wq_b = LayerName(id.model, "wq_b");
    b.Replicated(wq_a, a.q_lora_rank, hidden, WeightInit::kUniform, FanInScale(hidden));
    b.Replicated(q_norm, 1, a.q_lora_rank, WeightInit::kNearOne, 0.1f);
    b.RowSharded(wq_b, m.num_heads * qk, a.q_lora_rank, FanInScale(a.q_lora_rank));
    b.Add({OpKind::kMatMul, l, Buf::kH, Buf::kQa, {wq_a}, a.q_lora_rank, hidden});
    b.Add({OpKind::kRmsNorm, l, Buf::kQa, Buf::kQaNorm, {q_norm}, a.q_lora_rank, 0});
    b.Add({OpKind::kMatMul, l, Buf::kQaNorm, Buf::kQ, {wq_b}, d.heads * qk, a.q_lora_rank});
  } else {
    const std::string wq = LayerName(id.model, "wq");
    b.RowSharded(wq, m.num_heads * qk, hidden, FanInScale(hidden));
    b.Add({OpKind::kMatMul, l, Buf::kH, Buf::kQ, {wq}, d.heads * qk, hidden});
  }
  b.Replicated(wkv_a, a.CacheWidth(), hidden, WeightInit::kUniform, FanInScale(hidden));
  b.Replicated(kv_norm, 1, a.kv_lora_rank, WeightInit::kNearOne, 0.1f);
  b.RowSharded(wkv_b, m.num_heads * (a.qk_nope_head_dim + a.v_head_dim), a.kv_lora_rank,
               FanInScale(a.kv_lora_rank));
  b.ColSharded(wo, hidden, m.num_heads * a.v_head_dim, FanInScale(m.num_heads * a.v_head_dim));
  b.Add({OpKind::kMatMul, l, Buf::kH, Buf::kKva, {wkv_a}, a.CacheWidth(), hidden});
  b.Add({OpKind::kMlaKvNorm, l, Buf::kKva, Buf::kKva, {kv_norm}, a.kv_lora_rank, 0});
  b.Add({OpKind::kMlaRope, l, Buf::kQ, Buf::kQ, {}, a.qk_rope_head_dim, 0});
  b.Add({OpKind::kMlaAttention,
         l,
         Buf::kQ,
         Buf::kAttn,
         {wkv_b},
         d.heads * a.v_head_dim,
         a.kv_lora_rank});
  b.Add({OpKind::kMatMul, l, Buf::kAttn, Buf::kProj, {wo}, hidden, d.heads * a.v_head_dim});
  if (tp) b.Add({OpKind::kAllReduce, l, Buf::kProj, Buf::kProj, {}, hidden, 0});
}

/// Dense SwiGLU FFN of layer `l`: kH to kProj (+ allreduce) and the residual add.
void AddDenseFfn(const ModelSpec& m, const LocalDims& d, const LayerIds& id, bool tp,
                 StreamBuilder& b) {
  const int l = id.stream;
  const std::string w_gate = LayerName(id.model, "w_gate"), w_up = LayerName(id.model, "w_up"),
                    w_down = LayerName(id.model, "w_down");
  b.RowSharded(w_gate, m.ffn_size, m.hidden_size, FanInScale(m.hidden_size));
  b.RowSharded(w_up, m.ffn_size, m.hidden_size, FanInScale(m.hidden_size));
  b.ColSharded(w_down, m.hidden_size, m.ffn_size, FanInScale(m.ffn_size));
  b.Add({OpKind::kMatMul, l, Buf::kH, Buf::kGateUp, {w_gate, w_up}, 2 * d.ffn, m.hidden_size});
  b.Add({OpKind::kSwiGlu, l, Buf::kGateUp, Buf::kAct, {}, d.ffn, 0});
  b.Add({OpKind::kMatMul, l, Buf::kAct, Buf::kProj, {w_down}, m.hidden_size, d.ffn});
  if (tp) b.Add({OpKind::kAllReduce, l, Buf::kProj, Buf::kProj, {}, m.hidden_size, 0});
  b.Add({OpKind::kResidualAdd, l, Buf::kProj, Buf::kX, {}, m.hidden_size, 0});
}

/// MoE FFN of layer `l`: shared experts (a dense SwiGLU MLP, TP-split like the dense FFN)
/// added to the residual first (they read the same kH), then router and routed experts.
void AddMoeFfn(const ModelSpec& m, const LocalDims& d, const LayerIds& id, bool tp,
               StreamBuilder& b) {
  const int l = id.stream;
  const MoeSpec& e = m.moe;
  const int64_t hidden = m.hidden_size, f = e.expert_ffn_size;
  if (e.num_shared_experts > 0) {
    const std::string sg = LayerName(id.model, "shared_gate"),
                      su = LayerName(id.model, "shared_up"),
                      sd = LayerName(id.model, "shared_down");
    const int64_t sf = e.SharedFfn();
    b.RowSharded(sg, sf, hidden, FanInScale(hidden));
    b.RowSharded(su, sf, hidden, FanInScale(hidden));
    b.ColSharded(sd, hidden, sf, FanInScale(sf));
    b.Add({OpKind::kMatMul, l, Buf::kH, Buf::kSharedGateUp, {sg, su}, 2 * d.shared_ffn, hidden});
    b.Add({OpKind::kSwiGlu, l, Buf::kSharedGateUp, Buf::kSharedAct, {}, d.shared_ffn, 0});
    b.Add({OpKind::kMatMul, l, Buf::kSharedAct, Buf::kProj, {sd}, hidden, d.shared_ffn});
    if (tp) b.Add({OpKind::kAllReduce, l, Buf::kProj, Buf::kProj, {}, hidden, 0});
    b.Add({OpKind::kResidualAdd, l, Buf::kProj, Buf::kX, {}, hidden, 0});
  }
  const std::string router = LayerName(id.model, "router"),
                    bias = LayerName(id.model, "router_bias"),
                    gate_up = LayerName(id.model, "experts.w_gate_up"),
                    down = LayerName(id.model, "experts.w_down");
  b.Replicated(router, e.num_experts, hidden, WeightInit::kUniform, FanInScale(hidden));
  std::vector<std::string> router_weights = {router};
  if (e.router_bias) {
    // Small: the synthetic routing stays near-uniform; --routing zipf:S is the skew knob.
    b.Replicated(bias, 1, e.num_experts, WeightInit::kUniform, 0.02f);
    router_weights.push_back(bias);
  }
  b.ExpertSharded(gate_up, d, 2 * f, hidden, FanInScale(hidden));
  b.ExpertSharded(down, d, hidden, f, FanInScale(f));
  b.Add({OpKind::kRouter, l, Buf::kH, Buf::kRoute, router_weights, e.num_experts, hidden});
  b.Add({OpKind::kMoeExperts, l, Buf::kH, Buf::kProj, {gate_up, down}, hidden, hidden});
  if (tp) b.Add({OpKind::kAllReduce, l, Buf::kProj, Buf::kProj, {}, hidden, 0});
  b.Add({OpKind::kResidualAdd, l, Buf::kProj, Buf::kX, {}, hidden, 0});
}

}  // namespace

Status BuildDenseDecoderStream(const ModelSpec& m, const ShardSpec& shard, int layers,
                               OpStream* out) {
  if (shard.tp_size < 1 || shard.tp_rank < 0 || shard.tp_rank >= shard.tp_size) {
    return Status::InvalidInput("invalid shard: tp_rank " + std::to_string(shard.tp_rank) +
                                " of tp_size " + std::to_string(shard.tp_size));
  }
  if (layers < 1 || layers > m.num_layers) {
    return Status::InvalidInput("--layers must be between 1 and " + std::to_string(m.num_layers) +
                                " for " + m.name + ", got " + std::to_string(layers));
  }
  LayerPlan plan;
  CB_RETURN_IF_ERROR(PlanLayers(m, layers, &plan));
  CB_RETURN_IF_ERROR(CheckDivides(m.num_heads, "num_heads", shard));
  if (!m.mla.enabled()) CB_RETURN_IF_ERROR(CheckDivides(m.num_kv_heads, "num_kv_heads", shard));
  CB_RETURN_IF_ERROR(CheckDivides(m.ffn_size, "ffn_size", shard));
  CB_RETURN_IF_ERROR(CheckDivides(m.vocab_size, "vocab_size", shard));
  if (shard.ep_size < 1 || shard.ep_rank < 0 || shard.ep_rank >= shard.ep_size) {
    return Status::InvalidInput("invalid shard: ep_rank " + std::to_string(shard.ep_rank) +
                                " of ep_size " + std::to_string(shard.ep_size));
  }
  if (shard.ep_size > 1) {
    if (!m.moe.enabled()) {
      return Status::InvalidInput("--ep " + std::to_string(shard.ep_size) + ": " + m.name +
                                  " has no experts to shard");
    }
    if (shard.tp_size > 1) {
      return Status::InvalidInput("--ep and --tp > 1 together are not supported");
    }
    if (m.moe.num_experts % shard.ep_size != 0) {
      return Status::InvalidInput("expert parallel size " + std::to_string(shard.ep_size) +
                                  " does not divide num_experts (" +
                                  std::to_string(m.moe.num_experts) + ")");
    }
  }
  if (m.moe.enabled()) {
    CB_RETURN_IF_ERROR(CheckDivides(m.moe.num_experts, "num_experts", shard));
    CB_RETURN_IF_ERROR(CheckDivides(m.moe.SharedFfn(), "the shared experts' ffn", shard));
  }

  *out = OpStream{};
  out->model = m;
  out->shard = shard;
  out->layers = plan.size();
  out->plan = plan;
  LocalDims& d = out->dims;
  d.hidden = m.hidden_size;
  d.heads = m.num_heads / shard.tp_size;
  if (m.mla.enabled()) {
    d.kv_heads = 0;
    d.head_dim = m.mla.v_head_dim;
    d.q_lora = m.mla.q_lora_rank;
    d.kv_lora = m.mla.kv_lora_rank;
    d.qk_nope = m.mla.qk_nope_head_dim;
    d.qk_rope = m.mla.qk_rope_head_dim;
  } else {
    d.kv_heads = m.num_kv_heads / shard.tp_size;
    d.head_dim = m.head_dim > 0 ? m.head_dim : m.hidden_size / m.num_heads;
  }
  d.ffn = m.ffn_size / shard.tp_size;
  d.vocab = m.vocab_size / shard.tp_size;
  d.vocab_full = m.vocab_size;
  if (m.moe.enabled()) {
    d.experts = m.moe.num_experts;
    const int expert_split = shard.ep_size > 1 ? shard.ep_size : shard.tp_size;
    const int expert_rank = shard.ep_size > 1 ? shard.ep_rank : shard.tp_rank;
    d.local_experts = m.moe.num_experts / expert_split;
    d.expert_begin = d.local_experts * expert_rank;
    d.top_k = m.moe.experts_per_token;
    d.expert_ffn = m.moe.expert_ffn_size;
    d.shared_ffn = m.moe.SharedFfn() / shard.tp_size;
  }
  const bool tp = shard.tp_size > 1;

  StreamBuilder b(shard, out);
  b.Replicated("embed", m.vocab_size, m.hidden_size, WeightInit::kUniform, 1.0f);
  b.Add({OpKind::kEmbedding, -1, Buf::kTokens, Buf::kX, {"embed"}, m.hidden_size, 0});

  for (int l = 0; l < plan.size(); ++l) {
    const LayerIds id{l, plan.layers[l]};
    const std::string attn_norm = LayerName(id.model, "attn_norm"),
                      mlp_norm = LayerName(id.model, "mlp_norm");
    b.Replicated(attn_norm, 1, m.hidden_size, WeightInit::kNearOne, 0.1f);
    b.Add({OpKind::kRmsNorm, l, Buf::kX, Buf::kH, {attn_norm}, m.hidden_size, 0});
    if (m.mla.enabled()) {
      AddMlaAttention(m, d, id, tp, b);
    } else {
      AddGqaAttention(m, d, id, tp, b);
    }
    b.Add({OpKind::kResidualAdd, l, Buf::kProj, Buf::kX, {}, m.hidden_size, 0});
    b.Replicated(mlp_norm, 1, m.hidden_size, WeightInit::kNearOne, 0.1f);
    b.Add({OpKind::kRmsNorm, l, Buf::kX, Buf::kH, {mlp_norm}, m.hidden_size, 0});
    if (m.IsMoeLayer(id.model)) {
      AddMoeFfn(m, d, id, tp, b);
    } else {
      AddDenseFfn(m, d, id, tp, b);
    }
  }

  b.Replicated("final_norm", 1, m.hidden_size, WeightInit::kNearOne, 0.1f);
  if (m.tie_embeddings) {
    b.RowSharded("lm_head", m.vocab_size, m.hidden_size, 1.0f, "embed");
  } else {
    b.RowSharded("lm_head", m.vocab_size, m.hidden_size, FanInScale(m.hidden_size));
  }
  b.Add({OpKind::kSelectLast, -1, Buf::kX, Buf::kXLast, {}, m.hidden_size, 0});
  b.Add({OpKind::kRmsNorm, -1, Buf::kXLast, Buf::kHLast, {"final_norm"}, m.hidden_size, 0});
  b.Add({OpKind::kMatMul, -1, Buf::kHLast, Buf::kLogits, {"lm_head"}, d.vocab, m.hidden_size});
  if (tp) b.Add({OpKind::kAllGather, -1, Buf::kLogits, Buf::kLogits, {}, m.vocab_size, 0});
  b.Add({OpKind::kSampleGreedy, -1, Buf::kLogits, Buf::kNextTokens, {}, m.vocab_size, 0});
  return Status::Ok();
}

std::string OpName(const Op& op) {
  std::string s(OpKindName(op.kind));
  if (op.layer >= 0) s += " of layer " + std::to_string(op.layer);
  return s;
}

}  // namespace cb
