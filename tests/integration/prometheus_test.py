#!/usr/bin/env python3
"""Integration tests of clusterbench's Prometheus sinks against the real programs.

Each test starts what it talks to (prometheus-pushgateway, prometheus, `clusterbench serve`)
on free loopback ports with temporary data directories, bounds every wait, and stops them
(children also die with this process: PR_SET_PDEATHSIG). Exit status: 0 passed, 1 failed,
77 skipped (only when prometheus, prometheus-pushgateway or promtool is not installed).

usage: prometheus_test.py TEST --clusterbench BIN --source-dir DIR --results-dir DIR
TEST: push_scrape | push_down | textfile_serve | push_republish
"""
import argparse
import base64
import difflib
import glob
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

import prom_dashboards as pdash
import prom_samples
from prom_common import (FAILURES, Proc, _die_with_parent, check, close, free_port, http_get,
                         iso_to_unix, parse_exposition, prom_query, run_in_scratch, wait_http)
from prom_samples import check_readme, check_samples, find_sample, series_labels

SKIP = 77
ARGS = None
PROBE_BACKEND = "sim:nvidia-h100-sxm"


def run_cli(args, timeout=300):
    t0 = time.time()
    r = subprocess.run([ARGS.clusterbench] + args, capture_output=True, text=True,
                       timeout=timeout, stdin=subprocess.DEVNULL)
    return r.returncode, r.stdout, r.stderr, time.time() - t0


def tiny_run_args(out, extra):
    # Steady fake ceiling probes (unless another fault is injected): these checks need ok runs
    # to be published as valid, and on a shared host real probes often disagree and cached
    # ceilings are often stale (either makes the run unstable, not published). The probes
    # have their own tests (tests/integration/ceiling_cli_test.cc).
    steady = [] if "--inject-fault" in extra else ["--inject-fault", "ceiling-steady"]
    return ["run", "--results-dir", ARGS.results_dir, "--out", out, "--model", "tiny",
            "--batch", "2", "--prompt-len", "16", "--gen-len", "4", "--repetitions", "3",
            "--format", "csv"] + steady + extra


def promtool_check(text, what):
    r = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                       text=True, timeout=60)
    check(r.returncode == 0,
          f"promtool check metrics on {what}: exit {r.returncode}: {r.stdout}{r.stderr}")


def provisioning_ok():
    for rel in ("results/grafana/provisioning/datasources/clusterbench.yaml",
                "results/grafana/provisioning/dashboards/clusterbench.yaml"):
        path = os.path.join(ARGS.source_dir, rel)
        ok = os.path.isfile(path)
        if check(ok, f"{rel} exists"):
            with open(path) as f:
                text = f.read()
            check("apiVersion: 1" in text, f"{rel} is Grafana provisioning (apiVersion: 1)")


# ---------------------------------------------------------------------------------------------

def gateway_argv(port):
    """A Pushgateway of this test only: Debian's defaults to --persistence.file=/var/lib/
    prometheus/pushgateway.data, which every gateway on the machine would load and rewrite."""
    return ["prometheus-pushgateway", f"--web.listen-address=127.0.0.1:{port}",
            "--persistence.file="]


def probe_runs(tmp):
    """Simulated runs for the dashboards: an offline and a single-stream run that differ only
    in their scenario (the merge test's pair), and a server run (the rate label). Modelled,
    so seconds. Returns (directory, result documents)."""
    out = os.path.join(tmp, "probe")
    common = ["--results-dir", ARGS.results_dir, "--out", out, "--model", "tiny", "--backend",
              PROBE_BACKEND, "--batch", "1", "--prompt-len", "16", "--gen-len", "8",
              "--dtype", "bf16", "--no-verify", "-q"]
    serving = ["--requests", "16", "--min-requests", "0", "--min-duration", "0", "--max-cv", "0",
               "--slo-ttft", "1", "--slo-tpot", "0.1"]
    for extra in (["--scenario", "offline"], ["--scenario", "single-stream"] + serving,
                  ["--scenario", "server", "--rate", "50"] + serving):
        code, _, stderr, _ = run_cli(["run"] + common + extra)
        check(code == 0, f"probe run {extra[:2]} exits 0: {stderr[-800:]}")
    docs = [json.load(open(p)) for p in sorted(glob.glob(f"{out}/*.json"))]
    return out, docs


