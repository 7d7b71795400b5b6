#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "backends/endpoint/sse_parser.h"
#include "harness/core/status.h"

namespace cb {

/// The two OpenAI-compatible generation APIs (docs/endpoint.md).
enum class ApiKind { kCompletions, kChat };
/// "/completions" or "/chat/completions" (after the base path, e.g. /v1).
const char* ApiRoute(ApiKind api);
const char* ApiName(ApiKind api);  ///< "completions", "chat"
bool ParseApiName(const std::string& name, ApiKind* out);

// ---- client side -------------------------------------------------------------------------

/// What the client asks for. Greedy (temperature 0), streamed, usage requested.
struct GenerationRequest {
  std::string model;
  std::string prompt;
  int64_t max_tokens = 16;
  /// Ask the server to generate max_tokens whatever the model samples: `ignore_eos` and
  /// `min_tokens` (vLLM takes both; servers that refuse them are found in the warm-up).
  bool ignore_eos = true;
  bool stream = true;
  bool include_usage = true;  ///< stream_options.include_usage
};

/// The JSON body of a request.
std::string BuildRequestBody(ApiKind api, const GenerationRequest& r);

/// What one `data:` payload of a streamed response carries.
struct StreamChunk {
  bool done = false;         ///< the `[DONE]` sentinel
  std::string text;          ///< generated text of this chunk (choices[0].text or delta.content)
  bool has_content = false;  ///< text (or reasoning content) is not empty
  std::string finish_reason;
  bool has_usage = false;
  int64_t prompt_tokens = -1, completion_tokens = -1;
  std::string model;
  bool error = false;  ///< the chunk is an error object ({"error": ...}), as vLLM sends
  std::string error_message;
};

/// Parses one payload; kInvalidInput when it is neither JSON of a completion chunk nor [DONE].
Status ParseStreamChunk(ApiKind api, std::string_view data, StreamChunk* out);

/// Everything one response stream said, with the client's arrival time of each event.
struct StreamOutcome {
  double first_content_s = -1, last_content_s = -1;
  std::vector<double> content_s;  ///< arrival of every chunk with content
  int64_t stream_tokens = 0;      ///< chunks with content
  int64_t usage_prompt_tokens = -1, usage_completion_tokens = -1;
  std::string finish_reason, model;
  bool done = false;       ///< [DONE] seen
  bool malformed = false;  ///< a payload that is not a completion chunk
  std::string malformed_what;
  bool server_error = false;  ///< an error object in the stream
  std::string server_error_message;
  int64_t events = 0;
};

/// Applies one event received at `t_s`.
void ApplyStreamEvent(ApiKind api, const SseEvent& event, double t_s, StreamOutcome* out);

/// Output tokens: the server's usage count where it gave one, else the chunks with content.
int64_t OutputTokens(const StreamOutcome& o);

// ---- server side (clusterbench serve-model) ----------------------------------------------

/// A parsed request body.
struct ParsedRequest {
  std::string model;
  std::string prompt;               ///< completions: the prompt; chat: the messages' contents
  std::vector<int32_t> prompt_ids;  ///< completions: a prompt given as token ids
  int64_t max_tokens = -1;          ///< -1: not given
  bool stream = false;
  bool include_usage = false;
};

/// Parses a completions or chat completions body; kInvalidInput says which field is wrong.
Status ParseRequestBody(ApiKind api, std::string_view body, ParsedRequest* out);

/// One streamed chunk, "data: {...}\n\n". `finish_reason` empty: null.
std::string FormatStreamChunk(ApiKind api, const std::string& id, const std::string& model,
                              int64_t created, std::string_view text,
                              const std::string& finish_reason);
/// The final usage chunk (choices empty), "data: {...}\n\n".
std::string FormatUsageChunk(ApiKind api, const std::string& id, const std::string& model,
                             int64_t created, int64_t prompt_tokens, int64_t completion_tokens);
/// A whole (non-streamed) response.
std::string FormatResponse(ApiKind api, const std::string& id, const std::string& model,
                           int64_t created, std::string_view text, const std::string& finish_reason,
                           int64_t prompt_tokens, int64_t completion_tokens);
/// An OpenAI error object {"error": {...}}.
std::string FormatError(const std::string& message, const std::string& type, int code);

}  // namespace cb
