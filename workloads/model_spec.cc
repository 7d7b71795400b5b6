#include "workloads/model_spec.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "workloads/json_fields.h"

namespace cb {
namespace fs = std::filesystem;

int64_t ModelSpec::LayerParams() const {
  const int64_t hd = head_dim > 0 ? head_dim : hidden_size / num_heads;
  const int64_t attn =
      hidden_size * (num_heads + 2 * num_kv_heads) * hd + num_heads * hd * hidden_size;
  const int64_t mlp = 3 * hidden_size * ffn_size;
  const int64_t norms = 2 * hidden_size + (qk_norm ? 2 * hd : 0);
  return attn + mlp + norms;
}

int64_t ModelSpec::TotalParams() const {
  const int64_t embed = vocab_size * hidden_size;
  return embed * (tie_embeddings ? 1 : 2) + num_layers * LayerParams() + hidden_size;
}

int64_t ModelSpec::KvBytesPerToken(int64_t bytes_per_element) const {
  const int64_t hd = head_dim > 0 ? head_dim : hidden_size / num_heads;
  return 2 * num_layers * num_kv_heads * hd * bytes_per_element;
}

Status ValidateModelSpec(const ModelSpec& m, const std::string& origin) {
  auto bad = [&](const char* field, const std::string& what) {
    return Status::InvalidInput(origin + ": field '" + field + "': " + what);
  };
  auto positive = [&](const char* field, int64_t v) {
    return v > 0 ? Status::Ok()
                 : bad(field, "must be a positive integer, got " + std::to_string(v));
  };
  if (m.name.empty()) return bad("name", "must not be empty");
  if (m.family != "llama" && m.family != "qwen3") {
    return bad("family", "unknown family '" + m.family + "'; allowed values: llama, qwen3");
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
  return Status::Ok();
}

Status ParseModelSpec(const std::string& text, const std::string& origin, ModelSpec* out) {
  nlohmann::json doc;
  CB_RETURN_IF_ERROR(ParseJsonText(text, origin, &doc));
  if (!doc.is_object()) return Status::InvalidInput(origin + ": expected a JSON object");
  FieldReader f(doc, origin);
  CB_RETURN_IF_ERROR(
      f.OnlyKnown({"name", "family", "source", "hidden_size", "num_layers", "num_heads",
                   "num_kv_heads", "head_dim", "ffn_size", "vocab_size", "max_context",
                   "rope_theta", "norm_eps", "tie_embeddings", "qk_norm", "published_params"}));
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
  std::ifstream in(path);
  if (!in) return Status::InvalidInput(path + ": cannot read model file");
  std::stringstream buf;
  buf << in.rdbuf();
  return ParseModelSpec(buf.str(), path, out);
}

}  // namespace cb
