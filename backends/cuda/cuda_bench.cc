// cuda_bench: the CUDA backend's performance check (ci/gpu, docs/cuda.md). In one run on one
// GPU it measures two ceilings and the model:
//  - copy bandwidth: device-to-device cudaMemcpy of 2 GiB counted as read + write bytes;
//  - GEMM peak: cuBLAS in the run's dtype -> fp32 (fp32 accumulation), 8192^3 on random data,
//    the same call the backend makes (backends/cuda/cuda_ceilings.cc);
//  - prefill of --prompt tokens (batch 1): tokens/s and MFU = step FLOPs / time / GEMM peak;
//  - decode at batch 1 after that prompt: tokens/s and MBU = weight bytes of a step / step
//    time / copy bandwidth;
//  - decode at --batch sequences of --batch-prompt tokens: tokens/s;
//  - with --quant-gemm ROWS, the int8 and fp8 GEMMs (quant_gemm.h) of ROWS x 8192 by
//    8192 x 8192 weights: TFLOP/s of QuantGemm::Run, activation quantisation and epilogue
//    included, for int8 and for each fp8 path this GPU can take.
// FLOPs and weight bytes come from workloads/op_cost (the same figures the harness uses). It
// also reports which paths ran ($CB_CUDA_DISABLE, counts by route) and whether decode steps
// were replayed as CUDA graphs, and why not. A phase that fails is reported and the later ones
// still run where they can. Prints one JSON object (also to --out FILE). Exit 0 when every
// phase ran, 2 on bad flags, 1 otherwise.

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/cuda_ceilings.h"
#include "backends/cuda/cuda_check.h"
#include "backends/cuda/cuda_session.h"
#include "backends/cuda/kernels.h"
#include "backends/cuda/quant_gemm.h"
#include "backends/cuda/quant_kernels.h"
#include "workloads/model_spec.h"
#include "workloads/op_cost.h"
#include "workloads/op_stream.h"
#include "workloads/weights.h"

namespace cb {
namespace {

using nlohmann::json;

struct Flags {
  std::string model = "llama-3.1-8b";
  std::string dtype = "bf16";
  int64_t prompt = 2048, gen = 64, batch = 32, batch_prompt = 128;
  int layers = 0;          ///< 0: all
  int64_t quant_gemm = 0;  ///< rows of the int8 / fp8 GEMM measurement; 0: not measured
  std::string out;
};

int Usage(const std::string& why) {
  std::fprintf(
      stderr,
      "cuda_bench: %s\nusage: cuda_bench [--model NAME|FILE] [--dtype bf16|fp16|fp32] "
      "[--prompt N] [--gen N] [--batch N] [--batch-prompt N] [--layers N] [--quant-gemm ROWS] "
      "[--out FILE]\n",
      why.c_str());
  return 2;
}

bool ParseInt(const char* s, int64_t* v) {
  char* end = nullptr;
  *v = std::strtoll(s, &end, 10);
  return end != s && *end == '\0' && *v > 0;
}

/// Parses argv into `f`; a non-empty return is the usage error.
std::string ParseFlags(int argc, char** argv, Flags* f) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) return "flag " + a + " needs a value";
    const char* v = argv[++i];
    int64_t n = 0;
    if (a == "--model") {
      f->model = v;
    } else if (a == "--dtype") {
      f->dtype = v;
    } else if (a == "--out") {
      f->out = v;
    } else if (!ParseInt(v, &n)) {
      return "flag " + a + " needs a positive integer, got '" + v + "'";
    } else if (a == "--prompt") {
      f->prompt = n;
    } else if (a == "--gen") {
      f->gen = n;
    } else if (a == "--batch") {
      f->batch = n;
    } else if (a == "--batch-prompt") {
      f->batch_prompt = n;
    } else if (a == "--layers") {
      f->layers = static_cast<int>(n);
    } else if (a == "--quant-gemm") {
      f->quant_gemm = n;
    } else {
      return "unknown flag " + a;
    }
  }
  if (!ParseDType(f->dtype)) return "--dtype must be bf16, fp16 or fp32, got '" + f->dtype + "'";
  if (f->gen < 4) return "--gen must be at least 4 (two warm-up steps are not timed)";
  return "";
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

