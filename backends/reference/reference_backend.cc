#include "backends/reference/reference_backend.h"

#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "workloads/moe_routing.h"

namespace cb {
namespace {

constexpr int kBufCount = static_cast<int>(Buf::kNextTokens) + 1;

std::string HostName() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0) return "";
  return buf;
}

uint64_t MemAvailableBytes() {
  std::ifstream in("/proc/meminfo");
  std::string key, rest;
  uint64_t kb = 0;
  while (in >> key >> kb) {
    std::getline(in, rest);
    if (key == "MemAvailable:") return kb * 1024;
  }
  return 0;
}

/// Identity of a weight's values: two descs with the same identity (a tied LM head and the
/// embedding) share one copy.
std::string WeightIdentity(const WeightDesc& w) {
  return (w.key.empty() ? w.name : w.key) + "|" + std::to_string(w.rows) + "x" +
         std::to_string(w.cols) + "@" + std::to_string(w.row_offset) + "," +
         std::to_string(w.col_offset) + "/" + std::to_string(w.global_cols) + "|" +
         std::to_string(static_cast<int>(w.init)) + "|" + std::to_string(w.scale);
}

class ReferenceSession final : public Session {
 public:
  explicit ReferenceSession(const SessionConfig& config) : cfg_(config) {}

  Status Load(const OpStream& stream, const WeightSource& weights) override;
  Status Run(const OpStream& stream, OpRange range, StepIO& io) override;
  Status Synchronize() override { return Status::Ok(); }
  uint64_t AllocatedBytes() const override;
  Status ReadBuffer(Buf buf, int64_t rows, std::vector<float>* out) const override;
  Status WriteBuffer(Buf buf, int64_t rows, const std::vector<float>& data) override;

 private:
  struct KvEntry {
    std::vector<float> k, v;  ///< [positions, kv_heads * head_dim]; MLA: k holds the latent
    int64_t valid = 0;        ///< positions written so far
  };
  /// The slot must already hold the positions the step says are cached.
  static Status CheckCachedPrefix(const KvEntry& kv, const SeqStep& s, int layer) {
    if (kv.valid >= s.past_len) return Status::Ok();
    return Status::InvalidInput("slot " + std::to_string(s.slot) + " holds " +
                                std::to_string(kv.valid) + " cached positions at layer " +
                                std::to_string(layer) + ", the step says past_len " +
                                std::to_string(s.past_len));
  }

  Status RunOp(const Op& op, StepIO& io);
  Status Input(Buf b, int64_t width, const float** out) const;
  float* Output(Buf b, int64_t width);
  const std::vector<float>& W(const std::string& name) const { return *weights_.at(name); }
  int64_t Rows(Buf b) const { return BufferRows(b) == Rows::kTokenRows ? tokens_ : seqs_; }

  Status EmbeddingOp(const Op& op);
  Status RmsNormOp(const Op& op);
  Status MatMulOp(const Op& op);
  Status QkNormOp(const Op& op);
  Status RopeOp(const Op& op, const StepIO& io);
  Status AttentionOp(const Op& op, const StepIO& io);
  Status SwiGluOp(const Op& op);
  Status ResidualAddOp(const Op& op);
  Status SelectLastOp(const Op& op, const StepIO& io);
  Status SampleGreedyOp(const Op& op, StepIO& io);
  Status RouterOp(const Op& op, StepIO& io);
  Status MoeExpertsOp(const Op& op);
  Status MlaKvNormOp(const Op& op);
  Status MlaRopeOp(const Op& op, const StepIO& io);
  Status MlaAttentionOp(const Op& op, const StepIO& io);

  SessionConfig cfg_;
  bool loaded_ = false;
  LocalDims dims_;
  double eps_ = 1e-5, theta_ = 10000.0;
  MoeSpec moe_;
  double zipf_s_ = 0;
  int layers_ = 0;
  size_t num_ops_ = 0;
  std::map<std::string, std::shared_ptr<const std::vector<float>>> weights_;
  std::vector<float> bufs_[kBufCount];    ///< token ids are held as exact floats
  std::vector<std::vector<KvEntry>> kv_;  ///< [layer][slot]
  int64_t tokens_ = 0, seqs_ = 0;         ///< rows of the current step
};