def start_prometheus(tmp, pg_port, tsdb):
    prom_port = free_port()
    config = os.path.join(tmp, "prometheus.yml")
    with open(config, "w") as f:
        f.write(f"""global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: pushgateway
    honor_labels: true
    static_configs:
      - targets: ['127.0.0.1:{pg_port}']
""")
    proc = Proc("prometheus", ["prometheus", f"--config.file={config}",
                               f"--storage.tsdb.path={tsdb}", "--storage.tsdb.retention.time=30d",
                               f"--web.listen-address=127.0.0.1:{prom_port}"], tmp)
    return proc, f"http://127.0.0.1:{prom_port}"


def test_push_scrape(tmp):
    pg_port = free_port()
    pg = f"http://127.0.0.1:{pg_port}"
    with Proc("pushgateway", gateway_argv(pg_port), tmp) as gw:
        wait_http(f"{pg}/-/ready", "pushgateway", gw)
        out = os.path.join(tmp, "runs")
        textfile = os.path.join(tmp, "textfile", "clusterbench.prom")
        code, stdout, stderr, took = run_cli(tiny_run_args(
            out, ["--dtype", "fp32,bf16", "--push", pg, "--textfile", textfile]))
        if not check(code == 0, f"run with --push exits 0 (got {code}): {stderr}"):
            return
        docs = [json.load(open(p)) for p in sorted(glob.glob(f"{out}/*.json"))]
        check(len(docs) == 2, f"two result files ({len(docs)})")
        check(stderr.count("pushed tiny") == 2, f"both series reported pushed: {stderr}")
        with open(textfile) as f:
            text = f.read()
        promtool_check(text, "the --textfile output")
        check_samples(parse_exposition(text), docs, "textfile")
        pushed = parse_exposition(http_get(f"{pg}/metrics"))
        check_samples(pushed, docs, "pushgateway")

        # The dashboards' probe, republished with `clusterbench push`; then a week of history.
        probe_dir, probe_docs = probe_runs(tmp)
        code, _, stderr, _ = run_cli(["push", probe_dir, "--url", pg, "-q"])
        check(code == 0, f"push of the probe runs exits 0: {stderr}")
        history = [s for s in parse_exposition(http_get(f"{pg}/metrics"))
                   if s[0].startswith("clusterbench_")]
        tsdb = os.path.join(tmp, "tsdb")
        check(pdash.backfill(history, tsdb) == 0, "promtool backfills a week of history")

        pr, prom = start_prometheus(tmp, pg_port, tsdb)
        with pr:
            wait_http(f"{prom}/-/ready", "prometheus", pr)
            deadline = time.time() + 30
            while time.time() < deadline:
                n = len(prom_query(prom, 'clusterbench_run_valid{job="clusterbench"}')["result"])
                if n >= 2 + len(probe_docs):
                    time.sleep(1.5)  # one more scrape so that every family is in
                    break
                time.sleep(0.5)
            r = prom_query(prom, '{__name__=~"clusterbench_.+",job="clusterbench"}')["result"]
            scraped = [(s["metric"]["__name__"], s["metric"], float(s["value"][1])) for s in r]
            check(scraped, "prometheus scraped clusterbench metrics")
            families = check_samples(scraped, docs + probe_docs, "prometheus")
            for n, l, v in scraped:
                check(l.get("job") == "clusterbench" and not l.get("instance"),
                      f"{n}: job and the series labels are the grouping key, no instance ({l})")
            check_readme(scraped, families)
            common = set.intersection(*[{re.sub(r"_(sum|count)$", "", n) for n, l, _ in scraped
                                         if l.get("backend") == PROBE_BACKEND
                                         and l.get("scenario") == sc}
                                        for sc in ("offline", "single-stream")])
            probe = {"fixed": {"backend": PROBE_BACKEND, "scenario": "offline|single-stream"},
                     "scenarios": ["offline", "single-stream"], "common": common}
            present = {k for _, l, _ in scraped for k in l}
            pdash.check_dashboards(check, lambda e: prom_query(prom, e), ARGS.source_dir,
                                   families, probe, present)
            provisioning_ok()
        check_failed_night(pg, docs, tmp)


