#include "backends/endpoint/openai_protocol.h"

#include <algorithm>
#include <nlohmann/json.hpp>

namespace cb {
namespace {

using nlohmann::json;

std::string ObjectName(ApiKind api, bool chunk) {
  if (api == ApiKind::kChat) return chunk ? "chat.completion.chunk" : "chat.completion";
  return "text_completion";
}

std::string Str(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

int64_t IntOr(const json& j, const char* key, int64_t fallback) {
  auto it = j.find(key);
  return it != j.end() && it->is_number_integer() ? it->get<int64_t>() : fallback;
}

/// The text of choices[0] and its finish reason; false when the chunk has no such shape.
bool ChoiceText(ApiKind api, const json& choice, StreamChunk* out) {
  if (!choice.is_object()) return false;
  out->finish_reason = Str(choice, "finish_reason");
  if (api == ApiKind::kCompletions) {
    auto it = choice.find("text");
    if (it == choice.end() || !it->is_string()) return false;
    out->text = it->get<std::string>();
    out->has_content = !out->text.empty();
    return true;
  }
  auto delta = choice.find("delta");
  if (delta == choice.end() || !delta->is_object()) return false;
  out->text = Str(*delta, "content");
  // Reasoning models stream their thinking first; it is generated output all the same.
  out->has_content = !out->text.empty() || !Str(*delta, "reasoning_content").empty() ||
                     !Str(*delta, "reasoning").empty();
  return true;
}

}  // namespace

const char* ApiRoute(ApiKind api) {
  return api == ApiKind::kChat ? "/chat/completions" : "/completions";
}

const char* ApiName(ApiKind api) { return api == ApiKind::kChat ? "chat" : "completions"; }

bool ParseApiName(const std::string& name, ApiKind* out) {
  if (name == "completions") {
    *out = ApiKind::kCompletions;
  } else if (name == "chat") {
    *out = ApiKind::kChat;
  } else {
    return false;
  }
  return true;
}

std::string BuildRequestBody(ApiKind api, const GenerationRequest& r) {
  json b = {{"model", r.model}, {"max_tokens", r.max_tokens}, {"temperature", 0.0}};
  if (api == ApiKind::kChat) {
    b["messages"] = json::array({{{"role", "user"}, {"content", r.prompt}}});
  } else {
    b["prompt"] = r.prompt;
  }
  b["stream"] = r.stream;
  if (r.stream && r.include_usage) b["stream_options"] = {{"include_usage", true}};
  if (r.ignore_eos) {
    b["ignore_eos"] = true;
    b["min_tokens"] = r.max_tokens;
  }
  return b.dump();
}

Status ParseStreamChunk(ApiKind api, std::string_view data, StreamChunk* out) {
  *out = StreamChunk{};
  if (data == "[DONE]") {
    out->done = true;
    return Status::Ok();
  }
  const json j = json::parse(data, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    std::string head(data.substr(0, 80));
    return Status::InvalidInput("not JSON: '" + head + (data.size() > 80 ? "...'" : "'"));
  }
  if (auto e = j.find("error"); e != j.end()) {
    out->error = true;
    out->error_message = e->is_object() ? Str(*e, "message") : e->dump();
    if (out->error_message.empty()) out->error_message = e->dump();
    return Status::Ok();
  }
  out->model = Str(j, "model");
  if (auto u = j.find("usage"); u != j.end() && u->is_object()) {
    out->has_usage = true;
    out->prompt_tokens = IntOr(*u, "prompt_tokens", -1);
    out->completion_tokens = IntOr(*u, "completion_tokens", -1);
  }
  auto choices = j.find("choices");
  if (choices == j.end() || !choices->is_array()) {
    if (out->has_usage) return Status::Ok();
    return Status::InvalidInput("no 'choices' array in a chunk");
  }
  if (choices->empty()) return Status::Ok();  // the usage chunk
  if (!ChoiceText(api, (*choices)[0], out)) {
    return Status::InvalidInput(std::string("choices[0] has no ") +
                                (api == ApiKind::kChat ? "'delta' object" : "'text' string"));
  }
  return Status::Ok();
}

void ApplyStreamEvent(ApiKind api, const SseEvent& event, double t_s, StreamOutcome* out) {
  ++out->events;
  if (out->done || out->malformed || out->server_error) return;  // nothing counts after these
  if (event.event == "error") {
    out->server_error = true;
    out->server_error_message = event.data;
    return;
  }
  StreamChunk c;
  if (Status s = ParseStreamChunk(api, event.data, &c); !s.ok()) {
    out->malformed = true;
    out->malformed_what = s.message();
    return;
  }
  if (c.done) {
    out->done = true;
    return;
  }
  if (c.error) {
    out->server_error = true;
    out->server_error_message = c.error_message;
    return;
  }
  if (!c.model.empty()) out->model = c.model;
  if (c.has_usage) {
    out->usage_prompt_tokens = c.prompt_tokens;
    out->usage_completion_tokens = c.completion_tokens;
  }
  if (!c.finish_reason.empty()) out->finish_reason = c.finish_reason;
  if (c.has_content) {
    if (out->first_content_s < 0) out->first_content_s = t_s;
    out->last_content_s = t_s;
    out->content_s.push_back(t_s);
    ++out->stream_tokens;
  }
}

int64_t OutputTokens(const StreamOutcome& o) {
  return o.usage_completion_tokens >= 0 ? o.usage_completion_tokens : o.stream_tokens;
}

Status ParseRequestBody(ApiKind api, std::string_view body, ParsedRequest* out) {
  *out = ParsedRequest{};
  const json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return Status::InvalidInput("the body is not a JSON object");
  }
  out->model = Str(j, "model");
  if (auto m = j.find("max_tokens"); m != j.end() && !m->is_null()) {
    if (!m->is_number_integer() || m->get<int64_t>() < 1) {
      return Status::InvalidInput("'max_tokens' must be an integer of at least 1");
    }
    out->max_tokens = m->get<int64_t>();
  } else if (auto c = j.find("max_completion_tokens"); c != j.end() && c->is_number_integer()) {
    out->max_tokens = std::max<int64_t>(1, c->get<int64_t>());
  }
  if (auto s = j.find("stream"); s != j.end() && s->is_boolean()) out->stream = s->get<bool>();
  if (auto o = j.find("stream_options"); o != j.end() && o->is_object()) {
    auto u = o->find("include_usage");
    out->include_usage = u != o->end() && u->is_boolean() && u->get<bool>();
  }
  if (api == ApiKind::kChat) {
    auto msgs = j.find("messages");
    if (msgs == j.end() || !msgs->is_array() || msgs->empty()) {
      return Status::InvalidInput("'messages' must be a non-empty array");
    }
    for (const json& m : *msgs) {
      if (!m.is_object() || !m.contains("content")) {
        return Status::InvalidInput("every message needs 'role' and 'content'");
      }
      const json& c = m["content"];
      if (c.is_string()) {
        out->prompt += (out->prompt.empty() ? "" : " ") + c.get<std::string>();
      } else if (c.is_array()) {  // content parts: the text ones
        for (const json& part : c) {
          if (part.is_object() && Str(part, "type") == "text") {
            out->prompt += (out->prompt.empty() ? "" : " ") + Str(part, "text");
          }
        }
      }
    }
    return Status::Ok();
  }
  auto p = j.find("prompt");
  if (p == j.end()) return Status::InvalidInput("'prompt' is missing");
  if (p->is_string()) {
    out->prompt = p->get<std::string>();
  } else if (p->is_array() && !p->empty() && (*p)[0].is_number_integer()) {
    for (const json& t : *p) {
      if (!t.is_number_integer()) return Status::InvalidInput("'prompt' mixes ids and text");
      out->prompt_ids.push_back(static_cast<int32_t>(t.get<int64_t>()));
    }
  } else if (p->is_array() && p->size() == 1 && (*p)[0].is_string()) {
    out->prompt = (*p)[0].get<std::string>();
  } else {
    return Status::InvalidInput("'prompt' must be a string, one string in a list, or token ids");
  }
  return Status::Ok();
}

std::string FormatStreamChunk(ApiKind api, const std::string& id, const std::string& model,
                              int64_t created, std::string_view text,
                              const std::string& finish_reason) {
  json choice = {{"index", 0}};
  if (api == ApiKind::kChat) {
    choice["delta"] = {{"content", text}};
  } else {
    choice["text"] = text;
  }
  choice["finish_reason"] = finish_reason.empty() ? json(nullptr) : json(finish_reason);
  const json c = {{"id", id},
                  {"object", ObjectName(api, true)},
                  {"created", created},
                  {"model", model},
                  {"choices", json::array({choice})}};
  return "data: " + c.dump() + "\n\n";
}

std::string FormatUsageChunk(ApiKind api, const std::string& id, const std::string& model,
                             int64_t created, int64_t prompt_tokens, int64_t completion_tokens) {
  const json c = {{"id", id},
                  {"object", ObjectName(api, true)},
                  {"created", created},
                  {"model", model},
                  {"choices", json::array()},
                  {"usage",
                   {{"prompt_tokens", prompt_tokens},
                    {"completion_tokens", completion_tokens},
                    {"total_tokens", prompt_tokens + completion_tokens}}}};
  return "data: " + c.dump() + "\n\n";
}

std::string FormatResponse(ApiKind api, const std::string& id, const std::string& model,
                           int64_t created, std::string_view text, const std::string& finish_reason,
                           int64_t prompt_tokens, int64_t completion_tokens) {
  json choice = {{"index", 0}, {"finish_reason", finish_reason}};
  if (api == ApiKind::kChat) {
    choice["message"] = {{"role", "assistant"}, {"content", text}};
  } else {
    choice["text"] = text;
  }
  const json c = {{"id", id},
                  {"object", ObjectName(api, false)},
                  {"created", created},
                  {"model", model},
                  {"choices", json::array({choice})},
                  {"usage",
                   {{"prompt_tokens", prompt_tokens},
                    {"completion_tokens", completion_tokens},
                    {"total_tokens", prompt_tokens + completion_tokens}}}};
  return c.dump();
}

std::string FormatError(const std::string& message, const std::string& type, int code) {
  return json{{"error", {{"message", message}, {"type", type}, {"code", code}}}}.dump();
}

}  // namespace cb