struct Phase {
  double seconds = 0;  ///< median step time
  OpCost cost;
};

/// Prefill of `prompt` tokens in slot 0: one warm-up, then the median of three.
Status RunPrefill(Device& dev, Session& s, const OpStream& stream, int64_t prompt, DType dtype,
                  Phase* r) {
  std::vector<double> times;
  for (int k = 0; k < 4; ++k) {
    StepIO io = Prefill({0}, prompt, stream.dims.vocab_full);
    double t = 0;
    CB_RETURN_IF_ERROR(TimedStep(dev, s, stream, io, &t));
    if (k > 0) times.push_back(t);
    if (k == 0) r->cost = CostOfOps(stream, 0, stream.ops.size(), io, dtype);
  }
  r->seconds = Median(times);
  return Status::Ok();
}

/// `steps` decode steps of `seqs` sequences after `past` cached tokens; the median step time
/// of all but the first two (graph capture, warm-up).
Status RunDecode(Device& dev, Session& s, const OpStream& stream, int64_t seqs, int64_t past,
                 int64_t steps, DType dtype, Phase* r) {
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
  r->seconds = Median(times);
  return Status::Ok();
}

json Windows(const CeilingWindows& w, double rate) {
  return {{"rate", rate},
          {"window_seconds", w.seconds},
          {"iterations", w.iterations},
          {"windows", w.windows},
          {"min", w.min},
          {"max", w.max}};
}

/// Which paths the session had and used, and the CUDA graphs' story.
json PathReport(const Session& s) {
  const auto* cs = dynamic_cast<const cuda::CudaSession*>(&s);
  if (cs == nullptr) return {{"error", "not a CUDA session"}};
  const char* disabled = std::getenv("CB_CUDA_DISABLE");
  json graphs = {{"enabled", cs->paths()(cuda::Path::kGraphs)},
                 {"replays", cs->graph_replays()},
                 {"captures", cs->graph_captures()},
                 {"eager_decode_steps", cs->eager_decode_steps()},
                 {"note", cs->graph_note()}};
  if (cs->graph_replays() == 0 && cs->graph_note().empty()) {
    graphs["note"] = "no decode step was replayed as a CUDA graph";
  }
  return {{"cuda_disable", disabled != nullptr ? disabled : ""},
          {"enabled", cs->paths().EnabledList()},
          {"counts", cs->path_counts()},
          {"graphs", graphs}};
}

/// Device memory of one measurement, freed with it.
struct DeviceScratch {
  std::vector<void*> ptrs;
  ~DeviceScratch() {
    for (void* p : ptrs) cudaFree(p);
  }
  Status Get(void** p, uint64_t bytes, const std::string& what) {
    CB_RETURN_IF_ERROR(cuda::CudaStatus(cudaMalloc(p, bytes), ("cudaMalloc for " + what).c_str()));
    ptrs.push_back(*p);
    return Status::Ok();
  }
};