Status ReferenceSession::Load(const OpStream& stream, const WeightSource& weights) {
  if (stream.shard.tp_size != 1 || stream.shard.ep_size != 1) {
    return Status::Unsupported("the reference backend runs a single rank only (tp_size " +
                               std::to_string(stream.shard.tp_size) + ")");
  }
  if (cfg_.max_sequences < 1) {
    return Status::InvalidInput("SessionConfig.max_sequences must be at least 1");
  }
  if (!stream.dims.Mla() && stream.dims.head_dim % 2 != 0) {
    return Status::InvalidInput("rotary embedding needs an even head_dim, got " +
                                std::to_string(stream.dims.head_dim));
  }
  weights_.clear();
  std::map<std::string, std::shared_ptr<const std::vector<float>>> by_identity;
  for (const WeightDesc& d : stream.weights) {
    const std::string id = WeightIdentity(d);
    auto it = by_identity.find(id);
    if (it != by_identity.end()) {
      weights_[d.name] = it->second;
      continue;
    }
    auto values = std::make_shared<std::vector<float>>(static_cast<size_t>(d.Elements()));
    weights.FillRows(d, 0, d.rows, values->data());
    for (float& v : *values) v = RoundTo(cfg_.dtype, v);
    by_identity[id] = values;
    weights_[d.name] = values;
  }
  for (const Op& op : stream.ops) {
    for (const std::string& w : op.weights) {
      if (!weights_.count(w)) {
        return Status::InvalidInput("op " + std::string(OpKindName(op.kind)) + " names weight '" +
                                    w + "' the stream does not declare");
      }
    }
  }
  dims_ = stream.dims;
  eps_ = stream.model.norm_eps;
  theta_ = stream.model.rope_theta;
  moe_ = stream.model.moe;
  zipf_s_ = stream.model.routing_zipf_s;
  layers_ = stream.layers;
  num_ops_ = stream.ops.size();
  kv_.assign(stream.layers, std::vector<KvEntry>(cfg_.max_sequences));
  for (auto& b : bufs_) b.clear();
  loaded_ = true;
  return Status::Ok();
}

uint64_t ReferenceSession::AllocatedBytes() const {
  uint64_t bytes = 0;
  std::vector<const std::vector<float>*> seen;
  for (const auto& [name, w] : weights_) {
    if (std::find(seen.begin(), seen.end(), w.get()) != seen.end()) continue;
    seen.push_back(w.get());
    bytes += w->capacity() * sizeof(float);
  }
  for (const auto& b : bufs_) bytes += b.capacity() * sizeof(float);
  for (const auto& layer : kv_) {
    for (const auto& e : layer) bytes += (e.k.capacity() + e.v.capacity()) * sizeof(float);
  }
  return bytes;
}

Status ReferenceSession::Input(Buf b, int64_t width, const float** out) const {
  const auto& v = bufs_[static_cast<int>(b)];
  if (static_cast<int64_t>(v.size()) < Rows(b) * width) {
    return Status::InvalidInput("buffer '" + std::string(BufName(b)) +
                                "' is read before it was written for this step");
  }
  *out = v.data();
  return Status::Ok();
}

float* ReferenceSession::Output(Buf b, int64_t width) {
  auto& v = bufs_[static_cast<int>(b)];
  const size_t need = static_cast<size_t>(Rows(b) * width);
  if (v.size() < need) v.resize(need);
  return v.data();
}

