#pragma once

#include <memory>
#include <string>

#include "harness/core/status.h"
#include "harness/serve_model/serving_engine.h"

struct mg_context;
struct mg_connection;

namespace cb {

struct OpenAiServerOptions {
  std::string host = "127.0.0.1";
  int port = 8000;      ///< 0: a free port (port() says which)
  int threads = 256;    ///< connections served at once (each open stream holds one)
  std::string model;    ///< the name the server serves under
  std::string api_key;  ///< when not empty, requests need "Authorization: Bearer KEY"
  int64_t max_context = 0;
  int64_t vocab = 0;
};

/// clusterbench serve-model's HTTP side: an OpenAI-compatible API on civetweb (the HTTP server
/// prometheus-cpp's pull library already brings): GET /v1/models, POST /v1/completions and
/// /v1/chat/completions (streamed as server-sent events with a final usage chunk when asked,
/// or whole), GET /health. Prompts are tokenized one word to one token (word_text.h); token
/// ids are accepted as a completions prompt. Each request is handed to the ServingEngine and
/// its tokens are written as they are sampled.
class OpenAiServer {
 public:
  static Status Start(ServingEngine* engine, const OpenAiServerOptions& options,
                      std::unique_ptr<OpenAiServer>* out);
  ~OpenAiServer();
  int port() const { return port_; }

 private:
  OpenAiServer(ServingEngine* engine, OpenAiServerOptions options);
  static int Handle(mg_connection* conn, void* self);
  int Serve(mg_connection* conn);
  int Generate(mg_connection* conn, bool chat, const std::string& body);

  ServingEngine* engine_;
  OpenAiServerOptions opt_;
  mg_context* ctx_ = nullptr;
  int port_ = 0;
};

}  // namespace cb
