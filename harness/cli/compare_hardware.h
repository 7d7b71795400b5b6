#pragma once

/// `clusterbench compare-hardware`, also run by `clusterbench run --suite` for a suite's
/// `compare_hardware` section: the cheapest simulated layout of a model on each catalog system
/// that meets latency objectives.

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "harness/core/status.h"

namespace cb {

struct CompareHardwareFlags {
  std::string model, systems, dtypes, kv_dtype, routing, format = "table", catalog_dir;
  std::string results_dir = "results";
  std::string layouts;  ///< file for every costed layout; empty: RESULTS_DIR/compare-hardware/
  int64_t prompt_len = 1024, gen_len = 1024;
  double slo_tpot = 0, slo_ttft = 0;
  /// Serve the cheapest layouts at this share of their steady-state rate (0: do not).
  double serve_load = 0.8;
  bool no_disaggregation = false;
  bool quiet = false;
  std::string origin = "command line";  ///< where the request came from, for errors
};

/// Searches every system, writes every costed layout (atomically) and renders the best layout
/// per system in f.format (table, md, csv, json, jsonl) into *text. kInvalidInput naming the
/// flag (or suite field) for bad input.
Status RunCompareHardware(const CompareHardwareFlags& f, std::string* text);

/// A suite's `compare_hardware` section: {"model", "systems" (list), "prompt_len", "gen_len",
/// "slo_tpot", "slo_ttft", "dtype" (list), "kv_dtype", "routing", "disaggregation" (bool),
/// "serve_load"}.
Status CompareHardwareFromSuite(const nlohmann::json& section, const std::string& origin,
                                CompareHardwareFlags* f);

}  // namespace cb