Status ReferenceSession::Run(const OpStream& stream, OpRange range, StepIO& io) {
  if (!loaded_) return Status::InvalidInput("Run before Load");
  if (stream.ops.size() != num_ops_) {
    return Status::InvalidInput("Run with a stream other than the loaded one");
  }
  if (range.begin > range.end || range.end > stream.ops.size()) {
    return Status::InvalidInput("op range [" + std::to_string(range.begin) + ", " +
                                std::to_string(range.end) + ") outside the stream of " +
                                std::to_string(stream.ops.size()) + " ops");
  }
  if (io.seqs.empty()) return Status::InvalidInput("a step needs at least one sequence");
  if (static_cast<int64_t>(io.seqs.size()) > cfg_.max_sequences) {
    return Status::InvalidInput("step has " + std::to_string(io.seqs.size()) +
                                " sequences, the session was opened for " +
                                std::to_string(cfg_.max_sequences));
  }
  std::vector<bool> used(cfg_.max_sequences, false);
  for (const SeqStep& s : io.seqs) {
    if (s.slot < 0 || s.slot >= cfg_.max_sequences || used[s.slot]) {
      return Status::InvalidInput("invalid or repeated KV slot " + std::to_string(s.slot));
    }
    used[s.slot] = true;
    if (s.past_len < 0 || s.new_tokens < 1) {
      return Status::InvalidInput("each sequence needs past_len >= 0 and new_tokens >= 1");
    }
    if (cfg_.max_context > 0 && s.past_len + s.new_tokens > cfg_.max_context) {
      return Status::Exhausted("sequence reaches " + std::to_string(s.past_len + s.new_tokens) +
                               " tokens, the session was opened for max_context " +
                               std::to_string(cfg_.max_context));
    }
  }
  tokens_ = io.TotalTokens();
  seqs_ = static_cast<int64_t>(io.seqs.size());
  if (!io.tokens.empty()) {
    if (static_cast<int64_t>(io.tokens.size()) != tokens_) {
      return Status::InvalidInput("StepIO has " + std::to_string(io.tokens.size()) +
                                  " tokens for " + std::to_string(tokens_) + " new positions");
    }
    float* t = Output(Buf::kTokens, 1);
    for (int64_t i = 0; i < tokens_; ++i) t[i] = static_cast<float>(io.tokens[i]);
  }
  for (size_t i = range.begin; i < range.end; ++i) {
    Status s = RunOp(stream.ops[i], io);
    if (!s.ok()) {
      return Status(s.code(), "op " + std::to_string(i) + " (" +
                                  std::string(OpKindName(stream.ops[i].kind)) +
                                  "): " + s.message());
    }
  }
  return Status::Ok();
}

Status ReferenceSession::RunOp(const Op& op, StepIO& io) {
  switch (op.kind) {
    case OpKind::kEmbedding:
      return EmbeddingOp(op);
    case OpKind::kRmsNorm:
      return RmsNormOp(op);
    case OpKind::kMatMul:
      return MatMulOp(op);
    case OpKind::kQkNorm:
      return QkNormOp(op);
    case OpKind::kRope:
      return RopeOp(op, io);
    case OpKind::kAttention:
      return AttentionOp(op, io);
    case OpKind::kSwiGlu:
      return SwiGluOp(op);
    case OpKind::kResidualAdd:
      return ResidualAddOp(op);
    case OpKind::kAllReduce:
    case OpKind::kAllGather:
      return Status::Ok();  // a single rank: the identity
    case OpKind::kSelectLast:
      return SelectLastOp(op, io);
    case OpKind::kSampleGreedy:
      return SampleGreedyOp(op, io);
    case OpKind::kRouter:
      return RouterOp(op, io);
    case OpKind::kMoeExperts:
      return MoeExpertsOp(op);
    case OpKind::kMlaKvNorm:
      return MlaKvNormOp(op);
    case OpKind::kMlaRope:
      return MlaRopeOp(op, io);
    case OpKind::kMlaAttention:
      return MlaAttentionOp(op, io);
  }
  return Status::Internal("unknown op kind");
}

Status ReferenceSession::EmbeddingOp(const Op& op) {
  const std::vector<float>& table = W(op.weights.at(0));
  const int64_t n = op.n;
  const int64_t vocab = static_cast<int64_t>(table.size()) / n;
  const float* tok;
  CB_RETURN_IF_ERROR(Input(op.in, 1, &tok));
  float* out = Output(op.out, n);
  for (int64_t t = 0; t < tokens_; ++t) {
    const int64_t id = static_cast<int64_t>(tok[t]);
    if (id < 0 || id >= vocab) {
      return Status::InvalidInput("token id " + std::to_string(id) + " outside the vocabulary");
    }
    std::copy_n(table.data() + id * n, n, out + t * n);
  }
  return Status::Ok();
}

Status ReferenceSession::RmsNormOp(const Op& op) {
  const std::vector<float>& w = W(op.weights.at(0));
  const int64_t n = op.n, rows = Rows(op.in);
  const float* in;
  CB_RETURN_IF_ERROR(Input(op.in, n, &in));
  float* out = Output(op.out, n);
  for (int64_t r = 0; r < rows; ++r) {
    const float* x = in + r * n;
    double ss = 0;
    for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(x[i]) * x[i];
    const double inv = 1.0 / std::sqrt(ss / n + eps_);
    for (int64_t i = 0; i < n; ++i) out[r * n + i] = static_cast<float>(x[i] * inv * w[i]);
  }
  return Status::Ok();
}

