// cuda_bench: the CUDA backend's performance check (ci/gpu, docs/cuda.md). In one run on one
// GPU it measures two ceilings and the model:
//  - copy bandwidth: device-to-device cudaMemcpy of 2 GiB, counted as read + write bytes;
//  - GEMM peak: cuBLAS in the run's dtype -> fp32 (fp32 accumulation), 8192^3, the same call
//    the backend makes (backends/cuda/cuda_ceilings.cc);
//  - prefill of --prompt tokens (batch 1): tokens/s and MFU = step FLOPs / time / GEMM peak;
//  - decode at batch 1 after that prompt: tokens/s and MBU = weight bytes of a step / step
//    time / copy bandwidth;
//  - decode at --batch sequences of --batch-prompt tokens: tokens/s.
// FLOPs and weight bytes come from workloads/op_cost (the same figures the harness uses).
// Prints one JSON object (also to --out FILE). Exit 0 on success, 2 on bad flags, 1 on errors.

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/cuda_ceilings.h"
#include "workloads/model_spec.h"
#include "workloads/op_cost.h"
#include "workloads/op_stream.h"
#include "workloads/weights.h"

namespace cb {
namespace {

struct Flags {
  std::string model = "llama-3.1-8b";
  std::string dtype = "bf16";
  int64_t prompt = 2048, gen = 64, batch = 32, batch_prompt = 128;
  int layers = 0;  ///< 0: all
  std::string out;
};

int Usage(const std::string& why) {
  std::fprintf(stderr,
               "cuda_bench: %s\nusage: cuda_bench [--model NAME|FILE] [--dtype bf16|fp16|fp32] "
               "[--prompt N] [--gen N] [--batch N] [--batch-prompt N] [--layers N] [--out FILE]\n",
               why.c_str());
  return 2;
}

bool ParseInt(const char* s, int64_t* v) {
  char* end = nullptr;
  *v = std::strtoll(s, &end, 10);
  return end != s && *end == '\0' && *v > 0;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

/// Wall time of one synchronised Run of the whole stream.
Status TimedStep(Device& dev, Session& s, const OpStream& stream, StepIO& io, double* seconds) {
  CB_RETURN_IF_ERROR(s.Synchronize());
  const double t0 = dev.clock().NowSeconds();
  CB_RETURN_IF_ERROR(s.Run(stream, {0, stream.ops.size()}, io));
  CB_RETURN_IF_ERROR(s.Synchronize());
  *seconds = dev.clock().NowSeconds() - t0;
  return Status::Ok();
}

StepIO Prefill(const std::vector<int64_t>& slots, int64_t prompt, int64_t vocab) {
  StepIO io;
  for (int64_t slot : slots) {
    io.seqs.push_back({slot, 0, prompt});
    for (int64_t p = 0; p < prompt; ++p) io.tokens.push_back(SyntheticToken(7, slot, p, vocab));
  }
  return io;
}

struct DecodeResult {
  double step_s = 0;
  OpCost cost;
};

/// `steps` decode steps of `seqs` sequences after `past` cached tokens; the median step time
/// of all but the first two (graph capture, warm-up).
Status Decode(Device& dev, Session& s, const OpStream& stream, int64_t seqs, int64_t past,
              int64_t steps, DType dtype, DecodeResult* r) {
  std::vector<int32_t> last(seqs, 1);
  std::vector<double> times;
  for (int64_t k = 0; k < steps; ++k) {
    StepIO io;
    for (int64_t q = 0; q < seqs; ++q) {
      io.seqs.push_back({q, past + k, 1});
      io.tokens.push_back(last[q]);
    }
    double t = 0;
    CB_RETURN_IF_ERROR(TimedStep(dev, s, stream, io, &t));
    for (int64_t q = 0; q < seqs; ++q) last[q] = io.next_tokens[q];
    if (k >= 2) times.push_back(t);
    if (k == steps / 2) r->cost = CostOfOps(stream, 0, stream.ops.size(), io, dtype);
  }
  r->step_s = Median(times);
  return Status::Ok();
}

int Main(int argc, char** argv) {
  Flags f;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) return Usage("flag " + a + " needs a value");
    const char* v = argv[++i];
    int64_t n = 0;
    if (a == "--model") {
      f.model = v;
    } else if (a == "--dtype") {
      f.dtype = v;
    } else if (a == "--out") {
      f.out = v;
    } else if (!ParseInt(v, &n)) {
      return Usage("flag " + a + " needs a positive integer, got '" + v + "'");
    } else if (a == "--prompt") {
      f.prompt = n;
    } else if (a == "--gen") {
      f.gen = n;
    } else if (a == "--batch") {
      f.batch = n;
    } else if (a == "--batch-prompt") {
      f.batch_prompt = n;
    } else if (a == "--layers") {
      f.layers = static_cast<int>(n);
    } else {
      return Usage("unknown flag " + a);
    }
  }
  const auto dtype = ParseDType(f.dtype);
  if (!dtype) return Usage("--dtype must be bf16, fp16 or fp32, got '" + f.dtype + "'");
  if (f.gen < 4) return Usage("--gen must be at least 4 (two warm-up steps are not timed)");

  ModelSpec spec;
  Status st = LoadModelSpec(f.model, &spec);
  if (!st.ok()) return Usage(st.message());
  OpStream stream;
  st = BuildDenseDecoderStream(spec, ShardSpec{}, f.layers > 0 ? f.layers : spec.num_layers,
                               &stream);
  if (!st.ok()) return Usage(st.message());

