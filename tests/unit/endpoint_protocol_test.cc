// Request building and response interpretation of the endpoint backend: the OpenAI protocol
// (both sides), endpoint URLs, how a finished transfer is classified.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "backends/endpoint/endpoint_url.h"
#include "backends/endpoint/openai_protocol.h"
#include "backends/endpoint/word_text.h"
#include "harness/endpoint/endpoint_pass.h"

namespace cb {
namespace {

using nlohmann::json;

TEST(EndpointProtocol, BuildsStreamedGreedyRequestsThatAskForUsageAndExactLengths) {
  GenerationRequest g;
  g.model = "meta-llama/Llama-3.1-8B-Instruct";
  g.prompt = "the of and";
  g.max_tokens = 64;
  const json c = json::parse(BuildRequestBody(ApiKind::kCompletions, g));
  EXPECT_EQ(c["model"], g.model);
  EXPECT_EQ(c["prompt"], "the of and");
  EXPECT_EQ(c["max_tokens"], 64);
  EXPECT_EQ(c["temperature"], 0.0);
  EXPECT_EQ(c["stream"], true);
  EXPECT_EQ(c["stream_options"]["include_usage"], true);
  EXPECT_EQ(c["ignore_eos"], true);
  EXPECT_EQ(c["min_tokens"], 64);
  EXPECT_FALSE(c.contains("messages"));
  g.ignore_eos = false;
  const json chat = json::parse(BuildRequestBody(ApiKind::kChat, g));
  ASSERT_TRUE(chat["messages"].is_array());
  EXPECT_EQ(chat["messages"][0]["role"], "user");
  EXPECT_EQ(chat["messages"][0]["content"], "the of and");
  EXPECT_FALSE(chat.contains("prompt"));
  EXPECT_FALSE(chat.contains("ignore_eos"));
  EXPECT_FALSE(chat.contains("min_tokens"));
  EXPECT_STREQ(ApiRoute(ApiKind::kChat), "/chat/completions");
  EXPECT_STREQ(ApiRoute(ApiKind::kCompletions), "/completions");
}

TEST(EndpointProtocol, ServerSideParsesWhatTheClientBuilds) {
  GenerationRequest g;
  g.model = "tiny";
  g.prompt = "a b c d";
  g.max_tokens = 5;
  for (ApiKind api : {ApiKind::kCompletions, ApiKind::kChat}) {
    ParsedRequest p;
    ASSERT_TRUE(ParseRequestBody(api, BuildRequestBody(api, g), &p).ok());
    EXPECT_EQ(p.model, "tiny");
    EXPECT_EQ(p.prompt, "a b c d");
    EXPECT_EQ(p.max_tokens, 5);
    EXPECT_TRUE(p.stream);
    EXPECT_TRUE(p.include_usage);
  }
  ParsedRequest ids;
  ASSERT_TRUE(
      ParseRequestBody(ApiKind::kCompletions, R"({"prompt":[1,2,3],"max_tokens":2})", &ids).ok());
  EXPECT_EQ(ids.prompt_ids, (std::vector<int32_t>{1, 2, 3}));
  EXPECT_FALSE(ids.stream);
  ParsedRequest bad;
  EXPECT_FALSE(ParseRequestBody(ApiKind::kCompletions, "not json", &bad).ok());
  EXPECT_FALSE(ParseRequestBody(ApiKind::kCompletions, R"({"max_tokens":2})", &bad).ok());
  EXPECT_FALSE(
      ParseRequestBody(ApiKind::kCompletions, R"({"prompt":"x","max_tokens":0})", &bad).ok());
  EXPECT_FALSE(ParseRequestBody(ApiKind::kChat, R"({"messages":[]})", &bad).ok());
}

/// What a client parses from what serve-model writes, through the SSE parser.
StreamOutcome Replay(ApiKind api, const std::string& wire) {
  SseParser p;
  std::vector<SseEvent> events;
  EXPECT_TRUE(p.Feed(wire, &events));
  StreamOutcome o;
  double t = 1.0;
  for (const SseEvent& e : events) ApplyStreamEvent(api, e, t += 0.01, &o);
  return o;
}

TEST(EndpointProtocol, ClientReadsTheServersChunksUsageAndDone) {
  for (ApiKind api : {ApiKind::kCompletions, ApiKind::kChat}) {
    std::string wire;
    if (api == ApiKind::kChat) wire += FormatStreamChunk(api, "id", "tiny", 1, "", "");  // role
    wire += FormatStreamChunk(api, "id", "tiny", 1, " the", "");
    wire += FormatStreamChunk(api, "id", "tiny", 1, " of", "");
    wire += FormatStreamChunk(api, "id", "tiny", 1, " and", "length");
    wire += FormatUsageChunk(api, "id", "tiny", 1, 12, 3);
    wire += "data: [DONE]\n\n";
    const StreamOutcome o = Replay(api, wire);
    EXPECT_TRUE(o.done);
    EXPECT_FALSE(o.malformed);
    EXPECT_EQ(o.stream_tokens, 3);
    EXPECT_EQ(o.usage_prompt_tokens, 12);
    EXPECT_EQ(o.usage_completion_tokens, 3);
    EXPECT_EQ(o.finish_reason, "length");
    EXPECT_EQ(o.model, "tiny");
    ASSERT_EQ(o.content_s.size(), 3u);
    // The chat role chunk carries no text: the first token is the next chunk.
    EXPECT_DOUBLE_EQ(o.first_content_s, api == ApiKind::kChat ? 1.02 : 1.01);
    EXPECT_DOUBLE_EQ(o.last_content_s, o.content_s.back());
    EXPECT_EQ(OutputTokens(o), 3);
  }
}

TEST(EndpointProtocol, ErrorsInTheStreamAndMalformedPayloadsAreKept) {
  const StreamOutcome err =
      Replay(ApiKind::kCompletions,
             FormatStreamChunk(ApiKind::kCompletions, "i", "m", 1, " a", "") +
                 "data: " + FormatError("engine died", "server_error", 500) + "\n\n");
  EXPECT_TRUE(err.server_error);
  EXPECT_EQ(err.server_error_message, "engine died");
  EXPECT_EQ(err.stream_tokens, 1);
  const StreamOutcome bad = Replay(ApiKind::kCompletions, "data: {\"nope\": 1}\n\ndata: x\n\n");
  EXPECT_TRUE(bad.malformed);
  EXPECT_NE(bad.malformed_what.find("choices"), std::string::npos);
  // Without usage the stream's chunks count the tokens.
  const StreamOutcome counted =
      Replay(ApiKind::kCompletions,
             FormatStreamChunk(ApiKind::kCompletions, "i", "m", 1, " a", "") + "data: [DONE]\n\n");
  EXPECT_EQ(counted.usage_completion_tokens, -1);
  EXPECT_EQ(OutputTokens(counted), 1);
}

TEST(EndpointProtocol, ClassifiesFinishedTransfers) {
  std::string why;
  StreamOutcome good;
  good.done = true;
  good.stream_tokens = 2;
  TransferResult ok;
  ok.http_status = 200;
  ok.event_stream = true;
  EXPECT_EQ(ClassifyOutcome(ok, good, &why), "ok");
  TransferResult refused;
  refused.error = TransferError::kConnect;
  refused.error_message = "Connection refused";
  EXPECT_EQ(ClassifyOutcome(refused, StreamOutcome{}, &why), "connect");
  EXPECT_EQ(why, "Connection refused");
  TransferResult http;
  http.http_status = 500;
  http.body = FormatError("out of memory", "server_error", 500);
  EXPECT_EQ(ClassifyOutcome(http, StreamOutcome{}, &why), "http_500");
  EXPECT_NE(why.find("out of memory"), std::string::npos);
  TransferResult json_body = ok;
  json_body.event_stream = false;
  json_body.content_type = "application/json";
  EXPECT_EQ(ClassifyOutcome(json_body, StreamOutcome{}, &why), "malformed");
  StreamOutcome cut = good;
  cut.done = false;
  EXPECT_EQ(ClassifyOutcome(ok, cut, &why), "truncated");
  cut.finish_reason = "length";  // complete even without [DONE]
  EXPECT_EQ(ClassifyOutcome(ok, cut, &why), "ok");
  TransferResult broke;
  broke.error = TransferError::kTransport;
  StreamOutcome some;
  some.events = 3;
  EXPECT_EQ(ClassifyOutcome(broke, some, &why), "truncated");
  EXPECT_EQ(ClassifyOutcome(broke, StreamOutcome{}, &why), "transport");
  StreamOutcome empty;
  empty.done = true;
  EXPECT_EQ(ClassifyOutcome(ok, empty, &why), "empty");
  TransferResult stalled;
  stalled.error = TransferError::kStall;
  EXPECT_EQ(ClassifyOutcome(stalled, StreamOutcome{}, &why), "stall");
}

TEST(EndpointUrl, ParsesBaseUrlsAndRefusesCredentials) {
  EndpointUrl u;
  ASSERT_TRUE(ParseEndpointUrl("http://127.0.0.1:8000/v1", "t", &u).ok());
  EXPECT_EQ(u.Base(), "http://127.0.0.1:8000/v1");
  EXPECT_EQ(u.For("/completions"), "http://127.0.0.1:8000/v1/completions");
  EXPECT_EQ(u.HostPort(), "127.0.0.1:8000");
  ASSERT_TRUE(ParseEndpointUrl("HTTPS://gpu-node/", "t", &u).ok());
  EXPECT_EQ(u.Base(), "https://gpu-node:443/v1");
  ASSERT_TRUE(ParseEndpointUrl("http://[::1]:9000/openai/v1/", "t", &u).ok());
  EXPECT_EQ(u.Base(), "http://[::1]:9000/openai/v1");
  for (const char* bad :
       {"127.0.0.1:8000", "ftp://h/v1", "http://user:secret@h:1/v1", "http://h:0/v1",
        "http://h:70000/v1", "http://:80/v1", "http://h/v1?x=1"}) {
    const Status s = ParseEndpointUrl(bad, "command line: field 'backend'", &u);
    EXPECT_EQ(s.code(), StatusCode::kInvalidInput) << bad;
    EXPECT_EQ(s.message().find("secret"), std::string::npos) << s.message();
  }
  EXPECT_TRUE(IsEndpointBackend("endpoint:http://h/v1"));
  EXPECT_FALSE(IsEndpointBackend("cpu"));
}

TEST(WordText, SyntheticWordsAreOneServeModelTokenEach) {
  const std::string text = WordsText({0, 1, 2, 3, 400});
  EXPECT_EQ(CountWords(text), 5);
  const auto ids = WordTokenize(text, 512);
  ASSERT_EQ(ids.size(), 5u);
  for (int32_t id : ids) EXPECT_LT(id, 512);
  EXPECT_EQ(WordTokenize("  the   of\n", 512).size(), 2u);
  EXPECT_EQ(WordTokenize("the", 512), WordTokenize(" the ", 512));
  EXPECT_EQ(TokenText(1), " " + std::string(Word(1)));
}

}  // namespace
}  // namespace cb