Status ReferenceSession::MatMulOp(const Op& op) {
  const int64_t m_rows = Rows(op.in), n = op.n, k = op.k;
  const float* in;
  CB_RETURN_IF_ERROR(Input(op.in, k, &in));
  float* out = Output(op.out, n);
  int64_t n0 = 0;  // first output column of the current weight
  for (const std::string& name : op.weights) {
    const std::vector<float>& w = W(name);
    const int64_t rows = static_cast<int64_t>(w.size()) / k;
    if (n0 + rows > n) return Status::InvalidInput("matmul weights are wider than n");
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      const float* wr = w.data() + r * k;
      for (int64_t m = 0; m < m_rows; ++m) {
        const float* x = in + m * k;
        double acc = 0;
#pragma omp simd reduction(+ : acc)
        for (int64_t i = 0; i < k; ++i) acc += static_cast<double>(x[i]) * wr[i];
        out[m * n + n0 + r] = static_cast<float>(acc);
      }
    }
    n0 += rows;
  }
  if (n0 != n) return Status::InvalidInput("matmul weights do not add up to n");
  return Status::Ok();
}

Status ReferenceSession::QkNormOp(const Op& op) {
  const std::vector<float>& wq = W(op.weights.at(0));
  const std::vector<float>& wk = W(op.weights.at(1));
  const int64_t hd = dims_.head_dim, width = dims_.QkvWidth();
  float* qkv;
  {
    const float* p;
    CB_RETURN_IF_ERROR(Input(op.in, width, &p));
    qkv = const_cast<float*>(p);
  }
  for (int64_t t = 0; t < tokens_; ++t) {
    for (int64_t h = 0; h < dims_.heads + dims_.kv_heads; ++h) {
      float* x = qkv + t * width + h * hd;
      const std::vector<float>& w = h < dims_.heads ? wq : wk;
      double ss = 0;
      for (int64_t i = 0; i < hd; ++i) ss += static_cast<double>(x[i]) * x[i];
      const double inv = 1.0 / std::sqrt(ss / hd + eps_);
      for (int64_t i = 0; i < hd; ++i) x[i] = static_cast<float>(x[i] * inv * w[i]);
    }
  }
  return Status::Ok();
}

Status ReferenceSession::RopeOp(const Op& op, const StepIO& io) {
  const int64_t hd = dims_.head_dim, half = hd / 2, width = dims_.QkvWidth();
  const float* p;
  CB_RETURN_IF_ERROR(Input(op.in, width, &p));
  float* qkv = const_cast<float*>(p);
  int64_t row = 0;
  for (const SeqStep& s : io.seqs) {
    for (int64_t j = 0; j < s.new_tokens; ++j, ++row) {
      const double pos = static_cast<double>(s.past_len + j);
      for (int64_t h = 0; h < dims_.heads + dims_.kv_heads; ++h) {  // Q and K heads, not V
        float* x = qkv + row * width + h * hd;
        for (int64_t i = 0; i < half; ++i) {
          const double angle = pos * std::pow(theta_, -2.0 * i / hd);
          const double c = std::cos(angle), sn = std::sin(angle);
          const double x1 = x[i], x2 = x[i + half];
          x[i] = static_cast<float>(x1 * c - x2 * sn);
          x[i + half] = static_cast<float>(x2 * c + x1 * sn);
        }
      }
    }
  }
  return Status::Ok();
}

