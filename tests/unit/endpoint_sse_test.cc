// The server-sent-events parser of the endpoint client (backends/endpoint/sse_parser.h):
// chunk boundaries anywhere, line endings, multi-line data, comments, [DONE].
#include <gtest/gtest.h>

#include <random>

#include "backends/endpoint/openai_protocol.h"
#include "backends/endpoint/sse_parser.h"

namespace cb {
namespace {

std::vector<SseEvent> ParseAll(const std::string& text, size_t piece) {
  SseParser p;
  std::vector<SseEvent> out;
  for (size_t i = 0; i < text.size(); i += piece) {
    EXPECT_TRUE(p.Feed(std::string_view(text).substr(i, piece), &out));
  }
  return out;
}

const char* kStream =
    ": keep-alive\r\n"
    "\r\n"
    "data: {\"choices\":[{\"text\":\" the\"}]}\r\n"
    "\r\n"
    "event: message\n"
    "id: 7\n"
    "data: first line\n"
    "data: second line\n"
    "\n"
    "data:no-space\r"
    "\r"
    ": another comment\n"
    "data: [DONE]\n"
    "\n";

TEST(SseParser, ParsesEventsWithEveryLineEndingCommentsAndMultiLineData) {
  const auto events = ParseAll(kStream, 1 << 20);
  ASSERT_EQ(events.size(), 4u);
  EXPECT_EQ(events[0].data, "{\"choices\":[{\"text\":\" the\"}]}");
  EXPECT_EQ(events[1].event, "message");
  EXPECT_EQ(events[1].id, "7");
  EXPECT_EQ(events[1].data, "first line\nsecond line");
  EXPECT_EQ(events[2].data, "no-space");
  EXPECT_EQ(events[3].data, "[DONE]");
}

TEST(SseParser, GivesTheSameEventsWhateverTheChunkBoundaries) {
  const auto whole = ParseAll(kStream, 1 << 20);
  for (size_t piece : {1u, 2u, 3u, 5u, 7u, 13u}) {
    const auto split = ParseAll(kStream, piece);
    ASSERT_EQ(split.size(), whole.size()) << "piece " << piece;
    for (size_t i = 0; i < whole.size(); ++i) {
      EXPECT_EQ(split[i].data, whole[i].data) << "piece " << piece;
      EXPECT_EQ(split[i].event, whole[i].event);
    }
  }
  // Random boundaries, including a CR and its LF in different reads.
  std::mt19937 rng(3);
  const std::string text = kStream;
  for (int trial = 0; trial < 50; ++trial) {
    SseParser p;
    std::vector<SseEvent> out;
    size_t i = 0;
    while (i < text.size()) {
      const size_t n = std::uniform_int_distribution<size_t>(1, 9)(rng);
      ASSERT_TRUE(p.Feed(std::string_view(text).substr(i, n), &out));
      i += n;
    }
    ASSERT_EQ(out.size(), whole.size());
    for (size_t k = 0; k < out.size(); ++k) EXPECT_EQ(out[k].data, whole[k].data);
    EXPECT_FALSE(p.Pending());
  }
}

TEST(SseParser, CountsKeepAliveCommentsAndDropsEventsWithoutData) {
  SseParser p;
  std::vector<SseEvent> out;
  ASSERT_TRUE(p.Feed(": ping\n\n: ping\n\nevent: nothing\n\nid: 3\n\n", &out));
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(p.comments(), 2u);
}

TEST(SseParser, KeepsOneSpaceAfterTheFirstAndEmptyDataLines) {
  SseParser p;
  std::vector<SseEvent> out;
  ASSERT_TRUE(p.Feed("data:  two spaces\n\ndata\ndata\n\n", &out));
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].data, " two spaces");
  EXPECT_EQ(out[1].data, "\n");
}

TEST(SseParser, SaysWhenTheStreamStopsInsideAnEvent) {
  SseParser p;
  std::vector<SseEvent> out;
  ASSERT_TRUE(p.Feed("data: {\"choices\":[{\"text\":\" a\"}]}\n\ndata: {\"cho", &out));
  EXPECT_EQ(out.size(), 1u);
  EXPECT_TRUE(p.Pending());
  SseParser q;
  ASSERT_TRUE(q.Feed("data: whole\n", &out));
  EXPECT_TRUE(q.Pending());  // a field line but no blank line yet
}

TEST(SseParser, RefusesAnEndlessLine) {
  SseParser p(64);
  std::vector<SseEvent> out;
  EXPECT_FALSE(p.Feed("data: " + std::string(100, 'x'), &out));
  EXPECT_TRUE(p.failed());
  EXPECT_NE(p.error().find("longer than 64"), std::string::npos);
  EXPECT_FALSE(p.Feed("\n\n", &out));
}

TEST(SseParser, DoneSentinelAndOpenAiChunksParse) {
  StreamChunk c;
  ASSERT_TRUE(ParseStreamChunk(ApiKind::kCompletions, "[DONE]", &c).ok());
  EXPECT_TRUE(c.done);
  ASSERT_TRUE(ParseStreamChunk(ApiKind::kCompletions,
                               R"({"model":"m","choices":[{"index":0,"text":" x",)"
                               R"("finish_reason":null}]})",
                               &c)
                  .ok());
  EXPECT_EQ(c.text, " x");
  EXPECT_TRUE(c.has_content);
  EXPECT_EQ(c.model, "m");
  EXPECT_FALSE(ParseStreamChunk(ApiKind::kCompletions, "{\"choices\": [", &c).ok());
  EXPECT_FALSE(ParseStreamChunk(ApiKind::kCompletions, "DONE", &c).ok());
}

}  // namespace
}  // namespace cb
