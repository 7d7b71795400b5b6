// The reference's MoE and MLA ops: the router in double (and, replaying another backend's
// routes, the check of each differing decision against the router's margin), the experts token
// by token, MLA naively (every cached latent up-projected into each head's K and V).
#include <algorithm>
#include <cmath>

#include "backends/reference/reference_session.h"
#include "workloads/moe_routing.h"
#include "workloads/quant.h"

namespace cb {

void ReferenceSession::RouterLogits(const Op& op, const float* h, std::vector<double>* logits,
                                    std::vector<double>* abs_dot) const {
  const int64_t e = op.n, hidden = op.k;
  const RefWeights::Entry& gate = W(op.weights.at(0));
  logits->assign(tokens_ * e, 0.0);
  abs_dot->assign(tokens_ * e, 0.0);
#pragma omp parallel
  {
    std::vector<float> scratch;
#pragma omp for schedule(static)
    for (int64_t i = 0; i < e; ++i) {
      const float* g = gate.Rows(i, 1, &scratch);
      for (int64_t t = 0; t < tokens_; ++t) {
        const float* x = h + t * hidden;
        double a = 0;
        for (int64_t c = 0; c < hidden; ++c) a += std::fabs(static_cast<double>(x[c]) * g[c]);
        (*logits)[t * e + i] = Dot(x, g, hidden) + RoutingSkewBias(zipf_s_, i);
        (*abs_dot)[t * e + i] = a;
      }
    }
  }
}

namespace {

/// The deviation of a backend's gate logits from the reference's for one token: per expert
/// |backend - reference| into `dev`; returns max |deviation| / max |reference logit|.
double LogitDeviation(const float* backend, const double* reference, int64_t experts, double zipf_s,
                      double* dev) {
  double max_dev = 0, max_ref = 0;
  for (int64_t i = 0; i < experts; ++i) {
    const double ref = reference[i] - RoutingSkewBias(zipf_s, i);
    dev[i] = std::fabs(static_cast<double>(backend[i]) - ref);
    max_dev = std::max(max_dev, dev[i]);
    max_ref = std::max(max_ref, std::fabs(ref));
  }
  return max_ref > 0 ? max_dev / max_ref : max_dev;
}

}  // namespace

Status ReferenceSession::RouterOp(const Op& op, StepIO& io) {
  std::vector<float> bias_scratch;
  const float* bias = op.weights.size() > 1 ? W(op.weights[1]).Rows(0, 1, &bias_scratch) : nullptr;
  const int64_t e = op.n, hidden = op.k, k = dims_.top_k;
  const float* h;
  CB_RETURN_IF_ERROR(Input(op.in, hidden, &h));
  float* out = Output(op.out, 2 * k);
  std::vector<double> logits, abs_dot, sel, weights(k), dev(e), tol(e);
  RouterLogits(op, h, &logits, &abs_dot);
  if (io.record_routes) {  // the gate's logits, without the workload's skew bias
    if (static_cast<int>(io.route_logits.size()) < layers_) io.route_logits.resize(layers_);
    std::vector<float>& raw = io.route_logits[op.layer];
    raw.resize(tokens_ * e);
    for (int64_t i = 0; i < tokens_ * e; ++i) {
      raw[i] = static_cast<float>(logits[i] - RoutingSkewBias(zipf_s_, i % e));
    }
  }
  std::vector<char> eligible;
  std::vector<int64_t> ids(k), theirs(k);
  auto layer_rows = [&](const std::vector<std::vector<float>>* v, int64_t width) {
    const bool ok = v != nullptr && op.layer < static_cast<int>(v->size()) &&
                    (*v)[op.layer].size() == static_cast<size_t>(tokens_ * width);
    return ok ? (*v)[op.layer].data() : nullptr;
  };
  const float* replay = layer_rows(io.replay_routes, 2 * k);
  const float* backend_logits = replay ? layer_rows(io.replay_logits, e) : nullptr;
  const double u = HighPrecisionOf(cfg_.dtype) == DType::kBF16 ? 0x1p-8 : 0x1p-24;  // unit roundoff
  for (int64_t t = 0; t < tokens_; ++t) {
    double* scores = logits.data() + t * e;
    if (backend_logits != nullptr) {
      io.route_logit_error =
          std::max(io.route_logit_error,
                   LogitDeviation(backend_logits + t * e, scores, e, zipf_s_, dev.data()));
    } else {
      for (int64_t i = 0; i < e; ++i) dev[i] = kRoutingRoundings * u * abs_dot[t * e + i];
    }
    const double mx = *std::max_element(scores, scores + e);
    if (moe_.scoring == "softmax") {
      double sum = 0;
      for (int64_t i = 0; i < e; ++i) sum += (scores[i] = std::exp(scores[i] - mx));
      for (int64_t i = 0; i < e; ++i) scores[i] /= sum;
    } else {
      for (int64_t i = 0; i < e; ++i) scores[i] = 1.0 / (1.0 + std::exp(-scores[i]));
    }
    SelectExperts<double>(moe_, scores, bias, ids.data(), weights.data(), sel, eligible);
    if (replay != nullptr) {
      // Another backend's choice (ascending ids); the weights are this side's scores of it.
      double sum = 0;
      for (int64_t j = 0; j < k; ++j) {
        theirs[j] = static_cast<int64_t>(replay[t * 2 * k + j]);
        if (theirs[j] < 0 || theirs[j] >= e) {
          return Status::InvalidInput("replayed route names no expert");
        }
        sum += weights[j] = scores[theirs[j]];
      }
      for (int64_t j = 0; j < k; ++j) {
        if (moe_.norm_topk) weights[j] /= sum + 1e-20;
        weights[j] *= moe_.routed_scaling;
      }
      ++io.route_decisions;
      if (theirs != ids) {
        ++io.route_mismatches;
        RoutingTolerance(moe_, scores, dev.data(), tol.data());
        if (!FlipWithinMargin(moe_, sel.data(), tol.data(), ids.data(), theirs.data())) {
          ++io.route_beyond_margin;
        }
      }
      ids = theirs;
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
  const RefWeights::Entry& gate_up = W(op.weights.at(0));
  const RefWeights::Entry& down = W(op.weights.at(1));
  const int64_t hidden = dims_.hidden, f = dims_.expert_ffn, k = dims_.top_k;
  const float *h, *route;
  CB_RETURN_IF_ERROR(Input(op.in, hidden, &h));
  CB_RETURN_IF_ERROR(Input(Buf::kRoute, 2 * k, &route));
  float* out = Output(op.out, hidden);
  // Expert by expert (its weights made once), the tokens routed to it; a token's experts are
  // added in route order, as the loop over experts in ascending id visits them.
  std::vector<double> acc(tokens_ * hidden, 0.0);
  std::vector<QuantRow> hq(tokens_);
  for (int64_t t = 0; t < tokens_; ++t) QuantizeInput(act_, h + t * hidden, hidden, &hq[t]);
  for (int64_t e = 0; e < dims_.local_experts; ++e) {
    std::vector<int64_t> tokens;
    std::vector<double> weight;
    for (int64_t t = 0; t < tokens_; ++t) {
      for (int64_t j = 0; j < k; ++j) {
        if (static_cast<int64_t>(route[t * 2 * k + j]) != dims_.expert_begin + e) continue;
        tokens.push_back(t);
        weight.push_back(route[t * 2 * k + k + j]);
      }
    }
    if (tokens.empty()) continue;
    const int64_t n = static_cast<int64_t>(tokens.size());
    std::vector<double> act(n * f);
    std::vector<QuantRow> aq(act_ == ActQuant::kNone ? 0 : n);
#pragma omp parallel
    {
      std::vector<float> sg, su;
#pragma omp for schedule(static)
      for (int64_t i = 0; i < f; ++i) {
        const float* g = gate_up.Rows(e * 2 * f + i, 1, &sg);
        const float* u = gate_up.Rows(e * 2 * f + f + i, 1, &su);
        for (int64_t m = 0; m < n; ++m) {
          const double gv = gate_up.scale() * QDot(hq[tokens[m]], g);
          act[m * f + i] = gv / (1.0 + std::exp(-gv)) * gate_up.scale() * QDot(hq[tokens[m]], u);
        }
      }
      // A quantised session quantises each SwiGLU row (as fp32) for the down projection.
#pragma omp for schedule(static)
      for (int64_t m = 0; m < static_cast<int64_t>(aq.size()); ++m) {
        std::vector<float> row(act.begin() + m * f, act.begin() + (m + 1) * f);
        QuantizeInput(act_, row.data(), f, &aq[m]);
      }
      std::vector<float> sd;
#pragma omp for schedule(static)
      for (int64_t r = 0; r < hidden; ++r) {
        const float* d = down.Rows(e * hidden + r, 1, &sd);
        for (int64_t m = 0; m < n; ++m) {
          double y = 0;
          if (aq.empty()) {
            for (int64_t i = 0; i < f; ++i) y += act[m * f + i] * d[i];
          } else {
            y = down.scale() * QDot(aq[m], d);
          }
          acc[tokens[m] * hidden + r] += weight[m] * y;
        }
      }
    }
  }
  for (int64_t i = 0; i < tokens_ * hidden; ++i) out[i] = static_cast<float>(acc[i]);
  return Status::Ok();
}

Status ReferenceSession::MlaKvNormOp(const Op& op) {
  std::vector<float> scratch;
  const float* w = W(op.weights.at(0)).Rows(0, 1, &scratch);
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
  const RefWeights::Entry& kv_b = W(op.weights.at(0));
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
    if (act_ != ActQuant::kNone) {  // a quantised session's latent cache is bf16, as the GQA one
      for (int64_t i = s.past_len * c_w; i < len * c_w; ++i) {
        kv.k[i] = RoundTo(DType::kBF16, kv.k[i]);
      }
    }
    kv.valid = len;
    // Naive form: up-project every cached latent into each head's K (nope part) and V.
    std::vector<double> keys(len * heads * nope), vals(len * heads * v);
#pragma omp parallel
    {
      std::vector<float> scratch;
#pragma omp for schedule(static)
      for (int64_t hr = 0; hr < heads * (nope + v); ++hr) {  // each row of kv_b made once
        const int64_t h = hr / (nope + v), r = hr % (nope + v);
        const float* wr = kv_b.Rows(hr, 1, &scratch);
        for (int64_t t = 0; t < len; ++t) {
          const double acc = Dot(kv.k.data() + t * c_w, wr, lora);
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

}  // namespace cb
