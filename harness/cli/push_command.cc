// `clusterbench push DIR`: republishes stored results to a Pushgateway (the latest run of each
// series, as `run --push` does; pushing the same files again changes nothing) and deletes the
// groups of series not seen for N days.
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>

#include "harness/cli/commands.h"
#include "harness/cli/output.h"
#include "results/prometheus/prometheus_sink.h"
#include "results/prometheus/pushgateway_admin.h"
#include "results/run_files.h"
#include "results/run_status.h"
#include "results/text_table.h"

namespace cb {
namespace {

struct PushFlags {
  std::vector<std::string> paths;
  prom::PushOptions push;
  double delete_stale_days = 0;  ///< 0: delete nothing
  bool dry_run = false;
  std::shared_ptr<OutputFlags> output;
};

std::string LabelText(const std::map<std::string, std::string>& labels) {
  std::string out;
  for (const auto& [k, v] : labels) out += (out.empty() ? "" : ",") + k + "=\"" + v + "\"";
  return "{" + out + "}";
}

void AddRow(TextTable* t, const std::string& action, const std::string& status,
            const std::map<std::string, std::string>& group, const std::string& result) {
  t->rows.push_back({action, status, LabelText(group), result});
  t->records.push_back(
      {{"action", action}, {"status", status}, {"group", group}, {"result", result}});
}

/// Deletes the stale groups of the gateway; rows for each. False when a deletion failed.
bool DeleteStale(const PushFlags& f, const std::vector<std::map<std::string, std::string>>& current,
                 TextTable* t) {
  std::vector<prom::GatewayGroup> groups;
  if (Status s = prom::ListGatewayGroups(f.push, &groups); !s.ok()) {
    std::fprintf(stderr, "clusterbench push: cannot list the gateway's groups: %s\n",
                 s.message().c_str());
    return false;
  }
  const double now =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  bool ok = true;
  for (const prom::GatewayGroup& g : groups) {
    const std::string why = prom::StaleReason(g, f.push.job, now, f.delete_stale_days, current);
    if (why.empty()) continue;
    std::string result = "deleted: " + why;
    if (f.dry_run) {
      result = "would delete (--dry-run): " + why;
    } else if (Status s = prom::DeleteGatewayGroup(f.push, g.labels); !s.ok()) {
      result = "delete failed: " + s.message();
      ok = false;
    }
    if (!f.push.quiet) {
      std::fprintf(stderr, "clusterbench push: %s %s\n", LabelText(g.labels).c_str(),
                   result.c_str());
    }
    AddRow(t, "DELETE", "-", g.labels, result);
  }
  return ok;
}

int Push(PushFlags& f) {
  auto fail = [](int code, const std::string& what) {
    std::fprintf(stderr, "clusterbench push: %s\n", what.c_str());
    return code;
  };
  std::string host, port;
  if (Status s = prom::ParsePushUrl(f.push.url, &host, &port, "--url"); !s.ok()) {
    return fail(2, s.message());
  }
  if (f.delete_stale_days < 0) return fail(2, "--delete-stale: must be a number of days >= 0");
  std::vector<RunRecord> records;
  for (const std::string& path : f.paths) {
    std::vector<LoadedRun> runs;
    if (Status s = LoadRunFiles(path, &runs); !s.ok()) return fail(2, s.message());
    for (LoadedRun& r : runs) records.push_back(std::move(r.record));
  }
  TextTable t;
  t.columns = {"action", "status", "group", "result"};
  std::vector<prom::PushOutcome> outcomes;
  Status pushed = Status::Ok();
  if (!f.dry_run) pushed = prom::PushRuns(records, f.push, &outcomes);
  std::vector<std::map<std::string, std::string>> current;
  for (const prom::SeriesLatest& s : prom::LatestPerSeries(records)) {  // PushRuns' order
    std::map<std::string, std::string> group = {{"job", f.push.job}};
    for (const auto& [k, v] : prom::SeriesLabels(*s.latest)) group[k] = v;
    current.push_back(group);
  }
  const std::vector<prom::SeriesLatest> latest = prom::LatestPerSeries(records);
  for (size_t i = 0; i < current.size(); ++i) {
    if (f.dry_run) {
      const RunRecord& r = *latest[i].latest;
      AddRow(&t, r.Publishable() ? "PUT" : "POST", RunStatusLabel(r), current[i],
             "would push (--dry-run)");
    } else if (i < outcomes.size()) {
      AddRow(&t, outcomes[i].method, outcomes[i].status, current[i],
             outcomes[i].error.empty() ? "pushed" : "failed: " + outcomes[i].error);
    }
  }
  bool deleted = true;
  if (f.delete_stale_days > 0 && pushed.ok()) deleted = DeleteStale(f, current, &t);
  t.notes.push_back(std::to_string(records.size()) + " run files, " +
                    std::to_string(current.size()) + " series; gateway " + f.push.url + ", job " +
                    f.push.job);
  std::string text;
  if (Status s = FormatTable(t, f.output->format, &text); !s.ok()) return fail(2, s.message());
  std::fputs(text.c_str(), stdout);
  if (!pushed.ok()) return fail(prom::kPublishFailedExitCode, "error: " + pushed.message());
  return deleted ? 0 : prom::kPublishFailedExitCode;
}

}  // namespace

CommandFn AddPushCommand(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "push",
      "Republish stored results to a Prometheus Pushgateway (the latest run of each series, as "
      "run --push does; idempotent) and delete the groups of series not seen for N days. Exit "
      "3 when the push or a deletion failed");
  auto f = std::make_shared<PushFlags>();
  cmd->add_option("DIR", f->paths, "Result files or directories (searched recursively)")
      ->required();
  cmd->add_option("--url", f->push.url, "Pushgateway, http://HOST[:PORT][/PATH]")->required();
  cmd->add_option("--job", f->push.job, "The job label of the groups")->default_val("clusterbench");
  cmd->add_option("--timeout", f->push.timeout_s, "Seconds one HTTP request may take")
      ->default_val(10)
      ->check(CLI::PositiveNumber);
  cmd->add_option("--retries", f->push.retries, "Push attempts after the first, with backoff")
      ->default_val(2)
      ->check(CLI::Range(0, 10));
  cmd->add_option("--delete-stale", f->delete_stale_days,
                  "Delete the job's groups whose series last ran more than DAYS days ago, and "
                  "groups keyed by instance/Hostname/UUID that a pushed group supersedes");
  cmd->add_flag("--dry-run", f->dry_run, "Push nothing, delete nothing: say what would be done");
  cmd->add_flag("--quiet,-q", f->push.quiet, "No progress on stderr");
  f->output = AddOutputFlags(cmd, {"table", "md", "csv", "json", "jsonl"}, "table");
  f->push.who = "clusterbench push";
  return [f] { return Push(*f); };
}

}  // namespace cb
