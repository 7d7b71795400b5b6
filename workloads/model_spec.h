#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "harness/core/status.h"

namespace cb {

/// Mixture-of-experts FFN (DeepSeek-V3 / Kimi K2 / Qwen3-MoE style). num_experts == 0: dense.
struct MoeSpec {
  int64_t num_experts = 0;          ///< routed experts (n_routed_experts)
  int64_t experts_per_token = 0;    ///< top-k (num_experts_per_tok)
  int64_t expert_ffn_size = 0;      ///< intermediate size of one routed expert
  int64_t num_shared_experts = 0;   ///< always-on experts, run as one dense SwiGLU MLP
  int64_t shared_ffn_size = 0;      ///< intermediate size of one shared expert (0: expert_ffn_size)
  int64_t first_dense_layers = 0;   ///< leading layers with a dense FFN of ModelSpec::ffn_size
  std::string scoring = "softmax";  ///< router scores: "softmax" or "sigmoid"
  bool norm_topk = true;            ///< renormalise the top-k weights to sum to 1
  double routed_scaling = 1.0;      ///< routed output multiplier (routed_scaling_factor)
  int64_t num_groups = 0;           ///< group-limited routing: experts in n_group groups (0: off)
  int64_t topk_groups = 0;          ///< ... of which the best topk_group groups are eligible
  bool router_bias = false;         ///< score-correction bias added for selection only (DeepSeek)

  bool enabled() const { return num_experts > 0; }
  int64_t SharedFfn() const {
    return num_shared_experts * (shared_ffn_size > 0 ? shared_ffn_size : expert_ffn_size);
  }
};

/// Multi-head latent attention (DeepSeek-V2/V3, Kimi K2). kv_lora_rank == 0: plain attention.
struct MlaSpec {
  int64_t q_lora_rank = 0;  ///< 0: q = h W_q directly; else q = norm(h W_qa) W_qb
  int64_t kv_lora_rank = 0;
  int64_t qk_nope_head_dim = 0;
  int64_t qk_rope_head_dim = 0;
  int64_t v_head_dim = 0;

  bool enabled() const { return kv_lora_rank > 0; }
  int64_t QkHeadDim() const { return qk_nope_head_dim + qk_rope_head_dim; }
  /// Values cached per token per layer: the compressed latent and the shared RoPE key.
  int64_t CacheWidth() const { return kv_lora_rank + qk_rope_head_dim; }
};

/// Shape of a decoder-only transformer (Llama / Qwen / DeepSeek family), dense or MoE, with
/// GQA or MLA attention. Loaded from workloads/models/<name>.json; field names there are the
/// snake_case names below (MoE and MLA fields at the top level too).
struct ModelSpec {
  std::string name;
  std::string family = "llama";  ///< llama, qwen3 (per-head q/k RMSNorm), qwen3_moe, deepseek_v3
  std::string source;            ///< where the shape comes from (config.json of ...)
  int64_t hidden_size = 0;
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;  ///< defaults to hidden_size / num_heads
  int64_t ffn_size = 0;  ///< dense FFN width (MoE models: the leading dense layers')
  int64_t vocab_size = 0;
  int64_t max_context = 0;
  double rope_theta = 10000.0;
  double norm_eps = 1e-5;
  bool tie_embeddings = false;
  bool qk_norm = false;         ///< per-head RMSNorm of q and k before RoPE (Qwen3)
  double published_params = 0;  ///< parameter count the model's authors publish, 0 if unknown
  double published_active_params = 0;  ///< published active (per-token) count, 0 if unknown
  MoeSpec moe;
  MlaSpec mla;
  int64_t mtp_layers = 0;  ///< multi-token-prediction modules (num_nextn_predict_layers)
  /// The model's public API list price, USD per million input (cache-miss) and output tokens;
  /// 0 where none is known. The source says whose price and when.
  double api_usd_per_mtok_input = 0, api_usd_per_mtok_output = 0;
  std::string api_price_source;
  /// Expert-load skew of the workload (not a JSON field of the model: set from --routing /
  /// the suite's `routing`): router bias -routing_zipf_s * ln(e + 1) added to expert e's
  /// router logit in every backend. 0 = the synthetic weights' near-uniform routing.
  double routing_zipf_s = 0;

  bool IsMoeLayer(int64_t layer) const { return moe.enabled() && layer >= moe.first_dense_layers; }
  /// Parameters of attention (with its norm) in one layer.
  int64_t AttentionParams() const;
  /// Parameters of decoder layer `layer` (all ranks together).
  int64_t LayerParams(int64_t layer) const;
  /// Parameters of decoder layer `layer` one token reads: top-k routed experts only.
  int64_t LayerActiveParams(int64_t layer) const;
  /// Mean parameters per decoder layer (all layers of a dense model are the same).
  int64_t LayerParams() const;
  /// All parameters, counting a tied embedding once (DeepSeek's MTP layer is not modelled).
  int64_t TotalParams() const;
  /// Parameters a token touches: every parameter except the routed experts it is not sent
  /// to (TotalParams minus (num_experts - top-k) experts per MoE layer); embedding and LM head
  /// tables count whole, as Qwen's "A22B" and Kimi's 32.6B do.
  int64_t ActiveParams() const;
  /// Bytes of KV cache per token for all layers at `bytes_per_element` (MLA: the latent and
  /// the RoPE key only).
  int64_t KvBytesPerToken(int64_t bytes_per_element) const;
};

/// Checks shapes; `origin` (a file path or "preset NAME") goes into the message with the field.
Status ValidateModelSpec(const ModelSpec& spec, const std::string& origin);

/// Parses a model JSON text. Errors name `origin`, the field and, for syntax, line and column.
Status ParseModelSpec(const std::string& json_text, const std::string& origin, ModelSpec* out);

/// Resolves a preset name (workloads/models/NAME.json) or a path to a JSON file.
Status LoadModelSpec(const std::string& name_or_path, ModelSpec* out);

/// Names of the presets shipped in workloads/models, sorted.
std::vector<std::string> ListModelPresets();

/// Directory holding the data files (models, suites, schema): $CLUSTERBENCH_DATA_DIR if set,
/// else the source tree the binary was built from.
std::string DataDir();

}  // namespace cb