Status ReferenceSession::AttentionOp(const Op& op, const StepIO& io) {
  if (op.layer < 0 || op.layer >= static_cast<int>(kv_.size())) {
    return Status::InvalidInput("attention op without a valid layer");
  }
  const int64_t hd = dims_.head_dim, heads = dims_.heads, kvh = dims_.kv_heads;
  const int64_t width = dims_.QkvWidth(), kv_w = kvh * hd, out_w = heads * hd;
  const int64_t group = heads / kvh;
  const double scale = 1.0 / std::sqrt(static_cast<double>(hd));
  const float* qkv;
  CB_RETURN_IF_ERROR(Input(op.in, width, &qkv));
  float* out = Output(op.out, out_w);
  int64_t row0 = 0;
  for (const SeqStep& s : io.seqs) {
    KvEntry& kv = kv_[op.layer][s.slot];
    CB_RETURN_IF_ERROR(CheckCachedPrefix(kv, s, op.layer));
    const int64_t len = s.past_len + s.new_tokens;
    if (static_cast<int64_t>(kv.k.size()) < len * kv_w) {
      kv.k.resize(len * kv_w);
      kv.v.resize(len * kv_w);
    }
    for (int64_t j = 0; j < s.new_tokens; ++j) {
      const float* r = qkv + (row0 + j) * width;
      std::copy_n(r + heads * hd, kv_w, kv.k.data() + (s.past_len + j) * kv_w);
      std::copy_n(r + (heads + kvh) * hd, kv_w, kv.v.data() + (s.past_len + j) * kv_w);
    }
    kv.valid = len;
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t j = 0; j < s.new_tokens; ++j) {
      for (int64_t h = 0; h < heads; ++h) {
        const int64_t pos = s.past_len + j, g = h / group;
        const float* q = qkv + (row0 + j) * width + h * hd;
        std::vector<double> score(pos + 1);
        double mx = -INFINITY;
        for (int64_t t = 0; t <= pos; ++t) {
          const float* kr = kv.k.data() + t * kv_w + g * hd;
          double dot = 0;
          for (int64_t i = 0; i < hd; ++i) dot += static_cast<double>(q[i]) * kr[i];
          score[t] = dot * scale;
          mx = std::max(mx, score[t]);
        }
        double sum = 0;
        for (double& sc : score) sum += (sc = std::exp(sc - mx));
        float* o = out + (row0 + j) * out_w + h * hd;
        for (int64_t i = 0; i < hd; ++i) {
          double acc = 0;
          for (int64_t t = 0; t <= pos; ++t) acc += score[t] * kv.v[t * kv_w + g * hd + i];
          o[i] = static_cast<float>(acc / sum);
        }
      }
    }
    row0 += s.new_tokens;
  }
  return Status::Ok();
}

Status ReferenceSession::SwiGluOp(const Op& op) {
  const int64_t f = op.n;
  const float* in;
  CB_RETURN_IF_ERROR(Input(op.in, 2 * f, &in));
  float* out = Output(op.out, f);
  for (int64_t t = 0; t < tokens_; ++t) {
    for (int64_t i = 0; i < f; ++i) {
      const double g = in[t * 2 * f + i], u = in[t * 2 * f + f + i];
      out[t * f + i] = static_cast<float>(g / (1.0 + std::exp(-g)) * u);
    }
  }
  return Status::Ok();
}

Status ReferenceSession::ResidualAddOp(const Op& op) {
  const int64_t n = op.n, rows = Rows(op.out);
  const float *in, *acc;
  CB_RETURN_IF_ERROR(Input(op.in, n, &in));
  CB_RETURN_IF_ERROR(Input(op.out, n, &acc));
  float* out = const_cast<float*>(acc);
  for (int64_t i = 0; i < rows * n; ++i) out[i] += in[i];
  return Status::Ok();
}

Status ReferenceSession::SelectLastOp(const Op& op, const StepIO& io) {
  const int64_t n = op.n;
  const float* in;
  CB_RETURN_IF_ERROR(Input(op.in, n, &in));
  float* out = Output(op.out, n);
  int64_t row = 0;
  for (size_t s = 0; s < io.seqs.size(); ++s) {
    row += io.seqs[s].new_tokens;
    std::copy_n(in + (row - 1) * n, n, out + s * n);
  }
  return Status::Ok();
}

Status ReferenceSession::SampleGreedyOp(const Op& op, StepIO& io) {
  const int64_t vocab = op.n;
  const float* logits;
  CB_RETURN_IF_ERROR(Input(op.in, vocab, &logits));
  float* out = Output(op.out, 1);
  io.next_tokens.assign(seqs_, 0);
  for (int64_t s = 0; s < seqs_; ++s) {
    const float* l = logits + s * vocab;
    int64_t best = -1;  // stays -1 when every logit is NaN
    for (int64_t v = 0; v < vocab; ++v) {
      if (!std::isnan(l[v]) && (best < 0 || l[v] > l[best])) best = v;
    }
    io.next_tokens[s] = static_cast<int32_t>(best);
    out[s] = static_cast<float>(best);
  }
  if (io.want_logits) io.logits.assign(logits, logits + seqs_ * vocab);
  return Status::Ok();
}

