#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "harness/core/status.h"

namespace cb {

/// One prompt of a replayed dataset.
struct DatasetEntry {
  std::string prompt;
  int64_t output_len = 0;    ///< tokens to ask for (ShareGPT: the reply's words)
  int64_t prompt_words = 0;  ///< the prompt's words (its requested length)
  int64_t line = 0;          ///< where it starts in the file
};

/// A dataset file read and checked before anything runs (docs/endpoint.md).
struct Dataset {
  std::string path, name, format;  ///< name: the file's name; format: sharegpt or jsonl
  std::string sha256;              ///< of the file's bytes, hex
  std::vector<DatasetEntry> entries;
  int64_t skipped = 0;  ///< ShareGPT conversations without a first prompt and reply
};

/// Reads `path` as `format` ("sharegpt": a JSON array of {"conversations": [{"from": "human",
/// "value": ...}, {"from": "gpt", "value": ...}, ...]}, the first human turn the prompt and the
/// next turn's words its output length; "jsonl": one {"prompt": TEXT, "output_len": N} per
/// line; "": the first character decides, '[' sharegpt, '{' jsonl). Errors are kInvalidInput
/// naming the file, the line and the field.
Status LoadDataset(const std::string& path, const std::string& format, Dataset* out);

/// SHA-256 of `bytes` as 64 hex digits.
std::string Sha256Hex(const std::string& bytes);

}  // namespace cb