def check_failed_night(pg, docs, tmp):
    """A failed night: POST, so the last success stays and the figures become NaN."""
    bf16 = [d for d in docs if d["workload"]["dtype"] == "bf16"][0]
    code, _, stderr, _ = run_cli(tiny_run_args(
        os.path.join(tmp, "runs-bad"),
        ["--dtype", "bf16", "--push", pg, "--inject-fault", "nan-logits"]))
    check(code == 1, f"a run with NaN logits exits 1 (got {code}): {stderr}")
    check("(invalid, POST)" in stderr, f"an invalid run is pushed with POST: {stderr}")
    after = parse_exposition(http_get(f"{pg}/metrics"))
    base = series_labels(bf16)
    check(find_sample(after, "clusterbench_run_valid", base) == 0.0,
          "after a failed night run_valid is 0")
    check(find_sample(after, "clusterbench_run_status", dict(base, status="invalid")) == 1.0,
          "after a failed night run_status{status=invalid} is 1")
    last_ok = find_sample(after, "clusterbench_last_success_timestamp_seconds", base)
    check(last_ok is not None and close(last_ok, iso_to_unix(bf16["run"]["end_time"])),
          f"after a failed night the last success is the good run's ({last_ok})")
    thr = find_sample(after, "clusterbench_throughput_tokens_per_second",
                      dict(base, phase="decode"))
    check(thr is not None and math.isnan(thr),
          f"after a failed night the decode throughput is NaN, not yesterday's ({thr})")
    fp32 = [d for d in docs if d["workload"]["dtype"] == "fp32"][0]
    check(find_sample(after, "clusterbench_run_valid", series_labels(fp32)) == 1.0,
          "the other series is untouched")


def gateway_groups(pg):
    doc = json.loads(http_get(f"{pg}/api/v1/metrics"))
    return [{k: v for k, v in g["labels"].items() if v} for g in doc["data"]]


def without_push_times(text):
    """The gateway's groups without when they were pushed (and without its own metrics)."""
    return "\n".join(l for l in text.splitlines() if l.startswith("clusterbench_") or
                     l.startswith("# HELP clusterbench_") or l.startswith("# TYPE clusterbench_"))


def test_push_republish(tmp):
    """clusterbench push: republishes stored results idempotently, deletes stale groups."""
    pg_port = free_port()
    pg = f"http://127.0.0.1:{pg_port}"
    out = os.path.join(tmp, "runs")
    code, _, stderr, _ = run_cli(tiny_run_args(out, ["--dtype", "fp32,bf16"]))
    if not check(code == 0, f"run exits 0: {stderr}"):
        return
    # An old series: a copy whose run ended 30 days ago, under another model name.
    doc = json.load(open(sorted(glob.glob(f"{out}/*.json"))[0]))
    old = json.loads(json.dumps(doc))
    old["model"]["name"] = "retired-model"
    old["run"]["id"] = "old-run"
    for key in ("start_time", "end_time"):
        old["run"][key] = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(time.time() - 30 * 86400))
    old_dir = os.path.join(tmp, "old")
    os.makedirs(old_dir)
    with open(os.path.join(old_dir, "old.json"), "w") as f:
        json.dump(old, f)
    with Proc("pushgateway", gateway_argv(pg_port), tmp) as gw:
        wait_http(f"{pg}/-/ready", "pushgateway", gw)
        code, _, stderr, _ = run_cli(["push", old_dir, "--url", pg, "-q"])
        check(code == 0, f"push of the old series exits 0: {stderr}")
        # A group as versions before `clusterbench push` keyed it (instance and Hostname).
        labels = dict(series_labels(doc), instance=doc["run"]["host"],
                      Hostname=doc["run"]["host"])
        path = "/".join(f"{k}@base64/{base64.urlsafe_b64encode(v.encode()).decode()}"
                        for k, v in labels.items())
        legacy = f"{pg}/metrics/job/clusterbench/{path}"
        req = urllib.request.Request(legacy, data=b"legacy_marker 1\n", method="PUT")
        urllib.request.urlopen(req, timeout=5).read()
        check(len(gateway_groups(pg)) == 2, f"old and legacy groups: {gateway_groups(pg)}")

        code, first, stderr, _ = run_cli(["push", out, "--url", pg, "--format", "json"])
        check(code == 0, f"push DIR exits 0: {stderr}")
        rows = json.loads(first)
        check(len([r for r in rows if r["action"] == "PUT"]) == 2, f"two series PUT: {rows}")
        once = without_push_times(http_get(f"{pg}/metrics"))
        code, _, stderr, _ = run_cli(["push", out, "--url", pg, "-q"])
        twice = without_push_times(http_get(f"{pg}/metrics"))
        diff = [l for l in difflib.unified_diff(once.splitlines(), twice.splitlines(), lineterm="")]
        check(code == 0 and twice == once,
              "pushing the same results again changes nothing (idempotent): " +
              "\n".join(diff[:20]))
        check_samples(parse_exposition(http_get(f"{pg}/metrics")),
                      [json.load(open(p)) for p in sorted(glob.glob(f"{out}/*.json"))],
                      "pushgateway after push DIR")

        code, text, stderr, _ = run_cli(["push", out, "--url", pg, "--delete-stale", "14",
                                         "--format", "json", "-q"])
        check(code == 0, f"push --delete-stale exits 0: {stderr}")
        deleted = [r for r in json.loads(text) if r["action"] == "DELETE"]
        check(len(deleted) == 2, f"the old and the legacy group are deleted: {deleted}")
        groups = gateway_groups(pg)
        check(len(groups) == 2 and all("instance" not in g and g.get("model") == "tiny"
                                       for g in groups),
              f"only the two current groups are left: {groups}")
    # The gateway is gone: the push fails with exit 3, nothing is lost.
    code, _, stderr, took = run_cli(["push", out, "--url", pg, "--retries", "0", "--timeout",
                                     "2"], timeout=60)
    check(code == 3 and "failed" in stderr, f"push to a dead gateway exits 3: {code} {stderr}")
    code, _, stderr, _ = run_cli(["push", out, "--url", "pushgateway:9091"])
    check(code == 2 and "--url" in stderr, f"a bad --url exits 2 naming it: {stderr}")