Status ReferenceSession::RouterOp(const Op& op, StepIO& io) {
  const std::vector<float>& gate = W(op.weights.at(0));
  const float* bias = op.weights.size() > 1 ? W(op.weights[1]).data() : nullptr;
  const int64_t e = op.n, hidden = op.k, k = dims_.top_k;
  const float* h;
  CB_RETURN_IF_ERROR(Input(op.in, hidden, &h));
  float* out = Output(op.out, 2 * k);
  std::vector<double> scores(e), sel, weights(k);
  std::vector<char> eligible;
  std::vector<int64_t> ids(k);
  const std::vector<float>* replay = nullptr;
  if (io.replay_routes != nullptr && op.layer < static_cast<int>(io.replay_routes->size()) &&
      (*io.replay_routes)[op.layer].size() == static_cast<size_t>(tokens_ * 2 * k)) {
    replay = &(*io.replay_routes)[op.layer];
  }
  for (int64_t t = 0; t < tokens_; ++t) {
    double mx = -INFINITY;
    for (int64_t i = 0; i < e; ++i) {
      double acc = 0;
      for (int64_t c = 0; c < hidden; ++c) {
        acc += static_cast<double>(h[t * hidden + c]) * gate[i * hidden + c];
      }
      scores[i] = acc + RoutingSkewBias(zipf_s_, i);
      mx = std::max(mx, scores[i]);
    }
    if (moe_.scoring == "softmax") {
      double sum = 0;
      for (double& v : scores) sum += (v = std::exp(v - mx));
      for (double& v : scores) v /= sum;
    } else {
      for (double& v : scores) v = 1.0 / (1.0 + std::exp(-v));
    }
    SelectExperts<double>(moe_, scores.data(), bias, ids.data(), weights.data(), sel, eligible);
    if (replay != nullptr) {
      // Another backend's choice (ascending ids); the weights are this side's scores of it.
      bool same = true;
      double sum = 0;
      for (int64_t j = 0; j < k; ++j) {
        const int64_t id = static_cast<int64_t>((*replay)[t * 2 * k + j]);
        if (id < 0 || id >= e) return Status::InvalidInput("replayed route names no expert");
        same = same && id == ids[j];
        ids[j] = id;
        sum += weights[j] = scores[id];
      }
      for (int64_t j = 0; j < k; ++j) {
        if (moe_.norm_topk) weights[j] /= sum + 1e-20;
        weights[j] *= moe_.routed_scaling;
      }
      ++io.route_decisions;
      io.route_mismatches += same ? 0 : 1;
    }
    for (int64_t j = 0; j < k; ++j) {
      out[t * 2 * k + j] = static_cast<float>(ids[j]);
      out[t * 2 * k + k + j] = static_cast<float>(weights[j]);
    }
  }
  CountExpertLoad(out, tokens_, k, e, op.layer, layers_, &io.expert_load);
  if (io.record_routes) {
    if (static_cast<int>(io.routes.size()) < layers_) io.routes.resize(layers_);
    io.routes[op.layer].assign(out, out + tokens_ * 2 * k);
  }
  return Status::Ok();
}

Status ReferenceSession::MoeExpertsOp(const Op& op) {
  const std::vector<float>& gate_up = W(op.weights.at(0));
  const std::vector<float>& down = W(op.weights.at(1));
  const int64_t hidden = dims_.hidden, f = dims_.expert_ffn, k = dims_.top_k;
  const float *h, *route;
  CB_RETURN_IF_ERROR(Input(op.in, hidden, &h));
  CB_RETURN_IF_ERROR(Input(Buf::kRoute, 2 * k, &route));
  float* out = Output(op.out, hidden);
#pragma omp parallel for schedule(dynamic)
  for (int64_t t = 0; t < tokens_; ++t) {
    std::vector<double> acc(hidden, 0.0), act(f);
    const float* x = h + t * hidden;
    for (int64_t j = 0; j < k; ++j) {
      const int64_t e = static_cast<int64_t>(route[t * 2 * k + j]) - dims_.expert_begin;
      if (e < 0 || e >= dims_.local_experts) continue;  // another rank's expert
      const double w = route[t * 2 * k + k + j];
      const float* gu = gate_up.data() + e * 2 * f * hidden;
      for (int64_t i = 0; i < f; ++i) {
        double g = 0, u = 0;
        for (int64_t c = 0; c < hidden; ++c) {
          g += static_cast<double>(x[c]) * gu[i * hidden + c];
          u += static_cast<double>(x[c]) * gu[(f + i) * hidden + c];
        }
        act[i] = g / (1.0 + std::exp(-g)) * u;
      }
      const float* dn = down.data() + e * hidden * f;
      for (int64_t r = 0; r < hidden; ++r) {
        double y = 0;
        for (int64_t i = 0; i < f; ++i) y += act[i] * dn[r * f + i];
        acc[r] += w * y;
      }
    }
    for (int64_t r = 0; r < hidden; ++r) out[t * hidden + r] = static_cast<float>(acc[r]);
  }
  return Status::Ok();
}

