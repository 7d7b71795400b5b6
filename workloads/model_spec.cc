#include "workloads/model_spec.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "harness/core/limits.h"
#include "harness/core/text_file.h"
#include "workloads/json_fields.h"

namespace cb {
namespace fs = std::filesystem;

int64_t ModelSpec::AttentionParams() const {
  const int64_t h = hidden_size;
  if (mla.enabled()) {
    const int64_t qk = num_heads * mla.QkHeadDim();
    const int64_t q =
        mla.q_lora_rank > 0 ? h * mla.q_lora_rank + mla.q_lora_rank + mla.q_lora_rank * qk : h * qk;
    const int64_t kv = h * mla.CacheWidth() + mla.kv_lora_rank +
                       mla.kv_lora_rank * num_heads * (mla.qk_nope_head_dim + mla.v_head_dim);
    const int64_t o = num_heads * mla.v_head_dim * h;
    return q + kv + o + h;  // + the attention norm
  }
  const int64_t hd = head_dim > 0 ? head_dim : h / num_heads;
  return h * (num_heads + 2 * num_kv_heads) * hd + num_heads * hd * h + h + (qk_norm ? 2 * hd : 0);
}

namespace {

int64_t SwiGluParams(int64_t hidden, int64_t ffn) { return 3 * hidden * ffn; }

}  // namespace

int64_t ModelSpec::LayerParams(int64_t layer) const {
  int64_t ffn = 0;
  if (IsMoeLayer(layer)) {
    ffn = moe.num_experts * SwiGluParams(hidden_size, moe.expert_ffn_size) +
          SwiGluParams(hidden_size, moe.SharedFfn()) + moe.num_experts * hidden_size +
          (moe.router_bias ? moe.num_experts : 0);
  } else {
    ffn = SwiGluParams(hidden_size, ffn_size);
  }
  return AttentionParams() + ffn + hidden_size;  // + the FFN norm
}

int64_t ModelSpec::LayerActiveParams(int64_t layer) const {
  if (!IsMoeLayer(layer)) return LayerParams(layer);
  return LayerParams(layer) -
         (moe.num_experts - moe.experts_per_token) * SwiGluParams(hidden_size, moe.expert_ffn_size);
}

int64_t ModelSpec::LayerParams() const {
  if (num_layers <= 0) return 0;
  int64_t sum = 0;
  for (int64_t l = 0; l < num_layers; ++l) sum += LayerParams(l);
  return sum / num_layers;
}

int64_t ModelSpec::TotalParams() const {
  const int64_t embed = vocab_size * hidden_size;
  int64_t layers = 0;
  for (int64_t l = 0; l < num_layers; ++l) layers += LayerParams(l);
  return embed * (tie_embeddings ? 1 : 2) + layers + hidden_size;
}

int64_t ModelSpec::ActiveParams() const {
  int64_t inactive = 0;
  for (int64_t l = 0; l < num_layers; ++l) inactive += LayerParams(l) - LayerActiveParams(l);
  return TotalParams() - inactive;
}

int64_t ModelSpec::KvBytesPerToken(int64_t bytes_per_element) const {
  if (mla.enabled()) return num_layers * mla.CacheWidth() * bytes_per_element;
  const int64_t hd = head_dim > 0 ? head_dim : hidden_size / num_heads;
  return 2 * num_layers * num_kv_heads * hd * bytes_per_element;
}

namespace {

/// Every shape field within its documented bound (harness/core/limits.h), then the whole
/// model's parameter count, so that every product the code forms fits.
Status CheckBounds(const ModelSpec& m, const std::string& origin) {
  struct Bound {
    const char* field;
    int64_t value, max;
  };
  const Bound bounds[] = {
      {"hidden_size", m.hidden_size, limits::kMaxHidden},
      {"num_layers", m.num_layers, limits::kMaxLayers},
      {"num_heads", m.num_heads, limits::kMaxHeads},
      {"num_kv_heads", m.num_kv_heads, limits::kMaxHeads},
      {"head_dim", m.head_dim, limits::kMaxHeadDim},
      {"ffn_size", m.ffn_size, limits::kMaxFfn},
      {"vocab_size", m.vocab_size, limits::kMaxVocab},
      {"max_context", m.max_context, limits::kMaxContext},
      {"num_experts", m.moe.num_experts, limits::kMaxExperts},
      {"experts_per_token", m.moe.experts_per_token, limits::kMaxExperts},
      {"expert_ffn_size", m.moe.expert_ffn_size, limits::kMaxFfn},
      {"num_shared_experts", m.moe.num_shared_experts, limits::kMaxExperts},
      {"shared_ffn_size", m.moe.shared_ffn_size, limits::kMaxFfn},
      {"first_dense_layers", m.moe.first_dense_layers, limits::kMaxLayers},
      {"n_group", m.moe.num_groups, limits::kMaxExperts},
      {"topk_group", m.moe.topk_groups, limits::kMaxExperts},
      {"q_lora_rank", m.mla.q_lora_rank, limits::kMaxLoraRank},
      {"kv_lora_rank", m.mla.kv_lora_rank, limits::kMaxLoraRank},
      {"qk_nope_head_dim", m.mla.qk_nope_head_dim, limits::kMaxHeadDim},
      {"qk_rope_head_dim", m.mla.qk_rope_head_dim, limits::kMaxHeadDim},
      {"v_head_dim", m.mla.v_head_dim, limits::kMaxHeadDim},
  };
  for (const Bound& b : bounds) {
    if (b.value > b.max) {
      return Status::InvalidInput(origin + ": field '" + b.field + "': " + std::to_string(b.value) +
                                  " is above the bound " + std::to_string(b.max) +
                                  " (docs/workloads.md, Limits)");
    }
  }
  // Parameters in double (exact far beyond any real model): the bound keeps int64 counts safe.
  const double h = static_cast<double>(m.hidden_size);
  const double per_layer =
      4.0 * h * h +
      4.0 * h * static_cast<double>(m.num_heads + m.num_kv_heads) *
          static_cast<double>(std::max(m.head_dim, m.mla.QkHeadDim() + m.mla.v_head_dim)) +
      3.0 * h * static_cast<double>(m.ffn_size) +
      3.0 * h * static_cast<double>(m.moe.expert_ffn_size) *
          static_cast<double>(m.moe.num_experts) +
      3.0 * h * static_cast<double>(m.moe.SharedFfn()) +
      h * static_cast<double>(m.mla.q_lora_rank + m.mla.kv_lora_rank) *
          static_cast<double>(m.num_heads);
  const double params =
      per_layer * static_cast<double>(m.num_layers) + 2.0 * h * static_cast<double>(m.vocab_size);
  if (params > limits::kMaxParams) {
    return Status::InvalidInput(origin + ": field 'hidden_size': the model would have about " +
                                std::to_string(params) + " parameters, above the bound 1e16");
  }
  return Status::Ok();
}

Status ValidateMoeMla(const ModelSpec& m, const std::string& origin) {
  auto bad = [&](const char* field, const std::string& what) {
    return Status::InvalidInput(origin + ": field '" + field + "': " + what);
  };
  auto non_negative = [&](const char* field, int64_t v) {
    return v >= 0 ? Status::Ok() : bad(field, "must not be negative, got " + std::to_string(v));
  };
  const MoeSpec& e = m.moe;
  CB_RETURN_IF_ERROR(non_negative("num_experts", e.num_experts));
  CB_RETURN_IF_ERROR(non_negative("num_shared_experts", e.num_shared_experts));
  CB_RETURN_IF_ERROR(non_negative("shared_ffn_size", e.shared_ffn_size));
  CB_RETURN_IF_ERROR(non_negative("first_dense_layers", e.first_dense_layers));
  CB_RETURN_IF_ERROR(non_negative("n_group", e.num_groups));
  CB_RETURN_IF_ERROR(non_negative("topk_group", e.topk_groups));
  if (e.enabled()) {
    if (e.experts_per_token < 1 || e.experts_per_token > e.num_experts) {
      return bad("experts_per_token", "must be between 1 and num_experts (" +
                                          std::to_string(e.num_experts) + "), got " +
                                          std::to_string(e.experts_per_token));
    }
    if (e.expert_ffn_size <= 0) {
      return bad("expert_ffn_size", "must be a positive integer for a MoE model, got " +
                                        std::to_string(e.expert_ffn_size));
    }
    if (e.first_dense_layers > m.num_layers) {
      return bad("first_dense_layers",
                 "must not exceed num_layers (" + std::to_string(m.num_layers) + ")");
    }
    if (e.scoring != "softmax" && e.scoring != "sigmoid") {
      return bad("router_scoring",
                 "unknown scoring '" + e.scoring + "'; allowed values: softmax, sigmoid");
    }
    if (!(e.routed_scaling > 0)) return bad("routed_scaling_factor", "must be positive");
    if (e.num_groups > 0) {
      if (e.num_experts % e.num_groups != 0) {
        return bad("n_group", std::to_string(e.num_groups) + " groups do not divide " +
                                  std::to_string(e.num_experts) + " experts");
      }
      if (e.topk_groups < 1 || e.topk_groups > e.num_groups) {
        return bad("topk_group", "must be between 1 and n_group (" + std::to_string(e.num_groups) +
                                     "), got " + std::to_string(e.topk_groups));
      }
      if (e.topk_groups * (e.num_experts / e.num_groups) < e.experts_per_token) {
        return bad("topk_group", "the eligible groups hold fewer experts than experts_per_token");
      }
    } else if (e.topk_groups != 0) {
      return bad("topk_group", "needs n_group");
    }
  } else if (e.experts_per_token != 0 || e.expert_ffn_size != 0 || e.num_shared_experts != 0 ||
             e.first_dense_layers != 0) {
    return bad("num_experts", "MoE fields are set but num_experts is 0");
  }
  const MlaSpec& a = m.mla;
  CB_RETURN_IF_ERROR(non_negative("q_lora_rank", a.q_lora_rank));
  CB_RETURN_IF_ERROR(non_negative("kv_lora_rank", a.kv_lora_rank));
  if (a.enabled()) {
    if (a.qk_nope_head_dim <= 0) return bad("qk_nope_head_dim", "must be positive for MLA");
    if (a.qk_rope_head_dim <= 0 || a.qk_rope_head_dim % 2 != 0) {
      return bad("qk_rope_head_dim",
                 "must be positive and even for MLA, got " + std::to_string(a.qk_rope_head_dim));
    }
    if (a.v_head_dim <= 0) return bad("v_head_dim", "must be positive for MLA");
    if (m.qk_norm) return bad("qk_norm", "is not defined for MLA attention");
  } else if (a.q_lora_rank != 0 || a.qk_nope_head_dim != 0 || a.qk_rope_head_dim != 0 ||
             a.v_head_dim != 0) {
    return bad("kv_lora_rank", "MLA fields are set but kv_lora_rank is 0");
  }
  if (m.published_active_params < 0) return bad("published_active_params", "must not be negative");
  if (m.mtp_layers < 0 || m.mtp_layers > 8) return bad("mtp_layers", "must be between 0 and 8");
  if (m.api_usd_per_mtok_input < 0 || m.api_usd_per_mtok_output < 0) {
    return bad("api_usd_per_mtok_input", "API prices must not be negative");
  }
  if (!(m.routing_zipf_s >= 0)) return bad("routing", "zipf exponent must not be negative");
  return Status::Ok();
}

}  // namespace

Status ValidateModelSpec(const ModelSpec& m, const std::string& origin) {
  auto bad = [&](const char* field, const std::string& what) {
    return Status::InvalidInput(origin + ": field '" + field + "': " + what);
  };
  auto positive = [&](const char* field, int64_t v) {
    return v > 0 ? Status::Ok()
                 : bad(field, "must be a positive integer, got " + std::to_string(v));
  };
  if (m.name.empty()) return bad("name", "must not be empty");
  if (static_cast<int64_t>(m.name.size()) > limits::kMaxNameLength ||
      !std::all_of(m.name.begin(), m.name.end(), [](unsigned char c) {
        return std::isalnum(c) || c == '.' || c == '_' || c == '-' || c == '+';
      })) {
    return bad("name", "'" + m.name.substr(0, 40) + (m.name.size() > 40 ? "..." : "") +
                           "': allowed are up to " + std::to_string(limits::kMaxNameLength) +
                           " characters of A-Z, a-z, 0-9, '.', '_', '-', '+'");
  }
  CB_RETURN_IF_ERROR(CheckBounds(m, origin));
  if (m.family != "llama" && m.family != "qwen3" && m.family != "qwen3_moe" &&
      m.family != "deepseek_v3") {
    return bad("family", "unknown family '" + m.family +
                             "'; allowed values: llama, qwen3, qwen3_moe, deepseek_v3");
  }
  CB_RETURN_IF_ERROR(positive("hidden_size", m.hidden_size));
  CB_RETURN_IF_ERROR(positive("num_layers", m.num_layers));
  CB_RETURN_IF_ERROR(positive("num_heads", m.num_heads));
  CB_RETURN_IF_ERROR(positive("num_kv_heads", m.num_kv_heads));
  CB_RETURN_IF_ERROR(positive("ffn_size", m.ffn_size));
  CB_RETURN_IF_ERROR(positive("vocab_size", m.vocab_size));
  CB_RETURN_IF_ERROR(positive("max_context", m.max_context));
  if (m.head_dim < 0) return bad("head_dim", "must be positive, got " + std::to_string(m.head_dim));
  if (m.head_dim == 0 && m.hidden_size % m.num_heads != 0) {
    return bad("num_heads", std::to_string(m.num_heads) + " heads do not divide hidden_size " +
                                std::to_string(m.hidden_size) +
                                " (give head_dim explicitly if the " +
                                "model's heads are not hidden_size / num_heads wide)");
  }
  if (m.num_heads % m.num_kv_heads != 0) {
    return bad("num_kv_heads", std::to_string(m.num_kv_heads) + " KV heads do not divide " +
                                   std::to_string(m.num_heads) + " query heads");
  }
  const int64_t hd = m.head_dim > 0 ? m.head_dim : m.hidden_size / m.num_heads;
  if (hd % 2 != 0)
    return bad("head_dim", "must be even for rotary embeddings, got " + std::to_string(hd));
  if (!(m.rope_theta > 0)) return bad("rope_theta", "must be positive");
  if (!(m.norm_eps > 0 && m.norm_eps < 1)) return bad("norm_eps", "must be in (0, 1)");
  if (m.published_params < 0) return bad("published_params", "must not be negative");
  return ValidateMoeMla(m, origin);
}

Status ParseModelSpec(const std::string& text, const std::string& origin, ModelSpec* out) {
  nlohmann::json doc;
  CB_RETURN_IF_ERROR(ParseJsonText(text, origin, &doc));
  if (!doc.is_object()) return Status::InvalidInput(origin + ": expected a JSON object");
  FieldReader f(doc, origin);
  CB_RETURN_IF_ERROR(f.OnlyKnown({"name",
                                  "family",
                                  "source",
                                  "hidden_size",
                                  "num_layers",
                                  "num_heads",
                                  "num_kv_heads",
                                  "head_dim",
                                  "ffn_size",
                                  "vocab_size",
                                  "max_context",
                                  "rope_theta",
                                  "norm_eps",
                                  "tie_embeddings",
                                  "qk_norm",
                                  "published_params",
                                  "published_active_params",
                                  "num_experts",
                                  "experts_per_token",
                                  "expert_ffn_size",
                                  "num_shared_experts",
                                  "shared_ffn_size",
                                  "first_dense_layers",
                                  "router_scoring",
                                  "norm_topk_prob",
                                  "routed_scaling_factor",
                                  "n_group",
                                  "topk_group",
                                  "router_bias",
                                  "q_lora_rank",
                                  "kv_lora_rank",
                                  "qk_nope_head_dim",
                                  "qk_rope_head_dim",
                                  "v_head_dim",
                                  "mtp_layers",
                                  "api_usd_per_mtok_input",
                                  "api_usd_per_mtok_output",
                                  "api_price_source"}));
  ModelSpec m;
  CB_RETURN_IF_ERROR(f.String("name", true, &m.name));
  CB_RETURN_IF_ERROR(f.String("family", false, &m.family));
  CB_RETURN_IF_ERROR(f.String("source", false, &m.source));
  CB_RETURN_IF_ERROR(f.Int("hidden_size", true, &m.hidden_size));
  CB_RETURN_IF_ERROR(f.Int("num_layers", true, &m.num_layers));
  CB_RETURN_IF_ERROR(f.Int("num_heads", true, &m.num_heads));
  CB_RETURN_IF_ERROR(f.Int("num_kv_heads", true, &m.num_kv_heads));
  CB_RETURN_IF_ERROR(f.Int("head_dim", false, &m.head_dim));
  CB_RETURN_IF_ERROR(f.Int("ffn_size", true, &m.ffn_size));
  CB_RETURN_IF_ERROR(f.Int("vocab_size", true, &m.vocab_size));
  m.max_context = 8192;
  CB_RETURN_IF_ERROR(f.Int("max_context", false, &m.max_context));
  CB_RETURN_IF_ERROR(f.Double("rope_theta", false, &m.rope_theta));
  CB_RETURN_IF_ERROR(f.Double("norm_eps", false, &m.norm_eps));
  CB_RETURN_IF_ERROR(f.Bool("tie_embeddings", false, &m.tie_embeddings));
  CB_RETURN_IF_ERROR(f.Bool("qk_norm", false, &m.qk_norm));
  CB_RETURN_IF_ERROR(f.Double("published_params", false, &m.published_params));
  CB_RETURN_IF_ERROR(f.Double("published_active_params", false, &m.published_active_params));
  CB_RETURN_IF_ERROR(f.Int("mtp_layers", false, &m.mtp_layers));
  CB_RETURN_IF_ERROR(f.Double("api_usd_per_mtok_input", false, &m.api_usd_per_mtok_input));
  CB_RETURN_IF_ERROR(f.Double("api_usd_per_mtok_output", false, &m.api_usd_per_mtok_output));
  CB_RETURN_IF_ERROR(f.String("api_price_source", false, &m.api_price_source));
  CB_RETURN_IF_ERROR(f.Int("num_experts", false, &m.moe.num_experts));
  CB_RETURN_IF_ERROR(f.Int("experts_per_token", false, &m.moe.experts_per_token));
  CB_RETURN_IF_ERROR(f.Int("expert_ffn_size", false, &m.moe.expert_ffn_size));
  CB_RETURN_IF_ERROR(f.Int("num_shared_experts", false, &m.moe.num_shared_experts));
  CB_RETURN_IF_ERROR(f.Int("shared_ffn_size", false, &m.moe.shared_ffn_size));
  CB_RETURN_IF_ERROR(f.Int("first_dense_layers", false, &m.moe.first_dense_layers));
  CB_RETURN_IF_ERROR(f.String("router_scoring", false, &m.moe.scoring));
  CB_RETURN_IF_ERROR(f.Bool("norm_topk_prob", false, &m.moe.norm_topk));
  CB_RETURN_IF_ERROR(f.Double("routed_scaling_factor", false, &m.moe.routed_scaling));
  CB_RETURN_IF_ERROR(f.Int("n_group", false, &m.moe.num_groups));
  CB_RETURN_IF_ERROR(f.Int("topk_group", false, &m.moe.topk_groups));
  CB_RETURN_IF_ERROR(f.Bool("router_bias", false, &m.moe.router_bias));
  CB_RETURN_IF_ERROR(f.Int("q_lora_rank", false, &m.mla.q_lora_rank));
  CB_RETURN_IF_ERROR(f.Int("kv_lora_rank", false, &m.mla.kv_lora_rank));
  CB_RETURN_IF_ERROR(f.Int("qk_nope_head_dim", false, &m.mla.qk_nope_head_dim));
  CB_RETURN_IF_ERROR(f.Int("qk_rope_head_dim", false, &m.mla.qk_rope_head_dim));
  CB_RETURN_IF_ERROR(f.Int("v_head_dim", false, &m.mla.v_head_dim));
  CB_RETURN_IF_ERROR(ValidateModelSpec(m, origin));
  *out = std::move(m);
  return Status::Ok();
}

std::string DataDir() {
  if (const char* env = std::getenv("CLUSTERBENCH_DATA_DIR"); env && *env) return env;
  return CLUSTERBENCH_SOURCE_DIR;
}

static std::string PresetDir() { return DataDir() + "/workloads/models"; }

std::vector<std::string> ListModelPresets() {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(PresetDir(), ec)) {
    if (entry.path().extension() == ".json") names.push_back(entry.path().stem().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

Status LoadModelSpec(const std::string& name_or_path, ModelSpec* out) {
  std::string path = name_or_path;
  const bool looks_like_path =
      name_or_path.find('/') != std::string::npos || name_or_path.ends_with(".json");
  if (!looks_like_path) {
    path = PresetDir() + "/" + name_or_path + ".json";
    if (!fs::exists(path)) {
      std::string list;
      for (const auto& n : ListModelPresets()) list += (list.empty() ? "" : ", ") + n;
      return Status::InvalidInput("unknown model '" + name_or_path + "'; presets: " + list +
                                  " (or give a path to a model JSON file)");
    }
  }
  std::string text;
  CB_RETURN_IF_ERROR(ReadTextFile(path, &text));
  return ParseModelSpec(text, path, out);
}

}  // namespace cb
