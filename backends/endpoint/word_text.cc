#include "backends/endpoint/word_text.h"

#include <cctype>

namespace cb {
namespace {

// Common words chosen to be one token each (with their leading space) in the usual BPE
// vocabularies; a server's usage field gives the exact count.
constexpr const char* kWords[] = {
    "the",    "of",     "and",     "to",     "in",       "is",      "was",     "for",
    "on",     "that",   "with",    "as",     "by",       "at",      "from",    "his",
    "it",     "an",     "were",    "are",    "which",    "this",    "be",      "or",
    "has",    "had",    "first",   "one",    "their",    "its",     "new",     "after",
    "but",    "who",    "not",     "they",   "have",     "her",     "she",     "two",
    "been",   "other",  "when",    "there",  "all",      "during",  "into",    "school",
    "time",   "may",    "years",   "more",   "most",     "only",    "over",    "city",
    "some",   "world",  "would",   "where",  "later",    "up",      "such",    "used",
    "many",   "can",    "state",   "about",  "national", "out",     "known",   "university",
    "united", "then",   "made",    "also",   "these",    "than",    "him",     "between",
    "three",  "called", "each",    "under",  "while",    "team",    "part",    "could",
    "season", "well",   "book",    "river",  "house",    "game",    "film",    "music",
    "water",  "light",  "small",   "large",  "north",    "south",   "east",    "west",
    "early",  "great",  "high",    "long",   "old",      "young",   "public",  "family",
    "group",  "power",  "market",  "order",  "field",    "line",    "point",   "place",
    "right",  "left",   "night",   "day",    "week",     "month",   "year",    "home",
    "work",   "life",   "war",     "land",   "sea",      "road",    "church",  "party",
    "army",   "art",    "story",   "child",  "woman",    "man",     "people",  "king",
    "bridge", "court",  "club",    "league", "system",   "company", "station", "island",
    "area",   "region", "village", "town",   "county",   "member",  "series",  "album",
    "song",   "band",   "record",  "show",   "model",    "data",    "table",   "paper",
    "report", "study",  "test",    "plan",   "price",    "cost",    "rate",    "level",
    "value",  "form",   "name",    "word",
};
constexpr int64_t kCount = static_cast<int64_t>(sizeof kWords / sizeof kWords[0]);

}  // namespace

int64_t WordCount() { return kCount; }

std::string_view Word(int64_t i) { return kWords[((i % kCount) + kCount) % kCount]; }

std::string WordsText(const std::vector<int32_t>& words) {
  std::string s;
  s.reserve(words.size() * 6);
  for (int32_t w : words) {
    if (!s.empty()) s += ' ';
    s += Word(w);
  }
  return s;
}

int64_t CountWords(std::string_view text) {
  int64_t n = 0;
  bool in = false;
  for (char c : text) {
    const bool space = std::isspace(static_cast<unsigned char>(c)) != 0;
    if (!space && !in) ++n;
    in = !space;
  }
  return n;
}

std::vector<int32_t> WordTokenize(std::string_view text, int64_t vocab) {
  std::vector<int32_t> ids;
  uint64_t h = 0;
  bool in = false;
  auto flush = [&] {
    ids.push_back(static_cast<int32_t>(h % static_cast<uint64_t>(vocab > 0 ? vocab : 1)));
  };
  for (char c : text) {
    const bool space = std::isspace(static_cast<unsigned char>(c)) != 0;
    if (space) {
      if (in) flush();
      in = false;
      continue;
    }
    if (!in) h = 1469598103934665603ULL;  // FNV-1a
    h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ULL;
    in = true;
  }
  if (in) flush();
  return ids;
}

std::string TokenText(int32_t token) { return " " + std::string(Word(token)); }

}  // namespace cb