Status ReferenceSession::MlaKvNormOp(const Op& op) {
  const std::vector<float>& w = W(op.weights.at(0));
  const int64_t width = BufferWidth(dims_, op.in), n = op.n;
  const float* p;
  CB_RETURN_IF_ERROR(Input(op.in, width, &p));
  float* kv = const_cast<float*>(p);
  for (int64_t t = 0; t < tokens_; ++t) {
    float* x = kv + t * width;
    double ss = 0;
    for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(x[i]) * x[i];
    const double inv = 1.0 / std::sqrt(ss / n + eps_);
    for (int64_t i = 0; i < n; ++i) x[i] = static_cast<float>(x[i] * inv * w[i]);
  }
  return Status::Ok();
}

Status ReferenceSession::MlaRopeOp(const Op& op, const StepIO& io) {
  const int64_t rope = dims_.qk_rope, half = rope / 2, qk = dims_.QkHeadDim();
  const int64_t q_w = BufferWidth(dims_, Buf::kQ), kv_w = BufferWidth(dims_, Buf::kKva);
  const float *pq, *pk;
  CB_RETURN_IF_ERROR(Input(Buf::kQ, q_w, &pq));
  CB_RETURN_IF_ERROR(Input(Buf::kKva, kv_w, &pk));
  auto rotate = [&](float* x, double pos) {
    for (int64_t i = 0; i < half; ++i) {
      const double angle = pos * std::pow(theta_, -2.0 * i / rope);
      const double c = std::cos(angle), sn = std::sin(angle);
      const double x1 = x[i], x2 = x[i + half];
      x[i] = static_cast<float>(x1 * c - x2 * sn);
      x[i + half] = static_cast<float>(x2 * c + x1 * sn);
    }
  };
  int64_t row = 0;
  for (const SeqStep& s : io.seqs) {
    for (int64_t j = 0; j < s.new_tokens; ++j, ++row) {
      const double pos = static_cast<double>(s.past_len + j);
      for (int64_t h = 0; h < dims_.heads; ++h) {
        rotate(const_cast<float*>(pq) + row * q_w + h * qk + dims_.qk_nope, pos);
      }
      rotate(const_cast<float*>(pk) + row * kv_w + dims_.kv_lora, pos);
    }
  }
  (void)op;
  return Status::Ok();
}

Status ReferenceSession::MlaAttentionOp(const Op& op, const StepIO& io) {
  if (op.layer < 0 || op.layer >= static_cast<int>(kv_.size())) {
    return Status::InvalidInput("attention op without a valid layer");
  }
  const std::vector<float>& kv_b = W(op.weights.at(0));
  const int64_t heads = dims_.heads, nope = dims_.qk_nope, rope = dims_.qk_rope, v = dims_.head_dim,
                lora = dims_.kv_lora, qk = nope + rope;
  const int64_t q_w = heads * qk, c_w = lora + rope, out_w = heads * v;
  const double scale = 1.0 / std::sqrt(static_cast<double>(qk));
  const float *q, *kva;
  CB_RETURN_IF_ERROR(Input(op.in, q_w, &q));
  CB_RETURN_IF_ERROR(Input(Buf::kKva, c_w, &kva));
  float* out = Output(op.out, out_w);
  int64_t row0 = 0;
  for (const SeqStep& s : io.seqs) {
    KvEntry& kv = kv_[op.layer][s.slot];
    CB_RETURN_IF_ERROR(CheckCachedPrefix(kv, s, op.layer));
    const int64_t len = s.past_len + s.new_tokens;
    if (static_cast<int64_t>(kv.k.size()) < len * c_w) kv.k.resize(len * c_w);
    std::copy_n(kva + row0 * c_w, s.new_tokens * c_w, kv.k.data() + s.past_len * c_w);
    kv.valid = len;
    // Naive form: up-project every cached latent into each head's K (nope part) and V.
    std::vector<double> keys(len * heads * nope), vals(len * heads * v);
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t t = 0; t < len; ++t) {
      for (int64_t h = 0; h < heads; ++h) {
        const float* c = kv.k.data() + t * c_w;
        for (int64_t r = 0; r < nope + v; ++r) {
          const float* wr = kv_b.data() + (h * (nope + v) + r) * lora;
          double acc = 0;
          for (int64_t i = 0; i < lora; ++i) acc += static_cast<double>(c[i]) * wr[i];
          if (r < nope) {
            keys[(t * heads + h) * nope + r] = acc;
          } else {
            vals[(t * heads + h) * v + r - nope] = acc;
          }
        }
      }
    }
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t j = 0; j < s.new_tokens; ++j) {
      for (int64_t h = 0; h < heads; ++h) {
        const int64_t pos = s.past_len + j;
        const float* qh = q + (row0 + j) * q_w + h * qk;
        std::vector<double> score(pos + 1);
        double mx = -INFINITY;
        for (int64_t t = 0; t <= pos; ++t) {
          double dot = 0;
          for (int64_t i = 0; i < nope; ++i) dot += qh[i] * keys[(t * heads + h) * nope + i];
          const float* kr = kv.k.data() + t * c_w + lora;
          for (int64_t i = 0; i < rope; ++i) dot += static_cast<double>(qh[nope + i]) * kr[i];
          score[t] = dot * scale;
          mx = std::max(mx, score[t]);
        }
        double sum = 0;
        for (double& sc : score) sum += (sc = std::exp(sc - mx));
        float* o = out + (row0 + j) * out_w + h * v;
        for (int64_t i = 0; i < v; ++i) {
          double acc = 0;
          for (int64_t t = 0; t <= pos; ++t) acc += score[t] * vals[(t * heads + h) * v + i];
          o[i] = static_cast<float>(acc / sum);
        }
      }
    }
    row0 += s.new_tokens;
  }
  return Status::Ok();
}