/// Weights [n, k] of random codes: uniform fp32 quantised per row by the activation quantiser
/// (int8: per-channel scales as the packer makes them; fp8: one block scale everywhere).
Status RandomQuantWeights(DType dtype, int64_t n, int64_t k, DeviceScratch* mem,
                          cuda::QuantWeights* w) {
  w->dtype = dtype;
  w->n = w->n_pad = n;  // multiples of 16 here
  w->k = w->k_pad = k;
  const int64_t groups = (k + cuda::kQuantBlock - 1) / cuda::kQuantBlock;
  w->scale_ld = cuda::QuantRoundUp(groups, 4);
  void *f32 = nullptr, *codes = nullptr, *scales = nullptr, *row_scales = nullptr;
  CB_RETURN_IF_ERROR(mem->Get(&f32, n * k * sizeof(float), "random weights"));
  CB_RETURN_IF_ERROR(mem->Get(&codes, n * k, "weight codes"));
  CB_RETURN_IF_ERROR(mem->Get(&row_scales, groups * n * sizeof(float), "weight scales"));
  CB_CUDA(cuda::LaunchFillUniform(f32, DType::kF32, n * k, 5, 0.05f, nullptr));
  cuda::QuantizeArgs q;
  q.x = f32;
  q.x_ld = k;
  q.rows = q.rows_pad = n;
  q.k = q.k_pad = k;
  q.q = static_cast<uint8_t*>(codes);
  q.scales = static_cast<float*>(row_scales);
  CB_CUDA(dtype == DType::kInt8 ? cuda::LaunchQuantizeInt8(q, nullptr)
                                : cuda::LaunchQuantizeFp8(q, nullptr));
  scales = row_scales;
  if (dtype == DType::kFP8) {
    const std::vector<float> block(static_cast<size_t>(n / cuda::kQuantBlock * w->scale_ld),
                                   0.05f / 448.0f);
    CB_RETURN_IF_ERROR(mem->Get(&scales, block.size() * sizeof(float), "block scales"));
    CB_CUDA(cudaMemcpy(scales, block.data(), block.size() * sizeof(float), cudaMemcpyHostToDevice));
  }
  CB_CUDA(cudaDeviceSynchronize());
  w->codes = static_cast<const uint8_t*>(codes);
  w->scales = static_cast<const float*>(scales);
  return Status::Ok();
}

/// Seconds per QuantGemm::Run of rows x k by the weights: 3 warm-up runs, then the median of
/// 5 windows of 10 runs timed with events.
Status TimeQuantGemm(cuda::QuantGemm& gemm, const cuda::QuantGemmArgs& a, double* seconds) {
  cudaEvent_t start = nullptr, stop = nullptr;
  CB_CUDA(cudaEventCreate(&start));
  CB_CUDA(cudaEventCreate(&stop));
  std::vector<double> windows;
  Status st = Status::Ok();
  for (int i = 0; i < 3 && st.ok(); ++i) st = gemm.Run(a, nullptr);
  for (int w = 0; w < 5 && st.ok(); ++w) {
    cudaEventRecord(start, nullptr);
    for (int i = 0; i < 10 && st.ok(); ++i) st = gemm.Run(a, nullptr);
    cudaEventRecord(stop, nullptr);
    float ms = 0;
    if (st.ok()) st = cuda::CudaStatus(cudaEventSynchronize(stop), "cudaEventSynchronize");
    if (st.ok()) st = cuda::CudaStatus(cudaEventElapsedTime(&ms, start, stop), "cudaEventElapsed");
    windows.push_back(ms * 1e-3 / 10);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  *seconds = Median(windows);
  return st;
}

/// The int8 GEMM and each fp8 path this GPU takes, rows x 8192 by 8192 x 8192.
json MeasureQuantGemms(int64_t rows) {
  constexpr int64_t kN = 8192, kK = 8192;
  json out = {{"rows", rows},
              {"n", kN},
              {"k", kK},
              {"how",
               "median of 5 windows of 10 QuantGemm::Run (quantise x, cuBLASLt, epilogue); "
               "fp32 x and y; random codes"}};
  int dev = 0, major = 0, minor = 0;
  cudaGetDevice(&dev);
  cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev);
  cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev);
  struct Case {
    const char* name;
    DType dtype;
    cuda::Fp8Path path;
  };
  for (const Case& c : {Case{"int8", DType::kInt8, cuda::Fp8Path::kAuto},
                        Case{"fp8_block_scaled", DType::kFP8, cuda::Fp8Path::kBlockScaled},
                        Case{"fp8_k_sliced", DType::kFP8, cuda::Fp8Path::kSliced}}) {
    std::string why;
    if (!cuda::QuantGemmSupported(c.dtype, major, minor, &why)) {
      out[c.name] = {{"skipped", why}};
      continue;
    }
    DeviceScratch mem;
    cuda::QuantWeights w;
    cuda::QuantGemm gemm;
    cuda::QuantGemmArgs a;
    void *x = nullptr, *y = nullptr;
    Status st = RandomQuantWeights(c.dtype, kN, kK, &mem, &w);
    if (st.ok()) st = mem.Get(&x, rows * kK * sizeof(float), "x");
    if (st.ok()) st = mem.Get(&y, rows * kN * sizeof(float), "y");
    if (st.ok())
      st = cuda::CudaStatus(cuda::LaunchFillUniform(x, DType::kF32, rows * kK, 9, 1.0f, nullptr),
                            "fill x");
    if (st.ok()) st = gemm.Init(rows, kN, kK);
    gemm.set_fp8_path(c.path);
    a.w = &w;
    a.x = x;
    a.x_ld = kK;
    a.rows = rows;
    a.y = static_cast<float*>(y);
    a.y_ld = kN;
    double seconds = 0;
    if (st.ok()) st = TimeQuantGemm(gemm, a, &seconds);
    if (!st.ok()) {
      out[c.name] = {{st.code() == StatusCode::kUnsupported ? "skipped" : "error", st.message()}};
      continue;
    }
    out[c.name] = {{"seconds", seconds}, {"tflops", 2.0 * rows * kN * kK / seconds / 1e12}};
  }
  return out;
}