  std::unique_ptr<Device> dev;
  st = OpenCudaDevice(-1, &dev);
  if (!st.ok()) {
    std::fprintf(stderr, "cuda_bench: %s\n", st.message().c_str());
    return 1;
  }
  const DeviceProps props = dev->Props();
  std::fprintf(stderr, "cuda_bench: %s (%s)\n", props.name.c_str(), props.uuid.c_str());
  CudaCeilings ceilings;
  st = MeasureCudaCeilings(-1, &ceilings);
  if (!st.ok()) {
    std::fprintf(stderr, "cuda_bench: measuring the ceilings: %s\n", st.message().c_str());
    return 1;
  }
  const double copy_bw = ceilings.copy_bytes_per_s;
  const double gemm_peak = ceilings.matmul_flops_per_s[static_cast<int>(*dtype)];
  std::fprintf(stderr, "cuda_bench: copy %.1f GB/s, %s GEMM %.1f TFLOP/s\n", copy_bw / 1e9,
               f.dtype.c_str(), gemm_peak / 1e12);

  SessionConfig cfg;
  cfg.dtype = *dtype;
  cfg.max_sequences = std::max<int64_t>(1, f.batch);
  cfg.max_context = std::max(f.prompt, f.batch_prompt) + f.gen;
  cfg.max_step_tokens = std::max(f.prompt, f.batch_prompt);
  std::unique_ptr<Session> s;
  st = dev->Open(cfg, &s);
  if (st.ok()) {
    std::fprintf(stderr, "cuda_bench: loading %s (%d layers)...\n", spec.name.c_str(),
                 stream.layers);
    st = s->Load(stream, WeightSource(1));
  }
  const int64_t vocab = stream.dims.vocab_full;

  // Prefill, batch 1: one warm-up, then the median of three (each overwrites slot 0).
  std::vector<double> prefill_times;
  OpCost prefill_cost;
  for (int r = 0; r < 4 && st.ok(); ++r) {
    StepIO io = Prefill({0}, f.prompt, vocab);
    double t = 0;
    st = TimedStep(*dev, *s, stream, io, &t);
    if (r > 0) prefill_times.push_back(t);
    if (r == 0) prefill_cost = CostOfOps(stream, 0, stream.ops.size(), io, *dtype);
  }
  DecodeResult d1, dn;
  if (st.ok()) st = Decode(*dev, *s, stream, 1, f.prompt, f.gen, *dtype, &d1);
  for (int64_t q = 0; q < f.batch && st.ok(); ++q) {
    StepIO io = Prefill({q}, f.batch_prompt, vocab);
    st = s->Run(stream, {0, stream.ops.size()}, io);
  }
  if (st.ok()) st = Decode(*dev, *s, stream, f.batch, f.batch_prompt, f.gen, *dtype, &dn);
  if (!st.ok()) {
    std::fprintf(stderr, "cuda_bench: %s\n", st.message().c_str());
    return 1;
  }

  const double prefill_s = Median(prefill_times);
  const double model_layers = static_cast<double>(spec.num_layers);
  std::ostringstream js;
  js.precision(6);
  js << "{\n"
     << "  \"device\": \"" << props.name << "\", \"uuid\": \"" << props.uuid << "\",\n"
     << "  \"model\": \"" << spec.name << "\", \"layers\": " << stream.layers
     << ", \"model_layers\": " << model_layers << ", \"dtype\": \"" << f.dtype << "\",\n"
     << "  \"how\": \"measured: wall time of synchronised steps; ceilings measured in this run\",\n"
     << "  \"copy_bandwidth_bytes_per_s\": " << copy_bw << ",\n"
     << "  \"gemm_flops_per_s\": " << gemm_peak << ",\n"
     << "  \"prefill\": {\"prompt\": " << f.prompt << ", \"seconds\": " << prefill_s
     << ", \"tokens_per_s\": " << f.prompt / prefill_s << ", \"flops\": " << prefill_cost.flops
     << ", \"mfu\": " << prefill_cost.flops / prefill_s / gemm_peak << "},\n"
     << "  \"decode_batch1\": {\"past\": " << f.prompt << ", \"step_seconds\": " << d1.step_s
     << ", \"tokens_per_s\": " << 1.0 / d1.step_s << ", \"weight_bytes\": " << d1.cost.weight_bytes
     << ", \"mbu\": " << d1.cost.weight_bytes / d1.step_s / copy_bw << "},\n"
     << "  \"decode_batch\": {\"batch\": " << f.batch << ", \"past\": " << f.batch_prompt
     << ", \"step_seconds\": " << dn.step_s << ", \"tokens_per_s\": " << f.batch / dn.step_s
     << ", \"mbu\": " << (dn.cost.weight_bytes + dn.cost.kv_bytes) / dn.step_s / copy_bw
     << "}\n}\n";
  std::fputs(js.str().c_str(), stdout);
  if (!f.out.empty()) {
    std::ofstream out(f.out);
    out << js.str();
    if (!out) {
      std::fprintf(stderr, "cuda_bench: cannot write --out %s\n", f.out.c_str());
      return 1;
    }
  }
  return 0;
}

}  // namespace
}  // namespace cb

int main(int argc, char** argv) { return cb::Main(argc, argv); }