Status ReferenceSession::ReadBuffer(Buf buf, int64_t rows, std::vector<float>* out) const {
  if (!loaded_) return Status::InvalidInput("ReadBuffer before Load");
  const int64_t width = BufferWidth(dims_, buf);
  const auto& v = bufs_[static_cast<int>(buf)];
  if (width == 0 || rows < 0 || static_cast<int64_t>(v.size()) < rows * width) {
    return Status::InvalidInput("buffer '" + std::string(BufName(buf)) + "' holds fewer than " +
                                std::to_string(rows) + " rows");
  }
  out->assign(v.begin(), v.begin() + rows * width);
  return Status::Ok();
}

Status ReferenceSession::WriteBuffer(Buf buf, int64_t rows, const std::vector<float>& data) {
  if (!loaded_) return Status::InvalidInput("WriteBuffer before Load");
  const int64_t width = BufferWidth(dims_, buf);
  if (width == 0 || rows < 0 || static_cast<int64_t>(data.size()) != rows * width) {
    return Status::InvalidInput("WriteBuffer: " + std::to_string(data.size()) + " values are not " +
                                std::to_string(rows) + " rows of '" + std::string(BufName(buf)) +
                                "'");
  }
  auto& v = bufs_[static_cast<int>(buf)];
  if (v.size() < data.size()) v.resize(data.size());
  std::copy(data.begin(), data.end(), v.begin());
  return Status::Ok();
}

class ReferenceDevice final : public Device {
 public:
  DeviceProps Props() const override {
    DeviceProps p;
    p.backend = "reference";
    p.name = "reference (fp32 weights, fp64 accumulation)";
    p.kind = "cpu";
    p.host = HostName();
    p.threads = omp_get_max_threads();
    p.mem_bytes = MemAvailableBytes();
    p.simulated = false;
    return p;
  }
  Support Supports(DType dtype) const override {
    if (dtype == DType::kF16) {
      return {false, "the reference backend does not model fp16 rounding"};
    }
    if (IsQuantized(dtype)) {
      return {false, "the reference backend does not quantise to " + std::string(DTypeName(dtype)) +
                         " yet"};
    }
    return {};
  }
  Status Open(const SessionConfig& config, std::unique_ptr<Session>* out) override {
    if (config.kv_dtype && *config.kv_dtype != DefaultKvDType(config.dtype)) {
      return Status::Unsupported("this backend keeps the KV cache in " +
                                 std::string(DTypeName(DefaultKvDType(config.dtype))) + ", not " +
                                 std::string(DTypeName(*config.kv_dtype)));
    }
    const Support s = Supports(config.dtype);
    if (!s.supported) return Status::Unsupported(s.reason);
    *out = std::make_unique<ReferenceSession>(config);
    return Status::Ok();
  }
  Clock& clock() override { return clock_; }
  EnergyMeter* energy() override { return nullptr; }

 private:
  SteadyClock clock_;
};

}  // namespace

std::unique_ptr<Device> MakeReferenceDevice() { return std::make_unique<ReferenceDevice>(); }

}  // namespace cb