/// Loads the model and runs the three phases into `out`, recording each phase's failure.
bool RunModel(const Flags& f, DType dtype, const OpStream& stream, Device& dev, double copy_bw,
              double gemm_peak, json* out) {
  SessionConfig cfg;
  cfg.dtype = dtype;
  cfg.max_sequences = std::max<int64_t>(1, f.batch);
  cfg.max_context = std::max(f.prompt, f.batch_prompt) + f.gen;
  cfg.max_step_tokens = std::max(f.prompt, f.batch_prompt);
  std::unique_ptr<Session> s;
  Status st = dev.Open(cfg, &s);
  if (st.ok()) {
    std::fprintf(stderr, "cuda_bench: loading %s (%d layers)...\n", stream.model.name.c_str(),
                 stream.layers);
    st = s->Load(stream, WeightSource(1));
  }
  if (!st.ok()) {
    (*out)["errors"].push_back("load: " + st.message());
    return false;
  }
  bool ok = true;
  auto fail = [&](const char* phase, const Status& e) {
    std::fprintf(stderr, "cuda_bench: %s: %s\n", phase, e.message().c_str());
    (*out)["errors"].push_back(std::string(phase) + ": " + e.message());
    ok = false;
  };
  Phase pre, d1, dn;
  if (st = RunPrefill(dev, *s, stream, f.prompt, dtype, &pre); st.ok()) {
    (*out)["prefill"] = {{"prompt", f.prompt},
                         {"seconds", pre.seconds},
                         {"tokens_per_s", f.prompt / pre.seconds},
                         {"flops", pre.cost.flops},
                         {"mfu", pre.cost.flops / pre.seconds / gemm_peak}};
  } else {
    fail("prefill", st);
  }
  if (st = RunDecode(dev, *s, stream, 1, f.prompt, f.gen, dtype, &d1); st.ok()) {
    (*out)["decode_batch1"] = {{"past", f.prompt},
                               {"step_seconds", d1.seconds},
                               {"tokens_per_s", 1.0 / d1.seconds},
                               {"weight_bytes", d1.cost.weight_bytes},
                               {"mbu", d1.cost.weight_bytes / d1.seconds / copy_bw}};
  } else {
    fail("decode batch 1", st);
  }
  for (int64_t q = 0; q < f.batch && st.ok(); ++q) {
    StepIO io = Prefill({q}, f.batch_prompt, stream.dims.vocab_full);
    st = s->Run(stream, {0, stream.ops.size()}, io);
  }
  if (st.ok()) st = RunDecode(dev, *s, stream, f.batch, f.batch_prompt, f.gen, dtype, &dn);
  if (st.ok()) {
    (*out)["decode_batch"] = {
        {"batch", f.batch},
        {"past", f.batch_prompt},
        {"step_seconds", dn.seconds},
        {"tokens_per_s", f.batch / dn.seconds},
        {"mbu", (dn.cost.weight_bytes + dn.cost.kv_bytes) / dn.seconds / copy_bw}};
  } else {
    fail("decode batch", st);
  }
  (*out)["paths"] = PathReport(*s);
  return ok;
}