def test_push_down(tmp):
    # Nothing listens on this port: every attempt is refused at once.
    port = free_port()
    out = os.path.join(tmp, "runs")
    code, _, stderr, took = run_cli(tiny_run_args(
        out, ["--push", f"http://127.0.0.1:{port}", "--push-timeout", "2",
              "--push-retries", "2"]), timeout=120)
    print(f"gateway down: exit {code} after {took:.1f} s\n{stderr}")
    check(code == 3, f"a failed push exits 3 (got {code})")
    check(len(glob.glob(f"{out}/*.json")) == 1, "the JSON result file is written anyway")
    check("attempt 3 of 3" in stderr and "failed" in stderr,
          "every attempt is reported")
    check("error: push to" in stderr and "JSON result files are written" in stderr,
          "the failure is summarised")
    check(took < 60, f"bounded ({took:.1f} s)")

    # A gateway that accepts connections and never answers: each attempt hits the deadline.
    with socket.socket() as hung:
        hung.bind(("127.0.0.1", 0))
        hung.listen(16)
        port = hung.getsockname()[1]
        out2 = os.path.join(tmp, "runs-hung")
        t0 = time.time()
        code, _, stderr, took = run_cli(tiny_run_args(
            out2, ["--push", f"http://127.0.0.1:{port}", "--push-timeout", "1",
                   "--push-retries", "1"]), timeout=120)
        print(f"gateway hung: exit {code} after {took:.1f} s\n{stderr}")
        check(code == 3, f"a push that times out exits 3 (got {code})")
        check(len(glob.glob(f"{out2}/*.json")) == 1, "the JSON result file is written anyway")
        check("no answer within 1 s" in stderr, "the timeout is reported")
        check("attempt 2 of 2" in stderr, "the push is retried")
        check(took < 60, f"no hang ({took:.1f} s)")

    # A failed benchmark keeps exit code 1 when the push fails too.
    code, _, stderr, _ = run_cli(tiny_run_args(
        os.path.join(tmp, "runs-bad"), ["--push", f"http://127.0.0.1:{free_port()}",
                                        "--push-retries", "0", "--inject-fault", "nan-logits"]))
    check(code == 1, f"invalid run + failed push exits 1 (got {code})")

    # A malformed URL is bad input, found before anything runs.
    code, _, stderr, took = run_cli(["run", "--model", "tiny", "--push", "pushgateway:9091"])
    check(code == 2 and "--push" in stderr, f"a bad --push URL exits 2: {code} {stderr}")


