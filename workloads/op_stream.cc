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
  CB_RETURN_IF_ERROR(CheckDivides(m.num_heads, "num_heads", shard));
  CB_RETURN_IF_ERROR(CheckDivides(m.num_kv_heads, "num_kv_heads", shard));
  CB_RETURN_IF_ERROR(CheckDivides(m.ffn_size, "ffn_size", shard));
  CB_RETURN_IF_ERROR(CheckDivides(m.vocab_size, "vocab_size", shard));

  *out = OpStream{};
  out->model = m;
  out->shard = shard;
  out->layers = layers;
  const int64_t hd = m.head_dim > 0 ? m.head_dim : m.hidden_size / m.num_heads;
  LocalDims& d = out->dims;
  d.hidden = m.hidden_size;
  d.heads = m.num_heads / shard.tp_size;
  d.kv_heads = m.num_kv_heads / shard.tp_size;
  d.head_dim = hd;
  d.ffn = m.ffn_size / shard.tp_size;
  d.vocab = m.vocab_size / shard.tp_size;
  d.vocab_full = m.vocab_size;
  const int64_t q_width = m.num_heads * hd;
  const int64_t kv_width = m.num_kv_heads * hd;
  const bool tp = shard.tp_size > 1;

  StreamBuilder b(shard, out);
  b.Replicated("embed", m.vocab_size, m.hidden_size, WeightInit::kUniform, 1.0f);
  b.Add({OpKind::kEmbedding, -1, Buf::kTokens, Buf::kX, {"embed"}, m.hidden_size, 0});

  for (int l = 0; l < layers; ++l) {
    const std::string attn_norm = LayerName(l, "attn_norm"), wq = LayerName(l, "wq"),
                      wk = LayerName(l, "wk"), wv = LayerName(l, "wv"), wo = LayerName(l, "wo"),
                      mlp_norm = LayerName(l, "mlp_norm"), w_gate = LayerName(l, "w_gate"),
                      w_up = LayerName(l, "w_up"), w_down = LayerName(l, "w_down");
    b.Replicated(attn_norm, 1, m.hidden_size, WeightInit::kNearOne, 0.1f);
    b.RowSharded(wq, q_width, m.hidden_size, FanInScale(m.hidden_size));
    b.RowSharded(wk, kv_width, m.hidden_size, FanInScale(m.hidden_size));
    b.RowSharded(wv, kv_width, m.hidden_size, FanInScale(m.hidden_size));
    b.ColSharded(wo, m.hidden_size, q_width, FanInScale(q_width));
    b.Replicated(mlp_norm, 1, m.hidden_size, WeightInit::kNearOne, 0.1f);
    b.RowSharded(w_gate, m.ffn_size, m.hidden_size, FanInScale(m.hidden_size));
    b.RowSharded(w_up, m.ffn_size, m.hidden_size, FanInScale(m.hidden_size));
    b.ColSharded(w_down, m.hidden_size, m.ffn_size, FanInScale(m.ffn_size));

    b.Add({OpKind::kRmsNorm, l, Buf::kX, Buf::kH, {attn_norm}, m.hidden_size, 0});
    b.Add({OpKind::kMatMul, l, Buf::kH, Buf::kQkv, {wq, wk, wv}, d.QkvWidth(), m.hidden_size});
    if (m.qk_norm) {
      const std::string q_norm = LayerName(l, "q_norm"), k_norm = LayerName(l, "k_norm");
      b.Replicated(q_norm, 1, hd, WeightInit::kNearOne, 0.1f);
      b.Replicated(k_norm, 1, hd, WeightInit::kNearOne, 0.1f);
      b.Add({OpKind::kQkNorm, l, Buf::kQkv, Buf::kQkv, {q_norm, k_norm}, hd, 0});
    }
    b.Add({OpKind::kRope, l, Buf::kQkv, Buf::kQkv, {}, hd, 0});
    b.Add({OpKind::kAttention, l, Buf::kQkv, Buf::kAttn, {}, d.heads * hd, 0});
    b.Add({OpKind::kMatMul, l, Buf::kAttn, Buf::kProj, {wo}, m.hidden_size, d.heads * hd});
    if (tp) b.Add({OpKind::kAllReduce, l, Buf::kProj, Buf::kProj, {}, m.hidden_size, 0});
    b.Add({OpKind::kResidualAdd, l, Buf::kProj, Buf::kX, {}, m.hidden_size, 0});
    b.Add({OpKind::kRmsNorm, l, Buf::kX, Buf::kH, {mlp_norm}, m.hidden_size, 0});
    b.Add({OpKind::kMatMul, l, Buf::kH, Buf::kGateUp, {w_gate, w_up}, 2 * d.ffn, m.hidden_size});
    b.Add({OpKind::kSwiGlu, l, Buf::kGateUp, Buf::kAct, {}, d.ffn, 0});
    b.Add({OpKind::kMatMul, l, Buf::kAct, Buf::kProj, {w_down}, m.hidden_size, d.ffn});
    if (tp) b.Add({OpKind::kAllReduce, l, Buf::kProj, Buf::kProj, {}, m.hidden_size, 0});
    b.Add({OpKind::kResidualAdd, l, Buf::kProj, Buf::kX, {}, m.hidden_size, 0});
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

}  // namespace cb
