// clusterbench cost: re-prices stored results under other cost assumptions without rerunning.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

#include "harness/cli/commands.h"
#include "harness/cli/cost_flags.h"
#include "harness/cli/output.h"
#include "harness/cost/cost_model.h"
#include "harness/cost/energy_cost.h"
#include "harness/cost/run_energy_cost.h"
#include "harness/scenarios/serving_metrics.h"
#include "results/atomic_file.h"
#include "results/formats.h"
#include "results/record_json.h"
#include "results/text_table.h"
#include "workloads/json_fields.h"

namespace cb {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

struct CostCmdFlags {
  std::vector<std::string> paths;
  std::shared_ptr<OutputFlags> output;  ///< --format, -o/--output
  CostFlags cost;
};

struct Repriced {
  std::string file;
  RunRecord record;
  double stored_blended = NAN;  ///< cost_usd_per_million_tokens before re-pricing
};

int Fail(const Status& s) {
  std::fprintf(stderr, "clusterbench cost: %s\n", s.message().c_str());
  return s.ExitCode();
}

Status ListFiles(const std::vector<std::string>& paths, std::vector<std::string>* files) {
  for (const std::string& p : paths) {
    std::error_code ec;
    if (fs::is_directory(p, ec)) {
      std::vector<std::string> found;
      for (const auto& e : fs::directory_iterator(p, ec)) {
        if (e.is_regular_file() && e.path().extension() == ".json") found.push_back(e.path());
      }
      std::sort(found.begin(), found.end());
      if (found.empty()) return Status::InvalidInput(p + ": no *.json result files");
      files->insert(files->end(), found.begin(), found.end());
    } else if (fs::is_regular_file(p, ec)) {
      files->push_back(p);
    } else {
      return Status::InvalidInput(p + ": no such result file or directory");
    }
  }
  return Status::Ok();
}

Status LoadRecord(const std::string& path, RunRecord* out) {
  std::string text;
  CB_RETURN_IF_ERROR(ReadFile(path, &text));
  json doc;
  CB_RETURN_IF_ERROR(ParseJsonText(text, path, &doc));
  return FromJson(doc, path, out);
}

std::string Fig(double v) {
  if (!std::isfinite(v)) return "-";
  char buf[32];
  const double a = std::fabs(v);
  std::snprintf(buf, sizeof buf, a >= 100 ? "%.0f" : a >= 1 ? "%.3g" : "%.3g", v);
  return buf;
}

std::string Raw(double v) {
  if (!std::isfinite(v)) return "";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

double Value(const RunRecord& r, const char* name) {
  const Metric* m = r.FindMetric(name);
  return m ? m->value : NAN;
}

std::vector<std::string> Header() {
  return {"file",     "model",     "device",    "catalog",    "basis",  "$/device-h",
          "tok/s in", "tok/s out", "$/Mtok in", "$/Mtok out", "$/Mtok", "stored $/Mtok"};
}

std::vector<std::string> Row(const Repriced& p, bool raw) {
  const RunRecord& r = p.record;
  auto num = [&](double v) { return raw ? Raw(v) : Fig(v); };
  const CostRecord* c = r.cost ? &*r.cost : nullptr;
  return {fs::path(p.file).filename().string(),
          r.workload.model.name,
          r.device.name,
          c ? c->catalog_id : "",
          c ? c->basis : (r.status == "ok" ? "none" : r.status),
          num(c ? c->cost_per_device_hour_usd : NAN),
          num(c ? c->input_tokens_per_second : NAN),
          num(c ? c->output_tokens_per_second : NAN),
          num(Value(r, kCostInput)),
          num(Value(r, kCostOutput)),
          num(Value(r, kCostBlended)),
          num(p.stored_blended)};
}

TextTable Render(const std::vector<Repriced>& rows, const std::string& format) {
  TextTable t;
  t.columns = Header();
  for (size_t c = 0; c < t.columns.size(); ++c) t.numeric.push_back(c >= 5);
  for (const Repriced& p : rows) t.rows.push_back(Row(p, format == "csv"));
  t.notes.push_back(
      "All $/Mtok are modelled: cost_per_device_hour x devices / (tokens/s x 3600) x 1e6; "
      "the inputs and their sources are in each result's cost section (--format json).");
  for (const Repriced& p : rows) {
    if (!p.record.cost) continue;
    for (const std::string& n : p.record.cost->notes) {
      t.notes.push_back(fs::path(p.file).filename().string() + ": " + n);
    }
  }
  return t;
}

int RunCost(const CostCmdFlags& f) {
  json given = json::object();
  if (Status s = CostFlagsToOverrides(f.cost, &given); !s.ok()) return Fail(s);
  CostOverrides overrides;
  if (Status s = ReadCostOverrides(FieldReader(given, "command line"), &overrides); !s.ok()) {
    return Fail(s);
  }
  DeviceCatalog catalog;
  const std::string dir = f.cost.catalog_dir.empty() ? DefaultCatalogDir() : f.cost.catalog_dir;
  if (Status s = DeviceCatalog::Load(dir, &catalog); !s.ok()) return Fail(s);
  if (!overrides.catalog_device.empty() && catalog.Find(overrides.catalog_device) == nullptr) {
    return Fail(Status::InvalidInput("command line: --catalog-device: unknown catalog device '" +
                                     overrides.catalog_device + "'; known: " + catalog.Ids()));
  }
  std::vector<std::string> files;
  if (Status s = ListFiles(f.paths, &files); !s.ok()) return Fail(s);

  std::vector<Repriced> rows;
  for (const std::string& file : files) {
    Repriced p;
    p.file = file;
    if (Status s = LoadRecord(file, &p.record); !s.ok()) return Fail(s);
    RunRecord& r = p.record;
    p.stored_blended = Value(r, kCostBlended);
    if (r.status != "ok") {
      rows.push_back(std::move(p));
      continue;
    }
    CostBaseline base;
    if (r.cost && overrides.catalog_device.empty()) {
      base = BaselineFromRecord(*r.cost, file);
    } else {
      const CatalogEntry* entry = nullptr;
      std::string by;
      if (Status s = EnergyCostPlanner::ResolveEntry(catalog, overrides.catalog_device,
                                                     "command line", r.device, &entry, &by);
          !s.ok()) {
        return Fail(s);
      }
      if (entry == nullptr) {
        base.rental_usd_per_hour = base.capex_usd = base.all_in_power_w = NAN;
      } else {
        base = BaselineFromCatalog(*entry, by);
      }
    }
    r.cost = ResolveCost(base, overrides, "clusterbench cost command line");
    AddCostMetrics(&r);
    FixServingEnergyCost(&r);  // serving runs: tokens and time of the measured pass
    rows.push_back(std::move(p));
  }

  std::string text;
  const std::string& format = f.output->format;
  if (format == "json" || format == "jsonl") {  // the re-priced result documents
    std::vector<RunRecord> records;
    for (const Repriced& p : rows) records.push_back(p.record);
    if (Status s = FormatRuns(records, format, &text); !s.ok()) return Fail(s);
  } else if (Status s = FormatTable(Render(rows, format), format, &text); !s.ok()) {
    return Fail(s);
  }
  std::fputs(text.c_str(), stdout);
  std::fflush(stdout);
  return 0;
}

}  // namespace

CommandFn AddCostCommand(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "cost",
      "Re-price stored results (files or directories of run JSON) under other cost assumptions "
      "without rerunning");
  auto f = std::make_shared<CostCmdFlags>();
  cmd->add_option("results", f->paths, "Result files (RESULT.json) or directories of them")
      ->required();
  f->output = AddOutputFlags(cmd, {"table", "md", "csv", "json", "jsonl"}, "table");
  AddCostFlags(cmd, &f->cost, /*with_energy=*/false);
  return [f] { return RunCost(*f); };
}

}  // namespace cb