int Main(int argc, char** argv) {
  Flags f;
  if (const std::string why = ParseFlags(argc, argv, &f); !why.empty()) return Usage(why);
  const DType dtype = *ParseDType(f.dtype);
  ModelSpec spec;
  Status st = LoadModelSpec(f.model, &spec);
  if (!st.ok()) return Usage(st.message());
  OpStream stream;
  st = BuildDenseDecoderStream(spec, ShardSpec{}, f.layers > 0 ? f.layers : spec.num_layers,
                               &stream);
  if (!st.ok()) return Usage(st.message());

  json out = {{"model", spec.name},
              {"layers", stream.layers},
              {"model_layers", spec.num_layers},
              {"dtype", f.dtype},
              {"how", "measured: wall time of synchronised steps; ceilings measured in this run"},
              {"errors", json::array()}};
  std::unique_ptr<Device> dev;
  st = OpenCudaDevice(-1, &dev);
  if (!st.ok()) {
    std::fprintf(stderr, "cuda_bench: %s\n", st.message().c_str());
    out["errors"].push_back(st.message());
  }
  bool ok = st.ok();
  if (ok) {
    out["device"] = dev->Props().name;
    out["uuid"] = dev->Props().uuid;
    std::fprintf(stderr, "cuda_bench: %s (%s)\n", dev->Props().name.c_str(),
                 dev->Props().uuid.c_str());
    // Without ceilings the model still runs: MFU and MBU come out null (NaN).
    CudaCeilings ceilings;
    double copy_bw = NAN, gemm = NAN;
    if (st = MeasureCudaCeilings(-1, &ceilings); st.ok()) {
      const int d = static_cast<int>(dtype);
      copy_bw = ceilings.copy_bytes_per_s;
      gemm = ceilings.matmul_flops_per_s[d];
      std::fprintf(stderr, "cuda_bench: copy %.1f GB/s, %s GEMM %.1f TFLOP/s\n", copy_bw / 1e9,
                   f.dtype.c_str(), gemm / 1e12);
      out["ceilings"] = {{"source", ceilings.source},
                         {"copy", Windows(ceilings.copy, copy_bw)},
                         {"gemm", Windows(ceilings.matmul[d], gemm)}};
    } else {
      std::fprintf(stderr, "cuda_bench: ceilings: %s\n", st.message().c_str());
      out["errors"].push_back("ceilings: " + st.message());
    }
    out["copy_bandwidth_bytes_per_s"] = copy_bw;
    out["gemm_flops_per_s"] = gemm;
    ok = RunModel(f, dtype, stream, *dev, copy_bw, gemm, &out) && st.ok();
    if (f.quant_gemm > 0) {
      std::fprintf(stderr, "cuda_bench: int8 / fp8 GEMMs of %lld rows...\n",
                   static_cast<long long>(f.quant_gemm));
      out["quant_gemm"] = MeasureQuantGemms(f.quant_gemm);
    }
  }
  const std::string text = out.dump(2) + "\n";
  std::fputs(text.c_str(), stdout);
  if (!f.out.empty()) {
    std::ofstream file(f.out);
    file << text;
    if (!file) {
      std::fprintf(stderr, "cuda_bench: cannot write --out %s\n", f.out.c_str());
      return 1;
    }
  }
  return ok ? 0 : 1;
}

}  // namespace
}  // namespace cb

int main(int argc, char** argv) { return cb::Main(argc, argv); }
