// `clusterbench serve`: exposes the latest result of each series of a results directory on
// /metrics for Prometheus to scrape, re-reading the directory when its files change.
#include <prometheus/exposer.h>

#include <chrono>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <memory>
#include <thread>

#include "harness/cancel.h"
#include "harness/cli/commands.h"
#include "results/prometheus/results_dir_collector.h"

namespace cb {
namespace {

/// civetweb workers, and how long a client may take to send its request.
constexpr int kServeThreads = 32;
constexpr int kServeRequestTimeoutMs = 5000;

struct ServeFlags {
  std::string listen = "127.0.0.1:9464";
  std::string results = "results";
  bool quiet = false;
};

int Serve(const ServeFlags& f) {
  if (!std::filesystem::is_directory(f.results)) {
    std::fprintf(stderr, "clusterbench serve: --results '%s': not a directory\n",
                 f.results.c_str());
    return 2;
  }
  if (f.listen.find(':') == std::string::npos) {
    std::fprintf(stderr, "clusterbench serve: --listen '%s': expected HOST:PORT, e.g. %s\n",
                 f.listen.c_str(), "127.0.0.1:9464");
    return 2;
  }
  InstallCancelHandlers();
  auto collector = std::make_shared<prom::ResultsDirCollector>(f.results);
  const size_t runs = collector->Refresh();
  std::unique_ptr<prometheus::Exposer> exposer;
  try {
    // Enough workers that idle or slow clients cannot starve a scrape, and a bound on how long
    // one may hold a worker without sending a request.
    exposer = std::make_unique<prometheus::Exposer>(std::vector<std::string>{
        "listening_ports", f.listen, "num_threads", std::to_string(kServeThreads),
        "request_timeout_ms", std::to_string(kServeRequestTimeoutMs), "enable_keep_alive", "no"});
  } catch (const std::exception& e) {
    std::fprintf(stderr, "clusterbench serve: cannot listen on %s: %s\n", f.listen.c_str(),
                 e.what());
    return 1;
  }
  exposer->RegisterCollectable(collector);
  const std::vector<int> ports = exposer->GetListeningPorts();
  const std::string host = f.listen.substr(0, f.listen.rfind(':'));
  // One line on stderr that scripts (and the tests) can read the port from.
  std::fprintf(stderr,
               "clusterbench serve: listening on http://%s:%d/metrics (%zu run files in %s)\n",
               host.c_str(), ports.empty() ? 0 : ports[0], runs, f.results.c_str());
  std::fflush(stderr);
  while (!CancelRequested()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  if (!f.quiet) std::fprintf(stderr, "clusterbench serve: stopped\n");
  return 0;
}

}  // namespace

CommandFn AddServeCommand(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "serve",
      "Expose the latest result of each series in a results directory on /metrics for "
      "Prometheus (re-read when files change; stops on SIGINT/SIGTERM)");
  auto f = std::make_shared<ServeFlags>();
  cmd->add_option("--listen", f->listen,
                  "HOST:PORT to listen on; loopback by default, port 0 picks a free one")
      ->default_val("127.0.0.1:9464");
  cmd->add_option("--results", f->results, "Results directory, searched recursively for run files")
      ->default_val("results");
  cmd->add_flag("--quiet,-q", f->quiet, "No progress on stderr");
  return [f] { return Serve(*f); };
}

}  // namespace cb
