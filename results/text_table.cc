#include "results/text_table.h"

#include <algorithm>

namespace cb {
namespace {

bool Numeric(const TextTable& t, size_t c) { return c < t.numeric.size() && t.numeric[c]; }

std::vector<size_t> Widths(const std::vector<std::vector<std::string>>& rows, size_t min) {
  std::vector<size_t> w(rows.empty() ? 0 : rows[0].size(), min);
  for (const auto& row : rows) {
    for (size_t c = 0; c < row.size() && c < w.size(); ++c) w[c] = std::max(w[c], row[c].size());
  }
  return w;
}

std::string Pad(const std::string& s, size_t width, bool right) {
  const std::string fill(width > s.size() ? width - s.size() : 0, ' ');
  return right ? fill + s : s + fill;
}

std::string Cell(const std::vector<std::string>& row, size_t c) {
  return c < row.size() ? row[c] : std::string();
}

std::string RenderText(const TextTable& t) {
  std::vector<std::vector<std::string>> rows = {t.columns};
  rows.insert(rows.end(), t.rows.begin(), t.rows.end());
  const std::vector<size_t> w = Widths(rows, 0);
  std::string out;
  for (const std::string& l : t.title) out += l + "\n";
  for (size_t i = 0; i < rows.size(); ++i) {
    std::string line;
    for (size_t c = 0; c < t.columns.size(); ++c) {
      if (c) line += "  ";
      line += Pad(Cell(rows[i], c), w[c], Numeric(t, c));
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line + "\n";
    if (i == 0) {
      std::string rule;
      for (size_t c = 0; c < t.columns.size(); ++c)
        rule += (c ? "  " : "") + std::string(w[c], '-');
      out += rule + "\n";
    }
  }
  if (!t.notes.empty()) out += "\n";
  for (const std::string& n : t.notes) out += n + "\n";
  return out;
}

std::string RenderMarkdown(const TextTable& t) {
  std::vector<std::vector<std::string>> rows = {t.columns};
  rows.insert(rows.end(), t.rows.begin(), t.rows.end());
  for (auto& row : rows) {
    for (auto& cell : row) cell = MdEscape(cell);
  }
  const std::vector<size_t> w = Widths(rows, 3);
  std::string out;
  for (const std::string& l : t.title) out += MdEscape(l) + "\n\n";
  for (size_t i = 0; i < rows.size(); ++i) {
    std::string line = "|";
    for (size_t c = 0; c < t.columns.size(); ++c) {
      line += " " + Pad(Cell(rows[i], c), w[c], Numeric(t, c)) + " |";
    }
    out += line + "\n";
    if (i == 0) {
      std::string rule = "|";
      for (size_t c = 0; c < t.columns.size(); ++c) {
        rule += " " + std::string(Numeric(t, c) ? w[c] - 1 : w[c], '-') +
                (Numeric(t, c) ? ": |" : " |");
      }
      out += rule + "\n";
    }
  }
  if (!t.notes.empty()) out += "\n";
  for (const std::string& n : t.notes) out += "- " + MdEscape(n) + "\n";
  return out;
}

std::string RenderCsv(const TextTable& t) {
  std::string out;
  auto row = [&](const std::vector<std::string>& cells) {
    for (size_t c = 0; c < t.columns.size(); ++c) out += (c ? "," : "") + CsvField(Cell(cells, c));
    out += "\n";
  };
  row(t.columns);
  for (const auto& r : t.rows) row(r);
  return out;
}

std::vector<nlohmann::json> Records(const TextTable& t) {
  if (!t.records.empty()) return t.records;
  std::vector<nlohmann::json> out;
  for (const auto& r : t.rows) {
    nlohmann::json o = nlohmann::json::object();
    for (size_t c = 0; c < t.columns.size(); ++c) o[t.columns[c]] = Cell(r, c);
    out.push_back(std::move(o));
  }
  return out;
}

}  // namespace

Status FormatTable(const TextTable& t, const std::string& format, std::string* out) {
  using nlohmann::json;
  const auto dump = [](const json& j, int indent) {
    return j.dump(indent, ' ', false, json::error_handler_t::replace);
  };
  if (format == "table") {
    *out = RenderText(t);
  } else if (format == "md") {
    *out = RenderMarkdown(t);
  } else if (format == "csv") {
    *out = RenderCsv(t);
  } else if (format == "json") {
    *out = dump(json(Records(t)), 2) + "\n";
  } else if (format == "jsonl") {
    out->clear();
    for (const json& r : Records(t)) *out += dump(r, -1) + "\n";
  } else {
    return Status::InvalidInput("--format '" + format +
                                "': allowed values are table, md, csv, json, jsonl");
  }
  return Status::Ok();
}

std::string CsvField(const std::string& s) {
  if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

std::string MdEscape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '\\' || c == '|' || c == '*' || c == '~' || c == '_' || c == '`') out += '\\';
    if (c == '\n' || c == '\r') {
      out += ' ';
      continue;
    }
    out += c;
  }
  return out;
}

}  // namespace cb
