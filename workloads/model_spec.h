#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "harness/core/status.h"

namespace cb {

/// Shape of a dense decoder-only transformer (Llama / Qwen family). Loaded from
/// workloads/models/<name>.json; field names there are the snake_case names below.
struct ModelSpec {
  std::string name;
  std::string family = "llama";  ///< "llama" or "qwen3" (qwen3 adds per-head q/k RMSNorm)
  std::string source;            ///< where the shape comes from (config.json of ...)
  int64_t hidden_size = 0;
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;  ///< defaults to hidden_size / num_heads
  int64_t ffn_size = 0;
  int64_t vocab_size = 0;
  int64_t max_context = 0;
  double rope_theta = 10000.0;
  double norm_eps = 1e-5;
  bool tie_embeddings = false;
  bool qk_norm = false;         ///< per-head RMSNorm of q and k before RoPE (Qwen3)
  double published_params = 0;  ///< parameter count the model's authors publish, 0 if unknown

  /// Parameters of one decoder layer (all ranks together).
  int64_t LayerParams() const;
  /// All parameters, counting a tied embedding once.
  int64_t TotalParams() const;
  /// Bytes of K and V cache per token for all layers at `bytes_per_element`.
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
