#include "harness/endpoint/dataset.h"

#include <openssl/evp.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "backends/endpoint/word_text.h"

namespace cb {
namespace {

using nlohmann::json;

int64_t LineAt(const std::string& text, size_t offset) {
  return 1 + std::count(text.begin(), text.begin() + std::min(offset, text.size()), '\n');
}

Status Bad(const Dataset& d, int64_t line, const std::string& field, const std::string& what) {
  return Status::InvalidInput(d.path + ":" + std::to_string(line) +
                              (field.empty() ? "" : ": field '" + field + "'") + ": " + what);
}

/// Parses one JSON value that starts at `offset` of the file; syntax errors name the line.
Status ParseAt(const Dataset& d, const std::string& text, size_t offset, size_t len, json* out) {
  try {
    *out = json::parse(text.substr(offset, len));
  } catch (const json::parse_error& e) {
    const size_t at = offset + (e.byte > 0 ? e.byte - 1 : 0);
    std::string what = e.what();
    const size_t colon = what.find(": ", what.find("parse error"));
    return Bad(
        d, LineAt(text, at), "",
        "not valid JSON (" + (colon == std::string::npos ? what : what.substr(colon + 2)) + ")");
  }
  return Status::Ok();
}

/// The spans [begin, end) of the elements of the top-level JSON array in `text`.
Status ArraySpans(const Dataset& d, const std::string& text,
                  std::vector<std::pair<size_t, size_t>>* spans) {
  size_t i = 0;
  auto ws = [&] {
    while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
  };
  ws();
  if (i >= text.size() || text[i] != '[') return Bad(d, LineAt(text, i), "", "expected '['");
  ++i;
  while (true) {
    ws();
    if (i < text.size() && text[i] == ']') return Status::Ok();
    const size_t start = i;
    int depth = 0;
    bool in_string = false;
    for (; i < text.size(); ++i) {
      const char c = text[i];
      if (in_string) {
        if (c == '\\') {
          ++i;
        } else if (c == '"') {
          in_string = false;
        }
        continue;
      }
      if (c == '"') {
        in_string = true;
      } else if (c == '{' || c == '[') {
        ++depth;
      } else if (c == '}' || c == ']') {
        if (depth == 0) break;
        --depth;
      } else if (c == ',' && depth == 0) {
        break;
      }
    }
    if (i >= text.size()) return Bad(d, LineAt(text, start), "", "the array is not closed");
    spans->push_back({start, i});
    if (text[i] == ',') ++i;
  }
}

Status ReadShareGpt(const std::string& text, Dataset* d) {
  std::vector<std::pair<size_t, size_t>> spans;
  CB_RETURN_IF_ERROR(ArraySpans(*d, text, &spans));
  for (size_t k = 0; k < spans.size(); ++k) {
    const auto [begin, end] = spans[k];
    json e;
    CB_RETURN_IF_ERROR(ParseAt(*d, text, begin, end - begin, &e));
    const int64_t line = LineAt(text, begin);
    const std::string where = "[" + std::to_string(k) + "].conversations";
    if (!e.is_object()) return Bad(*d, line, "[" + std::to_string(k) + "]", "expected an object");
    auto conv = e.find("conversations");
    if (conv == e.end() || !conv->is_array()) {
      return Bad(*d, line, where, "expected an array of {\"from\", \"value\"} turns");
    }
    for (size_t t = 0; t < conv->size(); ++t) {
      const json& turn = (*conv)[t];
      const std::string tw = where + "[" + std::to_string(t) + "]";
      if (!turn.is_object() || !turn.contains("from") || !turn["from"].is_string()) {
        return Bad(*d, line, tw + ".from", "expected a string (human, gpt, ...)");
      }
      if (!turn.contains("value") || !turn["value"].is_string()) {
        return Bad(*d, line, tw + ".value", "expected a string");
      }
    }
    if (conv->size() < 2) {
      ++d->skipped;
      continue;
    }
    const std::string from = (*conv)[0]["from"].get<std::string>();
    if (from != "human" && from != "user") {
      ++d->skipped;
      continue;
    }
    DatasetEntry entry;
    entry.prompt = (*conv)[0]["value"].get<std::string>();
    entry.prompt_words = CountWords(entry.prompt);
    entry.output_len = std::max<int64_t>(1, CountWords((*conv)[1]["value"].get<std::string>()));
    entry.line = line;
    if (entry.prompt_words == 0) {
      ++d->skipped;
      continue;
    }
    d->entries.push_back(std::move(entry));
  }
  return Status::Ok();
}

Status ReadJsonl(const std::string& text, Dataset* d) {
  size_t start = 0;
  int64_t line = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    ++line;
    const size_t begin = start;
    start = end + 1;
    const std::string row = text.substr(begin, end - begin);
    if (std::all_of(row.begin(), row.end(), [](char c) { return std::isspace(c); })) continue;
    json e;
    CB_RETURN_IF_ERROR(ParseAt(*d, text, begin, end - begin, &e));
    if (!e.is_object()) return Bad(*d, line, "", "expected {\"prompt\": TEXT, \"output_len\": N}");
    auto p = e.find("prompt");
    if (p == e.end() || !p->is_string() || p->get<std::string>().empty()) {
      return Bad(*d, line, "prompt", "expected a non-empty string");
    }
    auto o = e.find("output_len");
    if (o == e.end() || !o->is_number_integer() || o->get<int64_t>() < 1) {
      return Bad(*d, line, "output_len", "expected a positive integer (tokens to generate)");
    }
    for (const auto& [key, value] : e.items()) {
      if (key != "prompt" && key != "output_len") {
        return Bad(*d, line, key, "unknown; allowed fields: prompt, output_len");
      }
    }
    DatasetEntry entry;
    entry.prompt = p->get<std::string>();
    entry.prompt_words = CountWords(entry.prompt);
    entry.output_len = o->get<int64_t>();
    entry.line = line;
    d->entries.push_back(std::move(entry));
  }
  return Status::Ok();
}

}  // namespace

std::string Sha256Hex(const std::string& bytes) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(bytes.data(), bytes.size(), md, &n, EVP_sha256(), nullptr);
  static const char* kHex = "0123456789abcdef";
  std::string s;
  for (unsigned int i = 0; i < n; ++i) {
    s += kHex[md[i] >> 4];
    s += kHex[md[i] & 15];
  }
  return s;
}

Status LoadDataset(const std::string& path, const std::string& format, Dataset* out) {
  Dataset d;
  d.path = path;
  d.name = std::filesystem::path(path).filename().string();
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::InvalidInput(path + ": cannot read the dataset file");
  std::stringstream buf;
  buf << in.rdbuf();
  const std::string text = buf.str();
  d.sha256 = Sha256Hex(text);
  d.format = format;
  if (d.format.empty()) {
    const size_t first = text.find_first_not_of(" \t\r\n");
    if (first == std::string::npos) return Bad(d, 1, "", "the file is empty");
    if (text[first] == '[') {
      d.format = "sharegpt";
    } else if (text[first] == '{') {
      d.format = "jsonl";
    } else {
      return Bad(d, LineAt(text, first), "",
                 "neither a ShareGPT JSON array ('[') nor JSON lines ('{')");
    }
  }
  CB_RETURN_IF_ERROR(d.format == "sharegpt" ? ReadShareGpt(text, &d) : ReadJsonl(text, &d));
  if (d.entries.empty()) {
    return Status::InvalidInput(path + ": no usable prompts (" + std::to_string(d.skipped) +
                                " conversations without a human prompt and a reply)");
  }
  *out = std::move(d);
  return Status::Ok();
}

}  // namespace cb
