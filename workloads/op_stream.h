#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "workloads/layer_plan.h"
#include "workloads/model_spec.h"

namespace cb {

/// How a model is split across ranks. Tensor parallel: Megatron column-parallel QKV and
/// gate/up, row-parallel O and down, vocab-parallel LM head.
struct ShardSpec {
  int tp_size = 1;
  int tp_rank = 0;
  /// Expert parallelism (tp_size 1): this rank holds experts [ep_rank, ep_rank + 1) x E / ep
  /// and runs attention for its own sequences; moe_experts sends each (token, expert) row to
  /// the expert's rank and the result back (alltoallv over SessionConfig::ep_comm).
  int ep_size = 1;
  int ep_rank = 0;
};

/// Activation buffers the ops read and write. Rows are either every token of the step
/// (kTokenRows) or one row per sequence (kSequenceRows); see BufferRows().
enum class Buf {
  kNone,
  kTokens,  ///< int32 [T] input token ids
  kX,       ///< fp32 [T, hidden] residual stream
  kH,       ///< [T, hidden] normalised activations
  kQkv,     ///< [T, (heads + 2 * kv_heads) * head_dim] local heads: Q | K | V
  kAttn,    ///< [T, heads * head_dim] attention output
  kProj,    ///< fp32 [T, hidden] output projection (partial sum under TP)
  kGateUp,  ///< [T, 2 * ffn_local]: gate | up
  kAct,     ///< [T, ffn_local] silu(gate) * up
  kXLast,   ///< fp32 [S, hidden] last position of each sequence
  kHLast,   ///< [S, hidden] normalised last positions
  kLogits,  ///< fp32 [S, vocab_local] (vocab after kAllGather)
  // Mixture of experts.
  kRoute,         ///< fp32 [T, 2 * top_k]: chosen expert ids (ascending, exact floats), weights
  kSharedGateUp,  ///< [T, 2 * shared_ffn_local]: shared experts' gate | up
  kSharedAct,     ///< [T, shared_ffn_local] silu(gate) * up of the shared experts
  // Multi-head latent attention.
  kQa,          ///< fp32 [T, q_lora] low-rank query
  kQaNorm,      ///< [T, q_lora] normalised low-rank query
  kQ,           ///< fp32 [T, heads * (qk_nope + qk_rope)] local query heads
  kKva,         ///< fp32 [T, kv_lora + qk_rope]: latent (normalised in place) | RoPE key
  kNextTokens,  ///< int32 [S] greedy samples (keep last: backends size their tables by it)
};
std::string_view BufName(Buf b);

enum class OpKind {
  kEmbedding,     ///< in kTokens, out kX; weight "embed" [vocab, hidden] (not sharded)
  kRmsNorm,       ///< out = in / rms(in) * w over rows of width n; weight [1, n]
  kMatMul,        ///< out[M, n] = in[M, k] x W^T; weights concatenated along n, each [rows, k]
  kQkNorm,        ///< in place on kQkv: per-head RMSNorm of Q and K with weights [1, head_dim]
  kRope,          ///< in place on kQkv: rotary embedding of Q and K (half-split, Llama style)
  kAttention,     ///< in kQkv, out kAttn; appends K, V of the step to the layer's KV cache,
                  ///< then causal GQA attention of each new token over the sequence so far
  kSwiGlu,        ///< in kGateUp, out kAct = silu(gate) * up
  kResidualAdd,   ///< out += in (out is kX)
  kAllReduce,     ///< sum of `in` over the TP group, in place
  kSelectLast,    ///< in kX, out kXLast: the last new row of each sequence
  kAllGather,     ///< in kLogits: vocab shards of the TP group concatenated, in place
  kSampleGreedy,  ///< in kLogits, out kNextTokens: argmax (lowest index on ties)
  // Mixture of experts (see docs/moe-and-mla.md for the exact function).
  kRouter,  ///< in kH, out kRoute; weights {gate [experts, hidden], optional bias [1, experts]}:
            ///< logits (+ the workload's skew bias), softmax or sigmoid scores, selection
            ///< by score (+ bias) within the best groups, top-k, normalisation, scaling
  kMoeExperts,  ///< in kH (+ kRoute), out kProj: dispatch the rows of each local expert,
                ///< grouped SwiGLU expert matmuls, combine weighted in token order; weights
                ///< {gate_up [local_experts * 2 * expert_ffn, hidden],
                ///<  down [local_experts * hidden, expert_ffn]}. Experts of other ranks add 0.
  // Multi-head latent attention.
  kMlaKvNorm,     ///< in place on kKva: RMSNorm of the first n (kv_lora) columns, weight [1, n]
  kMlaRope,       ///< in place on kQ and kKva: RoPE of each head's rope part and of the key
  kMlaAttention,  ///< in kQ (+ kKva), out kAttn; weights {kv_b [heads * (nope + v), kv_lora]}:
                  ///< appends kKva rows to the layer's latent cache, then causal attention of
                  ///< each new token over the compressed cache (K, V up-projected by kv_b)
};
std::string_view OpKindName(OpKind k);

enum class Rows { kTokenRows, kSequenceRows };
Rows BufferRows(Buf b);

struct Op {
  OpKind kind;
  int layer = -1;  ///< decoder layer, -1 for the ops before and after the layers
  Buf in = Buf::kNone;
  Buf out = Buf::kNone;
  std::vector<std::string> weights;  ///< names into OpStream::weights
  int64_t n = 0;                     ///< output width (matmul) or row width (norms)
  int64_t k = 0;                     ///< input width (matmul)
};

/// An op for messages: its kind, and its layer where it has one ("matmul of layer 3").
std::string OpName(const Op& op);

enum class WeightInit {
  kUniform,  ///< U(-scale, scale)
  kNearOne,  ///< 1 + U(-scale, scale), for norm gains
};

/// One weight tensor of this rank's shard, row-major [rows, cols] (PyTorch Linear layout:
/// [out_features, in_features]). Element (r, c) takes the generator's value at global index
/// (row_offset + r) * global_cols + (col_offset + c), so every split sees the same values.
struct WeightDesc {
  std::string name;  ///< unique within the stream, used by ops
  std::string key;   ///< generator tensor name (differs from name for a tied LM head)
  int64_t rows = 0, cols = 0;
  int64_t global_rows = 0, global_cols = 0;
  int64_t row_offset = 0, col_offset = 0;
  WeightInit init = WeightInit::kUniform;
  float scale = 1.0f;
  int64_t Elements() const { return rows * cols; }
};

/// Per-rank sizes the kernels need.
struct LocalDims {
  int64_t hidden = 0;
  int64_t heads = 0;     ///< query heads on this rank
  int64_t kv_heads = 0;  ///< KV heads on this rank
  int64_t head_dim = 0;
  int64_t ffn = 0;    ///< FFN width on this rank
  int64_t vocab = 0;  ///< LM-head rows on this rank
  int64_t vocab_full = 0;
  // Mixture of experts (0 for a dense model).
  int64_t experts = 0;        ///< routed experts of the model
  int64_t local_experts = 0;  ///< experts this rank holds: [expert_begin, + local_experts)
  int64_t expert_begin = 0;
  int64_t top_k = 0;
  int64_t expert_ffn = 0;  ///< one expert's intermediate width (experts are not split)
  int64_t shared_ffn = 0;  ///< shared experts' intermediate width on this rank
  // Multi-head latent attention (kv_lora == 0: GQA). head_dim is then v_head_dim.
  int64_t q_lora = 0, kv_lora = 0, qk_nope = 0, qk_rope = 0;
  bool Mla() const { return kv_lora > 0; }
  int64_t QkHeadDim() const { return qk_nope + qk_rope; }
  int64_t QkvWidth() const { return Mla() ? 0 : (heads + 2 * kv_heads) * head_dim; }
};

/// Row width (elements) of buffer `b` for a rank with dimensions `d`.
int64_t BufferWidth(const LocalDims& d, Buf b);

/// The op sequence of one forward step (prefill and decode run the same stream; the StepIO
/// says how many new tokens each sequence brings). Written once, executed by every backend.
struct OpStream {
  ModelSpec model;
  ShardSpec shard;
  LocalDims dims;
  int layers = 0;  ///< decoder layers in the stream (may be fewer than model.num_layers)
  /// Which model layers the stream's layers are (Op::layer indexes the stream's layers) and
  /// how many of the model's layers each stands for.
  LayerPlan plan;
  std::vector<WeightDesc> weights;
  std::vector<Op> ops;

  const WeightDesc* FindWeight(std::string_view name) const;
  /// Index range [begin, end) of ops belonging to `layer` (-1: none).
  std::pair<size_t, size_t> LayerRange(int layer) const;
};

/// Builds the stream for `layers` decoder layers of a model on one shard (PlanLayers picks
/// them: every kind of layer the model has; 0 or num_layers: all): dense or MoE FFNs, GQA or
/// MLA attention, as the ModelSpec says (the name is historical). Fails with kInvalidInput
/// when tp does not divide heads, KV heads, FFN widths, experts or vocab.
/// Under tensor parallelism a MoE layer's routed experts are split by expert across the TP
/// ranks (each rank computes its experts for all tokens; the allreduce combines them).
Status BuildDenseDecoderStream(const ModelSpec& model, const ShardSpec& shard, int layers,
                               OpStream* out);

/// The router's skew bias of expert `e` (added to its logit): -s * ln(e + 1), 0 for s == 0.
float RoutingSkewBias(double zipf_s, int64_t expert);

}  // namespace cb
