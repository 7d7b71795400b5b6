#pragma once

/// One renderer of tabular output for every command: `--format table|md|csv|json|jsonl`
/// (harness/cli/output.h registers the flag; each command says which of these it offers).

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "harness/core/status.h"

namespace cb {

struct TextTable {
  std::vector<std::string> columns;
  std::vector<bool> numeric;  ///< per column: right-aligned in table and md (default: left)
  std::vector<std::vector<std::string>> rows;  ///< the cells people read (table, md, csv)
  /// json and jsonl: one object per row; empty: an object of the columns and cells.
  std::vector<nlohmann::json> records;
  std::vector<std::string> title;  ///< lines above the table (table, md); not in csv or json
  std::vector<std::string> notes;  ///< lines under the table (table, md); not in csv or json
};

/// Every format name a command may offer, in the order --help lists them.
inline constexpr const char* kTableFormats[] = {"table", "md", "csv", "json", "jsonl"};

/// Renders `t` as "table" (aligned text), "md" (a markdown table; cells escaped), "csv"
/// (RFC 4180), "json" (an array of the records, indented) or "jsonl" (one record per line).
/// kInvalidInput naming the allowed values for another format.
Status FormatTable(const TextTable& t, const std::string& format, std::string* out);

/// RFC 4180: a field holding a comma, a double quote, CR or LF is quoted, quotes doubled.
std::string CsvField(const std::string& s);
/// Escapes characters that markdown would read as table syntax, emphasis or strikethrough.
std::string MdEscape(const std::string& s);

}  // namespace cb
