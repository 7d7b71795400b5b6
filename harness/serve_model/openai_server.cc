#include "harness/serve_model/openai_server.h"

#include <civetweb.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>

#include "backends/endpoint/openai_protocol.h"
#include "backends/endpoint/word_text.h"

namespace cb {
namespace {

constexpr size_t kMaxBody = 16u << 20;

int SendJson(mg_connection* conn, int status, const std::string& body) {
  const char* reason = status == 200   ? "OK"
                       : status == 400 ? "Bad Request"
                       : status == 401 ? "Unauthorized"
                       : status == 404 ? "Not Found"
                       : status == 405 ? "Method Not Allowed"
                       : status == 413 ? "Payload Too Large"
                                       : "Internal Server Error";
  mg_printf(conn,
            "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
            "Cache-Control: no-cache\r\n\r\n",
            status, reason, body.size());
  mg_write(conn, body.data(), body.size());
  return status;
}

int SendError(mg_connection* conn, int status, const std::string& message) {
  return SendJson(conn, status,
                  FormatError(message,
                              status == 401  ? "authentication_error"
                              : status < 500 ? "invalid_request_error"
                                             : "server_error",
                              status));
}

bool ReadBody(mg_connection* conn, std::string* body) {
  const mg_request_info* ri = mg_get_request_info(conn);
  if (ri->content_length > static_cast<long long>(kMaxBody)) return false;
  char buf[16384];
  while (body->size() <= kMaxBody) {
    const int n = mg_read(conn, buf, sizeof buf);
    if (n <= 0) break;
    body->append(buf, static_cast<size_t>(n));
  }
  return body->size() <= kMaxBody;
}

/// One frame of the chunked transfer encoding in one write (mg_send_chunk makes three).
bool WriteChunk(mg_connection* conn, const std::string& data) {
  char head[24];
  const int h = std::snprintf(head, sizeof head, "%zx\r\n", data.size());
  std::string frame;
  frame.reserve(data.size() + static_cast<size_t>(h) + 2);
  frame.append(head, static_cast<size_t>(h)).append(data).append("\r\n");
  return mg_write(conn, frame.data(), frame.size()) == static_cast<int>(frame.size());
}

int64_t NowUnix() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string NextId(bool chat) {
  static std::atomic<uint64_t> counter{0};
  return std::string(chat ? "chatcmpl-cb" : "cmpl-cb") + std::to_string(++counter);
}

}  // namespace

OpenAiServer::OpenAiServer(ServingEngine* engine, OpenAiServerOptions options)
    : engine_(engine), opt_(std::move(options)) {}

Status OpenAiServer::Start(ServingEngine* engine, const OpenAiServerOptions& options,
                           std::unique_ptr<OpenAiServer>* out) {
  mg_init_library(0);
  std::unique_ptr<OpenAiServer> s(new OpenAiServer(engine, options));
  const std::string ports = options.host + ":" + std::to_string(options.port);
  const std::string threads = std::to_string(options.threads);
  const char* cfg[] = {"listening_ports",
                       ports.c_str(),
                       "num_threads",
                       threads.c_str(),
                       "tcp_nodelay",
                       "1",
                       "enable_keep_alive",
                       "yes",
                       "request_timeout_ms",
                       "600000",
                       "keep_alive_timeout_ms",
                       "5000",
                       nullptr};
  mg_callbacks callbacks{};
  s->ctx_ = mg_start(&callbacks, nullptr, cfg);
  if (s->ctx_ == nullptr) {
    return Status::InvalidInput("cannot listen on " + ports + " (in use, or not an address here)");
  }
  mg_set_request_handler(s->ctx_, "/", &OpenAiServer::Handle, s.get());
  mg_server_port sp[4];
  const int n = mg_get_server_ports(s->ctx_, 4, sp);
  s->port_ = n > 0 ? sp[0].port : options.port;
  *out = std::move(s);
  return Status::Ok();
}

OpenAiServer::~OpenAiServer() {
  if (ctx_ != nullptr) mg_stop(ctx_);
}

int OpenAiServer::Handle(mg_connection* conn, void* self) {
  try {
    return static_cast<OpenAiServer*>(self)->Serve(conn);
  } catch (const std::exception& e) {
    return SendError(conn, 500, e.what());
  }
}

int OpenAiServer::Serve(mg_connection* conn) {
  const mg_request_info* ri = mg_get_request_info(conn);
  const std::string uri = ri->local_uri ? ri->local_uri : "";
  const std::string method = ri->request_method ? ri->request_method : "";
  if (uri == "/health") return SendJson(conn, 200, "{}");
  if (!opt_.api_key.empty()) {
    const char* auth = mg_get_header(conn, "Authorization");
    if (auth == nullptr || std::string(auth) != "Bearer " + opt_.api_key) {
      return SendError(conn, 401, "invalid or missing API key");
    }
  }
  if (uri == "/v1/models") {
    const nlohmann::json models = {{"object", "list"},
                                   {"data",
                                    {{{"id", opt_.model},
                                      {"object", "model"},
                                      {"created", NowUnix()},
                                      {"owned_by", "clusterbench"},
                                      {"max_model_len", opt_.max_context}}}}};
    return SendJson(conn, 200, models.dump());
  }
  const bool chat = uri == "/v1/chat/completions";
  if (!chat && uri != "/v1/completions") {
    return SendError(conn, 404,
                     "no route " + uri +
                         "; serve-model has /v1/models, /v1/completions, "
                         "/v1/chat/completions, /health");
  }
  if (method != "POST") return SendError(conn, 405, uri + " takes POST");
  std::string body;
  if (!ReadBody(conn, &body)) return SendError(conn, 413, "the body is larger than 16 MiB");
  return Generate(conn, chat, body);
}

int OpenAiServer::Generate(mg_connection* conn, bool chat, const std::string& body) {
  const ApiKind api = chat ? ApiKind::kChat : ApiKind::kCompletions;
  ParsedRequest req;
  if (Status s = ParseRequestBody(api, body, &req); !s.ok()) {
    return SendError(conn, 400, s.message());
  }
  if (!req.model.empty() && req.model != opt_.model) {
    return SendError(conn, 404,
                     "the model '" + req.model +
                         "' does not exist; this server "
                         "serves '" +
                         opt_.model + "'");
  }
  std::vector<int32_t> prompt =
      req.prompt_ids.empty() ? WordTokenize(req.prompt, opt_.vocab) : req.prompt_ids;
  const int64_t n_prompt = static_cast<int64_t>(prompt.size());
  const int64_t max_tokens =
      req.max_tokens > 0 ? req.max_tokens : (chat ? opt_.max_context - n_prompt : 16);
  std::shared_ptr<TokenStream> tokens;
  if (Status s = engine_->Submit(std::move(prompt), max_tokens, &tokens); !s.ok()) {
    return SendError(conn, s.code() == StatusCode::kInvalidInput ? 400 : 500, s.message());
  }
  const std::string id = NextId(chat);
  const int64_t created = NowUnix();
  std::vector<int32_t> got;
  int64_t sent = 0;
  if (!req.stream) {
    while (tokens->Next(&got, 1.0)) {
    }
    if (!tokens->error().empty()) return SendError(conn, 500, tokens->error());
    std::string text;
    for (int32_t t : got) text += TokenText(t);
    return SendJson(conn, 200,
                    FormatResponse(api, id, opt_.model, created, text, "length", n_prompt,
                                   static_cast<int64_t>(got.size())));
  }
  mg_send_http_ok(conn, "text/event-stream", -1);
  auto send = [&](const std::string& chunk) {
    if (!WriteChunk(conn, chunk)) {
      tokens->Cancel();  // the client went away
      return false;
    }
    return true;
  };
  if (chat && !send(FormatStreamChunk(api, id, opt_.model, created, "", ""))) return 200;
  bool more = true;
  while (more) {
    got.clear();
    more = tokens->Next(&got, 1.0);
    for (int32_t t : got) {
      ++sent;
      if (!send(FormatStreamChunk(api, id, opt_.model, created, TokenText(t),
                                  sent == max_tokens ? "length" : ""))) {
        return 200;
      }
    }
  }
  if (!tokens->error().empty()) {
    send("data: " + FormatError(tokens->error(), "server_error", 500) + "\n\n");
  } else if (req.include_usage) {
    send(FormatUsageChunk(api, id, opt_.model, created, n_prompt, sent));
  }
  send("data: [DONE]\n\n");
  mg_write(conn, "0\r\n\r\n", 5);  // the last chunk
  return 200;
}

}  // namespace cb
