#include "backends/reference/reference_backend.h"

#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "backends/reference/reference_session.h"

namespace cb {
namespace {

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

}  // namespace

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
  if (stream.dims.Mla() && kv_dtype_ != DefaultKvDType(cfg_.dtype)) {  // as the cpu backend
    return Status::Unsupported("this backend keeps an MLA model's latent KV cache in " +
                               std::string(DTypeName(DefaultKvDType(cfg_.dtype))) + ", not " +
                               std::string(DTypeName(kv_dtype_)));
  }
  weights_.Load(stream, weights, cfg_.dtype, options_.hold_limit);
  for (const Op& op : stream.ops) {
    for (const std::string& w : op.weights) {
      if (weights_.Find(w) == nullptr) {
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
  uint64_t bytes = weights_.HeldBytes();
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

namespace {

class ReferenceDevice final : public Device {
 public:
  explicit ReferenceDevice(const ReferenceOptions& options) : options_(options) {}
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
    return {};
  }
  Status Open(const SessionConfig& config, std::unique_ptr<Session>* out) override {
    if (config.kv_dtype == DType::kF16) {
      return Status::Unsupported("the reference backend does not model an fp16 KV cache");
    }
    const Support s = Supports(config.dtype);
    if (!s.supported) return Status::Unsupported(s.reason);
    *out = std::make_unique<ReferenceSession>(config, options_);
    return Status::Ok();
  }
  Clock& clock() override { return clock_; }
  EnergyMeter* energy() override { return nullptr; }

 private:
  ReferenceOptions options_;
  SteadyClock clock_;
};

}  // namespace

std::unique_ptr<Device> MakeReferenceDevice(const ReferenceOptions& options) {
  return std::make_unique<ReferenceDevice>(options);
}

}  // namespace cb
