// The reference's dense ops: plain loops, fp64 accumulation.
#include <algorithm>
#include <cmath>

#include "backends/reference/reference_session.h"
#include "workloads/quant.h"

namespace cb {

ActQuant ActQuantOf(const SessionConfig& config) {
  if (!IsQuantized(config.dtype)) return ActQuant::kNone;
  if (config.weight_only) return ActQuant::kBf16;
  return config.dtype == DType::kInt8 ? ActQuant::kInt8 : ActQuant::kFp8;
}

void QuantizeInput(ActQuant mode, const float* x, int64_t k, QuantRow* out) {
  out->v.assign(x, x + k);
  out->group = mode == ActQuant::kFp8 ? kFp8Block : k;
  out->scale.clear();
  for (int64_t g = 0; g < k; g += out->group) {
    const int64_t n = std::min(out->group, k - g);
    float* v = out->v.data() + g;
    float s = 1.0f;
    if (mode == ActQuant::kInt8) {
      s = AbsMaxScale(v, n, kInt8Max);
      for (int64_t i = 0; i < n; ++i) v[i] = QuantizeInt8(v[i], s);
    } else if (mode == ActQuant::kFp8) {
      s = AbsMaxScale(v, n, kFp8Max);
      for (int64_t i = 0; i < n; ++i) v[i] = Fp8ToFloat(QuantizeFp8(v[i], s));
    } else if (mode == ActQuant::kBf16) {
      for (int64_t i = 0; i < n; ++i) v[i] = RoundTo(DType::kBF16, v[i]);
    }
    out->scale.push_back(s);
  }
}

double QDot(const QuantRow& x, const float* w) {
  const int64_t k = static_cast<int64_t>(x.v.size());
  if (x.scale.size() == 1) return x.scale[0] * Dot(x.v.data(), w, k);
  double acc = 0;
  for (size_t g = 0; g < x.scale.size(); ++g) {
    const int64_t c = static_cast<int64_t>(g) * x.group;
    acc += x.scale[g] * Dot(x.v.data() + c, w + c, std::min(x.group, k - c));
  }
  return acc;
}

Status ReferenceSession::EmbeddingOp(const Op& op) {
  const RefWeights::Entry& table = W(op.weights.at(0));
  const int64_t n = op.n;
  const int64_t vocab = table.desc().rows;
  std::vector<float> scratch;
  const float* tok;
  CB_RETURN_IF_ERROR(Input(op.in, 1, &tok));
  float* out = Output(op.out, n);
  for (int64_t t = 0; t < tokens_; ++t) {
    const int64_t id = static_cast<int64_t>(tok[t]);
    if (id < 0 || id >= vocab) {
      return Status::InvalidInput("token id " + std::to_string(id) + " outside the vocabulary");
    }
    std::copy_n(table.Rows(id, 1, &scratch), n, out + t * n);
  }
  return Status::Ok();
}

Status ReferenceSession::RmsNormOp(const Op& op) {
  std::vector<float> scratch;
  const float* w = W(op.weights.at(0)).Rows(0, 1, &scratch);
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
  std::vector<QuantRow> x(m_rows);
  for (int64_t m = 0; m < m_rows; ++m) QuantizeInput(act_, in + m * k, k, &x[m]);
  int64_t n0 = 0;  // first output column of the current weight
  for (const std::string& name : op.weights) {
    const RefWeights::Entry& w = W(name);
    const int64_t rows = w.desc().rows;
    if (w.desc().cols != k) return Status::InvalidInput("matmul weight " + name + " is not k wide");
    if (n0 + rows > n) return Status::InvalidInput("matmul weights are wider than n");
#pragma omp parallel
    {
      std::vector<float> scratch;
#pragma omp for schedule(static)
      for (int64_t r = 0; r < rows; ++r) {
        const float* wr = w.Rows(r, 1, &scratch);
        for (int64_t m = 0; m < m_rows; ++m) {
          out[m * n + n0 + r] = static_cast<float>(w.scale() * QDot(x[m], wr));
        }
      }
    }
    n0 += rows;
  }
  if (n0 != n) return Status::InvalidInput("matmul weights do not add up to n");
  return Status::Ok();
}

Status ReferenceSession::QkNormOp(const Op& op) {
  std::vector<float> sq, sk;
  const float* wq = W(op.weights.at(0)).Rows(0, 1, &sq);
  const float* wk = W(op.weights.at(1)).Rows(0, 1, &sk);
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
      const float* w = h < dims_.heads ? wq : wk;
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
  const bool kv_round =
      IsQuantized(kv_dtype_) || (kv_dtype_ == DType::kBF16 && cfg_.dtype != DType::kBF16);
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
      float* k_row = kv.k.data() + (s.past_len + j) * kv_w;
      float* v_row = kv.v.data() + (s.past_len + j) * kv_w;
      std::copy_n(r + heads * hd, kv_w, k_row);
      std::copy_n(r + (heads + kvh) * hd, kv_w, v_row);
      if (kv_round) {  // per KV head: an 8-bit cache's scales are per (token, head)
        for (int64_t g = 0; g < kvh; ++g) {
          RoundKvHead(kv_dtype_, k_row + g * hd, hd);
          RoundKvHead(kv_dtype_, v_row + g * hd, hd);
        }
      }
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

}  // namespace cb