def test_textfile_serve(tmp):
    results = os.path.join(tmp, "results")
    runs = os.path.join(results, "runs")
    textfile = os.path.join(tmp, "clusterbench.prom")
    code, _, stderr, _ = run_cli(tiny_run_args(runs, ["--textfile", textfile]))
    if not check(code == 0, f"run exits 0: {stderr}"):
        return
    with open(textfile) as f:
        promtool_check(f.read(), "the --textfile output")
    first = sorted(glob.glob(f"{runs}/*.json"))
    doc = json.load(open(first[0]))
    # a file that is not a run (the ceilings cache lives under results/ too) is ignored
    os.makedirs(os.path.join(results, "ceilings"), exist_ok=True)
    with open(os.path.join(results, "ceilings", "host.json"), "w") as f:
        f.write('{"not": "a run"}')

    # A failed run of the series in the textfile keeps the previous file's last success.
    code, _, _, _ = run_cli(tiny_run_args(os.path.join(tmp, "bad"),
                                          ["--textfile", textfile, "--inject-fault",
                                           "nan-logits"]))
    with open(textfile) as f:
        text = f.read()
    promtool_check(text, "the --textfile output of a failed run")
    s = parse_exposition(text)
    base = series_labels(doc)
    check(find_sample(s, "clusterbench_run_valid", base) == 0.0, "textfile: failed run invalid")
    check(close(find_sample(s, "clusterbench_last_success_timestamp_seconds", base) or 0,
                iso_to_unix(doc["run"]["end_time"])),
          "textfile: the last success survives a failed run")

    err_path = os.path.join(tmp, "serve.err")
    with open(err_path, "w") as err:
        serve = subprocess.Popen([ARGS.clusterbench, "serve", "--listen", "127.0.0.1:0",
                                  "--results", results], stderr=err, stdout=subprocess.DEVNULL,
                                 stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)
    try:
        port = None
        deadline = time.time() + 20
        while time.time() < deadline and port is None:
            m = re.search(r"listening on http://127\.0\.0\.1:(\d+)/metrics", open(err_path).read())
            if m:
                port = int(m.group(1))
            elif serve.poll() is not None:
                break
            else:
                time.sleep(0.1)
        if not check(port, f"serve says where it listens: {open(err_path).read()}"):
            return
        url = f"http://127.0.0.1:{port}/metrics"
        text = http_get(url)
        promtool_check(text, "serve's /metrics")
        samples = parse_exposition(text)
        check_samples(samples, [doc], "serve")
        check(find_sample(samples, "clusterbench_serve_files", {"state": "ignored"}) == 1.0,
              "serve ignores files that are not runs")

        # A newer run of the series appears at the next scrape (no restart).
        newer = json.loads(json.dumps(doc))
        later = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(
            iso_to_unix(doc["run"]["end_time"]) + 3600))
        newer["run"]["id"] = "later-run"
        newer["run"]["end_time"] = later
        newer["metrics"]["decode_tokens_per_second"]["value"] = 12345.0
        with open(os.path.join(runs, "later.json"), "w") as f:
            json.dump(newer, f)
        samples = parse_exposition(http_get(url))
        got = find_sample(samples, "clusterbench_throughput_tokens_per_second",
                          dict(base, phase="decode"))
        check(got == 12345.0, f"serve reloads: the newest run's decode throughput ({got})")
        # An even newer failed run: invalid now, last success still the newer good one.
        failed = json.loads(json.dumps(newer))
        failed["run"]["id"] = "failed-run"
        failed["run"]["status"] = "invalid"
        failed["run"]["end_time"] = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(
            iso_to_unix(later) + 3600))
        with open(os.path.join(runs, "failed.json"), "w") as f:
            json.dump(failed, f)
        text = http_get(url)
        promtool_check(text, "serve's /metrics with a failed run")
        samples = parse_exposition(text)
        check(find_sample(samples, "clusterbench_run_valid", base) == 0.0,
              "serve: the latest run is invalid")
        check(close(find_sample(samples, "clusterbench_last_success_timestamp_seconds", base)
                    or 0, iso_to_unix(later)), "serve: last success is the newest ok run")
        check(find_sample(samples, "clusterbench_throughput_tokens_per_second", base) is None,
              "serve: an invalid run shows no throughput")
    finally:
        if serve.poll() is None:
            serve.send_signal(signal.SIGTERM)
            try:
                code = serve.wait(timeout=10)
                check(code == 0, f"serve stops on SIGTERM with exit 0 (got {code})")
            except subprocess.TimeoutExpired:
                serve.kill()
                serve.wait()
                check(False, "serve stops on SIGTERM within 10 s")


TESTS = {"push_scrape": test_push_scrape, "push_down": test_push_down,
         "textfile_serve": test_textfile_serve, "push_republish": test_push_republish}


def main():
    global ARGS
    p = argparse.ArgumentParser()
    p.add_argument("test", choices=sorted(TESTS))
    p.add_argument("--clusterbench", required=True)
    p.add_argument("--source-dir", required=True)
    p.add_argument("--results-dir", required=True)
    ARGS = p.parse_args()
    prom_samples.SOURCE_DIR = ARGS.source_dir
    needed = {"push_scrape": ["prometheus", "prometheus-pushgateway", "promtool"],
              "push_republish": ["prometheus-pushgateway"],
              "push_down": [], "textfile_serve": ["promtool"]}[ARGS.test]
    missing = [b for b in needed if shutil.which(b) is None]
    if missing:
        print(f"SKIP: not installed: {', '.join(missing)} (ci/setup installs them)")
        return SKIP
    # ctest's timeout sends SIGTERM: unwind so the children are stopped.
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(1))
    return run_in_scratch(ARGS.results_dir, f"prometheus_{ARGS.test}", TESTS[ARGS.test])


if __name__ == "__main__":
    sys.exit(main())
