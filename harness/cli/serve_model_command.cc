// `clusterbench serve-model`: an OpenAI-compatible server (docs/endpoint.md) over the project's
// own continuous batching and backends, so a simulated cluster can sit behind the same API as
// a real serving stack, and so the endpoint client has a real server to be tested against.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "backends/registry.h"
#include "harness/cancel.h"
#include "harness/cli/commands.h"
#include "harness/serve_model/openai_server.h"
#include "harness/serve_model/serving_engine.h"
#include "workloads/model_spec.h"
#include "workloads/op_stream.h"

namespace cb {
namespace {

struct ServeModelFlags {
  std::string model, backend = "cpu", dtype = "bf16", host = "127.0.0.1", served_name;
  std::string api_key_env;
  int port = 8000, threads = 256;
  int64_t batch = 8, max_prefill_tokens = 512, max_context = 0, kv_page_tokens = 16;
  uint64_t seed = 1;
  bool quiet = false;
};

int Fail(int code, const std::string& what) {
  std::fprintf(stderr, "clusterbench serve-model: %s\n", what.c_str());
  return code;
}

/// The session of `f.model` on `f.backend`, loaded with its synthetic weights.
Status OpenModel(const ServeModelFlags& f, const ModelSpec& model, DType dtype, int64_t max_context,
                 std::unique_ptr<Device>* device, OpStream* stream,
                 std::unique_ptr<Session>* session) {
  CB_RETURN_IF_ERROR(OpenDevice(f.backend, device));
  const Support support = (*device)->Supports(dtype);
  if (!support.supported) {
    return Status::InvalidInput("--dtype " + f.dtype + " on " + f.backend + ": " + support.reason);
  }
  CB_RETURN_IF_ERROR(
      BuildDenseDecoderStream(model, ShardSpec{}, static_cast<int>(model.num_layers), stream));
  SessionConfig cfg;
  cfg.dtype = dtype;
  cfg.max_sequences = f.batch;
  cfg.max_context = max_context;
  cfg.max_step_tokens = f.max_prefill_tokens + f.batch;
  CB_RETURN_IF_ERROR((*device)->Open(cfg, session));
  return (*session)->Load(*stream, WeightSource(f.seed));
}

int ServeModel(const ServeModelFlags& f) {
  ModelSpec model;
  if (Status s = LoadModelSpec(f.model, &model); !s.ok()) return Fail(2, "--model: " + s.message());
  const auto dtype = ParseDType(f.dtype);
  if (!dtype) return Fail(2, "--dtype '" + f.dtype + "': allowed values: " + kDTypeNames);
  if (f.batch < 1 || f.max_prefill_tokens < 1 || f.kv_page_tokens < 1 || f.threads < 1) {
    return Fail(2, "--batch, --max-prefill-tokens, --kv-page-tokens and --threads must be >= 1");
  }
  const int64_t context = f.max_context > 0 ? std::min(f.max_context, model.max_context)
                                            : std::min<int64_t>(model.max_context, 4096);
  OpenAiServerOptions so;
  so.host = f.host;
  so.port = f.port;
  so.threads = f.threads;
  so.model = f.served_name.empty() ? model.name : f.served_name;
  so.max_context = context;
  so.vocab = model.vocab_size;
  if (!f.api_key_env.empty()) {
    const char* key = std::getenv(f.api_key_env.c_str());
    if (key == nullptr || *key == '\0') {
      return Fail(2, "--api-key-env " + f.api_key_env + ": the variable is not set (or empty)");
    }
    so.api_key = key;
  }
  InstallCancelHandlers();
  std::unique_ptr<Device> device;
  OpStream stream;
  std::unique_ptr<Session> session;
  if (!f.quiet) std::fprintf(stderr, "clusterbench serve-model: loading %s\n", model.name.c_str());
  if (Status s = OpenModel(f, model, *dtype, context, &device, &stream, &session); !s.ok()) {
    return Fail(s.ExitCode(), s.message());
  }
  EngineConfig ec;
  ec.slots = f.batch;
  ec.max_prefill_tokens = f.max_prefill_tokens;
  ec.kv_page_tokens = f.kv_page_tokens;
  ec.kv_pages = f.batch * ((context + f.kv_page_tokens - 1) / f.kv_page_tokens);
  ec.vocab = stream.dims.vocab_full;
  ec.max_context = context;
  ServingEngine engine(*session, device->clock(), stream, ec);
  engine.Start();
  std::unique_ptr<OpenAiServer> server;
  if (Status s = OpenAiServer::Start(&engine, so, &server); !s.ok()) return Fail(1, s.message());
  // One line on stderr that scripts (and the tests) read the port from.
  std::fprintf(stderr,
               "clusterbench serve-model: listening on http://%s:%d/v1 (model %s on %s %s, "
               "batch %lld, context %lld)\n",
               f.host.c_str(), server->port(), so.model.c_str(), f.backend.c_str(), f.dtype.c_str(),
               static_cast<long long>(f.batch), static_cast<long long>(context));
  std::fflush(stderr);
  while (!CancelRequested()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  engine.Stop();   // open streams end (with an error event) at once
  server.reset();  // then the HTTP threads, which no longer wait for tokens
  if (!f.quiet) {
    std::fprintf(stderr, "clusterbench serve-model: stopped after %lld requests\n",
                 static_cast<long long>(engine.served()));
  }
  return 0;
}

}  // namespace

CommandFn AddServeModelCommand(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "serve-model",
      "Serve a model over an OpenAI-compatible API (completions, chat completions, streaming, "
      "usage) with clusterbench's continuous batching on cpu, reference or sim:DEVICE; stops on "
      "SIGINT/SIGTERM");
  auto f = std::make_shared<ServeModelFlags>();
  cmd->add_option("--model", f->model, "Model preset name or JSON file")->required();
  cmd->add_option("--backend", f->backend, "cpu (default), reference, sim or sim:DEVICE");
  cmd->add_option("--dtype", f->dtype, "fp32 or bf16 (default)");
  cmd->add_option("--host", f->host, "Address to listen on (default 127.0.0.1: loopback only)");
  cmd->add_option("--port", f->port, "Port (default 8000; 0 picks a free one, printed on stderr)")
      ->check(CLI::Range(0, 65535));
  cmd->add_option("--served-model-name", f->served_name,
                  "The model's name in the API (default: the preset's name)");
  cmd->add_option("--api-key-env", f->api_key_env,
                  "Require the key in this environment variable as a Bearer token");
  cmd->add_option("--batch", f->batch, "Sequence slots of the running batch (default 8)");
  cmd->add_option("--max-prefill-tokens", f->max_prefill_tokens,
                  "Chunked prefill: most prompt tokens per step (default 512)");
  cmd->add_option("--max-context", f->max_context,
                  "Tokens per sequence, prompt + output (default: the model's, at most 4096)");
  cmd->add_option("--kv-page-tokens", f->kv_page_tokens, "Tokens per KV page (default 16)");
  cmd->add_option("--seed", f->seed, "Seed of the synthetic weights (default 1)");
  cmd->add_option("--threads", f->threads,
                  "HTTP connections served at once; each open stream holds one (default 256)");
  cmd->add_flag("--quiet,-q", f->quiet, "No progress on stderr");
  return [f] { return ServeModel(*f); };
}

}  // namespace cb
