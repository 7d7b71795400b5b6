#include "workloads/deployment.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "workloads/op_stream.h"

namespace cb {

std::string PoolRoleName(PoolRole r) {
  switch (r) {
    case PoolRole::kMixed:
      return "mixed";
    case PoolRole::kPrefill:
      return "prefill";
    case PoolRole::kDecode:
      return "decode";
  }
  return "?";
}

std::string PoolLayout::Describe() const {
  std::string layout;
  if (tp > 1) layout += "tp" + std::to_string(tp);
  if (ep > 1) layout += (layout.empty() ? "" : "+") + std::string("ep") + std::to_string(ep);
  if (layout.empty()) layout = "dp";
  std::string s = layout + " x " + std::to_string(devices);
  if (role != PoolRole::kMixed) s = PoolRoleName(role) + " " + s;
  return s;
}

bool DeploymentSpec::Given() const {
  return !system.empty() || devices > 0 || tp > 0 || ep > 0 || dp > 0 || !disaggregate.empty() ||
         redundant_experts > 0 || mtp > 0 || overlap;
}

int Deployment::TotalDevices() const {
  int n = 0;
  for (const PoolLayout& p : pools) n += p.devices;
  return n;
}

double Deployment::TokensPerDecodeStep() const {
  double tokens = 1, accepted = 1;
  for (int i = 0; i < mtp; ++i) {
    accepted *= mtp_acceptance;
    tokens += accepted;
  }
  return tokens;
}

std::string Deployment::Describe() const {
  std::string s;
  for (const PoolLayout& p : pools) s += (s.empty() ? "" : " + ") + p.Describe();
  if (redundant_experts > 0) s += ", " + std::to_string(redundant_experts) + " redundant experts";
  if (mtp > 0) {
    std::ostringstream a;
    a << mtp_acceptance;
    s += ", mtp " + std::to_string(mtp) + " (acceptance " + a.str() + ")";
  }
  if (overlap) s += ", two-batch overlap";
  return s;
}

namespace {

/// "ep32" -> 32 for `prefix` "ep"; 0 when `item` is not of that form.
int PrefixedCount(const std::string& item, const char* prefix) {
  const std::string p(prefix);
  if (item.size() <= p.size() || item.compare(0, p.size(), p) != 0) return 0;
  const std::string digits = item.substr(p.size());
  if (digits.size() > 7 || !std::all_of(digits.begin(), digits.end(), ::isdigit)) return 0;
  return std::stoi(digits);
}

Status ParsePool(const std::string& text, const std::string& where, PoolLayout* out) {
  const std::string form =
      "; expected ROLE=DEVICES[:tpN][:epN] with ROLE prefill or decode, e.g. "
      "prefill=32:ep32,decode=320:ep320";
  const size_t eq = text.find('=');
  if (eq == std::string::npos) return Status::InvalidInput(where + ": '" + text + "'" + form);
  const std::string role = text.substr(0, eq);
  if (role == "prefill") {
    out->role = PoolRole::kPrefill;
  } else if (role == "decode") {
    out->role = PoolRole::kDecode;
  } else {
    return Status::InvalidInput(where + ": unknown pool '" + role + "'" + form);
  }
  std::stringstream items(text.substr(eq + 1));
  std::string item;
  bool first = true;
  while (std::getline(items, item, ':')) {
    int n = 0;
    if (first) {
      n = PrefixedCount("n" + item, "n");
      out->devices = n;
    } else if ((n = PrefixedCount(item, "tp")) > 0) {
      out->tp = n;
    } else if ((n = PrefixedCount(item, "ep")) > 0) {
      out->ep = n;
    }
    if (n <= 0) {
      return Status::InvalidInput(where + ": '" + item + "' in '" + text +
                                  "' is not a positive device count, tpN or epN" + form);
    }
    first = false;
  }
  if (out->devices <= 0)
    return Status::InvalidInput(where + ": '" + text + "' has no devices" + form);
  return Status::Ok();
}

}  // namespace

Status ParsePools(const std::string& text, const std::string& where, std::vector<PoolLayout>* out) {
  out->clear();
  std::stringstream ss(text);
  std::string part;
  while (std::getline(ss, part, ',')) {
    PoolLayout p;
    CB_RETURN_IF_ERROR(ParsePool(part, where, &p));
    out->push_back(p);
  }
  if (out->size() != 2 || out->front().role != PoolRole::kPrefill ||
      out->back().role != PoolRole::kDecode) {
    return Status::InvalidInput(where + ": '" + text +
                                "' must name a prefill pool, then a decode pool, e.g. "
                                "prefill=32:ep32,decode=320:ep320");
  }
  return Status::Ok();
}

Status ValidatePool(const ModelSpec& m, const PoolLayout& p, int redundant,
                    const std::string& where) {
  auto bad = [&](const std::string& what) { return Status::InvalidInput(where + ": " + what); };
  const std::string pool =
      p.role == PoolRole::kMixed ? "" : " of the " + PoolRoleName(p.role) + " pool";
  if (p.devices < 1) return bad("the pool" + pool + " needs at least one device");
  if (p.tp < 1 || p.devices % p.tp != 0) {
    return bad("tp " + std::to_string(p.tp) + pool + " does not divide its " +
               std::to_string(p.devices) + " devices");
  }
  for (auto [value, what] : {std::pair<int64_t, const char*>{m.num_heads, "attention heads"},
                             {m.mla.enabled() ? m.num_heads : m.num_kv_heads, "KV heads"},
                             {m.ffn_size, "the dense FFN width"},
                             {m.vocab_size, "the vocabulary"}}) {
    if (value % p.tp != 0) {
      return bad("tp " + std::to_string(p.tp) + pool + " does not divide " + what + " (" +
                 std::to_string(value) + ") of " + m.name);
    }
  }
  if (p.ep < 1) return bad("ep must be at least 1");
  if (p.ep > 1) {
    if (!m.moe.enabled()) {
      return bad("ep " + std::to_string(p.ep) + ": " + m.name +
                 " is a dense model; expert parallelism needs a MoE model (allowed: ep 1)");
    }
    if (p.tp != 1) {
      return bad("ep " + std::to_string(p.ep) + " with tp " + std::to_string(p.tp) + pool +
                 ": expert parallelism runs data-parallel attention (allowed: tp 1)");
    }
    if (p.devices % p.ep != 0) {
      return bad("ep " + std::to_string(p.ep) + pool + " does not divide its " +
                 std::to_string(p.devices) + " devices");
    }
    const int64_t slots = m.moe.num_experts + redundant;
    if (slots % p.ep != 0) {
      return bad("ep " + std::to_string(p.ep) + pool + " does not divide " +
                 std::to_string(m.moe.num_experts) + " experts + " + std::to_string(redundant) +
                 " redundant (give --redundant-experts so that experts + redundant is a "
                 "multiple of ep, e.g. " +
                 std::to_string((slots + p.ep - 1) / p.ep * p.ep - m.moe.num_experts) + ")");
    }
  }
  return Status::Ok();
}

int64_t ExpertSlotsPerRank(const ModelSpec& m, int ep, int redundant) {
  if (!m.moe.enabled()) return 0;
  if (ep <= 1) return m.moe.num_experts;
  return (m.moe.num_experts + redundant) / ep;
}

namespace {

int64_t MoeLayers(const ModelSpec& m) {
  int64_t n = 0;
  for (int64_t l = 0; l < m.num_layers; ++l) n += m.IsMoeLayer(l) ? 1 : 0;
  return n;
}

bool IsExpertTensor(const std::string& name) { return name.find(".experts.") != std::string::npos; }

}  // namespace

double RankWeightBytes(const ModelSpec& m, const PoolLayout& pool, int redundant, DType weights) {
  OpStream s;
  if (!BuildDenseDecoderStream(m, ShardSpec{pool.tp, 0}, static_cast<int>(m.num_layers), &s).ok()) {
    return NAN;
  }
  double elements = 0;
  for (const WeightDesc& w : s.weights) {
    if (pool.ep > 1 && IsExpertTensor(w.name)) continue;  // counted as slots below
    elements += static_cast<double>(w.Elements());
  }
  if (pool.ep > 1) {
    const double per_expert = 3.0 * m.hidden_size * m.moe.expert_ffn_size;
    elements += static_cast<double>(ExpertSlotsPerRank(m, pool.ep, redundant)) * per_expert *
                static_cast<double>(MoeLayers(m));
  }
  return elements * static_cast<double>(DTypeBytes(weights));
}

double RankKvBytesPerToken(const ModelSpec& m, const PoolLayout& pool, DType kv) {
  const double b = static_cast<double>(DTypeBytes(kv));
  // MLA's compressed latent is shared by every head, so a TP rank holds all of it.
  if (m.mla.enabled()) return static_cast<double>(m.KvBytesPerToken(1)) * b;
  return static_cast<double>(m.KvBytesPerToken(1)) * b / std::max(1, pool.tp);
}

RankMemory RankMemoryOf(const ModelSpec& m, const PoolLayout& pool, int redundant, DType weights,
                        DType kv, int64_t seqs, int64_t context, int64_t step_tokens) {
  RankMemory r;
  r.weights = RankWeightBytes(m, pool, redundant, weights);
  r.kv_cache =
      RankKvBytesPerToken(m, pool, kv) * static_cast<double>(seqs) * static_cast<double>(context);
  // fp32 working buffers of one step: residual, norms, projections, FFN (or the rows routed
  // to this rank's experts, with headroom for imbalance) and the last positions' logits.
  const double tp = std::max(1, pool.tp), hidden = static_cast<double>(m.hidden_size);
  const double hd = m.head_dim > 0 ? m.head_dim : hidden / std::max<int64_t>(1, m.num_heads);
  const double attn = m.mla.enabled() ? m.num_heads * (m.mla.QkHeadDim() + m.mla.v_head_dim) / tp +
                                            m.mla.q_lora_rank + m.mla.CacheWidth()
                                      : (2.0 * m.num_heads + 2.0 * m.num_kv_heads) * hd / tp;
  double ffn = 3.0 * m.ffn_size / tp;
  if (m.moe.enabled()) {
    const double routed = 2.0 * static_cast<double>(m.moe.experts_per_token) *
                          (hidden + 3.0 * static_cast<double>(m.moe.expert_ffn_size));
    ffn = std::max(ffn, routed + 3.0 * static_cast<double>(m.moe.SharedFfn()) / tp);
  }
  const double tokens = static_cast<double>(std::max<int64_t>(1, step_tokens));
  const double last = static_cast<double>(std::min(std::max<int64_t>(1, seqs), step_tokens));
  r.activations =
      4.0 * (tokens * (4.0 * hidden + attn + ffn) + last * static_cast<double>(m.vocab_size) / tp);
  return r;
}

}  // namespace cb
