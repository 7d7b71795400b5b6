#!/usr/bin/env python3
"""Integration tests of clusterbench's Prometheus sinks against the real programs.

Each test starts what it talks to (prometheus-pushgateway, prometheus, `clusterbench serve`)
on free loopback ports with temporary data directories, bounds every wait, and stops them
(children also die with this process: PR_SET_PDEATHSIG). Exit status: 0 passed, 1 failed,
77 skipped (only when prometheus, prometheus-pushgateway or promtool is not installed).

usage: prometheus_test.py TEST --clusterbench BIN --source-dir DIR --results-dir DIR
TEST: push_scrape | push_down | textfile_serve
"""
import argparse
import ctypes
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

SKIP = 77
ARGS = None
FAILURES = []


def check(cond, what):
    if not cond:
        FAILURES.append(what)
        print(f"FAIL: {what}", flush=True)
    return cond


def close(a, b, rel=1e-9):
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    return abs(a - b) <= rel * max(abs(a), abs(b), 1e-300)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent():
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class Proc:
    """A child process that is always stopped (TERM, then KILL) when the block ends."""

    def __init__(self, name, argv, log_dir):
        self.name = name
        self.log_path = os.path.join(log_dir, name + ".log")
        self.log = open(self.log_path, "w")
        self.p = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)

    def __enter__(self):
        return self

    def stop(self):
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(timeout=10)
        self.log.close()
        return self.p.returncode

    def __exit__(self, *exc):
        self.stop()

    def tail(self):
        try:
            with open(self.log_path) as f:
                return f.read()[-3000:]
        except OSError:
            return ""


def http_get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


def wait_http(url, what, proc, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.p.poll() is not None:
            raise RuntimeError(f"{what} exited early ({proc.p.returncode}):\n{proc.tail()}")
        try:
            http_get(url, timeout=2)
            return
        except (urllib.error.URLError, ConnectionError, socket.timeout):
            time.sleep(0.2)
    raise RuntimeError(f"{what} not ready within {timeout} s:\n{proc.tail()}")


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


def parse_exposition(text):
    """[(name, {labels}, value)] of a text exposition (enough for our own output)."""
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)', line)
        if not m:
            continue
        labels = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        out.append((m.group(1), labels, float(m.group(4))))
    return out


def iso_to_unix(s):
    import calendar
    m = re.match(r"(\d+)-(\d+)-(\d+)T(\d+):(\d+):([\d.]+)Z", s)
    y, mo, d, h, mi = (int(x) for x in m.groups()[:5])
    return calendar.timegm((y, mo, d, h, mi, 0)) + float(m.group(6))


# ---------------------------------------------------------------------------------------------
# The README's metric table and what each metric must carry for a run.

def readme_metrics():
    """Metric names listed in the README's "Prometheus metrics" table."""
    with open(os.path.join(ARGS.source_dir, "README.md")) as f:
        text = f.read()
    section = text.split("### Prometheus metrics", 1)
    if not check(len(section) == 2, "README has a '### Prometheus metrics' section"):
        return []
    names = []
    for line in section[1].splitlines():
        if line.startswith("##"):
            break
        m = re.match(r"^\| `(clusterbench_[a-z0-9_]+)`", line)
        if m:
            names.append(m.group(1))
    return names


def expected_samples(doc):
    """[(metric name, labels that must match, value)] a run's result file implies."""
    met = doc["metrics"]
    run = doc["run"]
    exp = []

    def metric(name, family, labels, scale=1.0):
        if name in met:
            exp.append((family, dict(labels, how=met[name]["how"]), met[name]["value"] * scale))

    for phase in ("prefill", "decode"):
        metric(f"{phase}_tokens_per_second", "clusterbench_throughput_tokens_per_second",
               {"phase": phase})
        metric(f"mfu_{phase}_ratio", "clusterbench_mfu_ratio", {"phase": phase})
        metric(f"mbu_{phase}_ratio", "clusterbench_mbu_ratio", {"phase": phase})
    metric("prefill_flops_per_second", "clusterbench_achieved_flops_per_second",
           {"phase": "prefill"})
    metric("decode_bytes_per_second", "clusterbench_achieved_memory_bytes_per_second",
           {"phase": "decode"})
    metric("harness_overhead_ratio", "clusterbench_harness_overhead_ratio", {})
    metric("energy_joules", "clusterbench_energy_joules", {})
    metric("energy_joules_per_token", "clusterbench_energy_joules_per_token", {})
    metric("average_power_watts", "clusterbench_average_power_watts", {})
    metric("tokens_per_kwh", "clusterbench_tokens_per_joule", {}, 1 / 3.6e6)
    for kind, name in [("input", "cost_usd_per_million_input_tokens"),
                       ("output", "cost_usd_per_million_output_tokens"),
                       ("blended", "cost_usd_per_million_tokens")]:
        metric(name, "clusterbench_cost_usd_per_million_tokens", {"kind": kind})
    for kind, name in [("ttft", "ttft_seconds"), ("tpot", "tpot_seconds"),
                       ("e2e", "e2e_latency_seconds")]:
        if name not in met:
            continue
        d = met[name]["distribution"]
        lab = {"kind": kind, "how": met[name]["how"]}
        for q, key in [("0", "min"), ("0.5", "p50"), ("0.9", "p90"), ("0.99", "p99"),
                       ("1", "max")]:
            exp.append(("clusterbench_latency_seconds", dict(lab, quantile=q), d[key]))
        exp.append(("clusterbench_latency_seconds_count", lab, float(d["count"])))
        exp.append(("clusterbench_latency_seconds_sum", lab, d["mean"] * d["count"]))
    ok = run["status"] == "ok"
    end, start = iso_to_unix(run["end_time"]), iso_to_unix(run["start_time"])
    exp.append(("clusterbench_run_valid", {}, 1.0 if ok else 0.0))
    for s in ("ok", "invalid", "failed", "skipped"):
        exp.append(("clusterbench_run_status", {"status": s}, 1.0 if run["status"] == s else 0.0))
    exp.append(("clusterbench_last_run_timestamp_seconds", {}, end))
    exp.append(("clusterbench_run_duration_seconds", {"how": "measured"}, end - start))
    if ok:
        exp.append(("clusterbench_last_success_timestamp_seconds", {}, end))
    v = doc["verification"]
    if v["status"] != "not_run":
        exp.append(("clusterbench_verification_max_rel_error", {"how": "measured"},
                    v["max_rel_error"]))
        exp.append(("clusterbench_verification_tolerance", {"how": "measured"}, v["tolerance"]))
    exp.append(("clusterbench_info", {"version": run["tool_version"],
                                      "git_commit": run["git_commit"],
                                      "device_kind": doc["device"]["kind"]}, 1.0))
    return exp


def series_labels(doc):
    w = doc["workload"]
    labels = {"model": doc["model"]["name"], "backend": w["backend"],
              "device": doc["device"]["name"], "dtype": w["dtype"], "batch": str(w["batch"]),
              "prompt_len": str(w["prompt_len"]), "gen_len": str(w["gen_len"]),
              "scenario": w["scenario"], "cluster": doc["device"]["host"] or doc["run"]["host"],
              "Hostname": doc["run"]["host"]}
    if doc["device"]["uuid"]:
        labels["UUID"] = doc["device"]["uuid"]
    return labels


def find_sample(samples, name, labels):
    for n, l, v in samples:
        if n == name and all(l.get(k) == val for k, val in labels.items()):
            return v
    return None


def check_samples(samples, docs, where):
    """Every sample a result file implies is in `samples` with the file's value."""
    families = set()
    for doc in docs:
        base = series_labels(doc)
        for name, labels, value in expected_samples(doc):
            families.add(re.sub(r"_(sum|count)$", "", name))
            got = find_sample(samples, name, dict(base, **labels))
            if check(got is not None, f"{where}: {name}{dict(base, **labels)} present"):
                check(close(got, value), f"{where}: {name}{labels} = {got}, result file says "
                                         f"{value}")
    run_ids = {d["run"]["id"] for d in docs}
    for n, l, v in samples:
        if n.startswith("clusterbench_"):
            check(not (set(l.values()) & run_ids), f"{where}: no run id in the labels of {n}")
            check("run_id" not in l and "id" not in l, f"{where}: no run id label on {n}")
    return families


# ---------------------------------------------------------------------------------------------

def prom_query(base, expr, at=None):
    params = {"query": expr}
    if at is not None:
        params["time"] = str(at)
    body = http_get(f"{base}/api/v1/query?" + urllib.parse.urlencode(params), timeout=10)
    doc = json.loads(body)
    if doc.get("status") != "success":
        raise RuntimeError(f"query {expr}: {body}")
    return doc["data"]


def substitute(expr):
    """Grafana's template variables, as 'All' would expand them."""
    expr = expr.replace("$__rate_interval", "5m").replace("$__interval", "1m")
    expr = expr.replace("$__range", "1h")
    return re.sub(r"\$\{?([a-z_]+)\}?", ".*", expr)


def check_dashboards(prom, available_families):
    """Structure of every dashboard, and every expression evaluated against `prom`."""
    paths = sorted(glob.glob(os.path.join(ARGS.source_dir, "results/grafana/dashboards/*.json")))
    check(len(paths) >= 3, f"at least 3 dashboards (found {len(paths)})")
    uids = set()
    evaluated = skipped = 0
    for path in paths:
        name = os.path.basename(path)
        with open(path) as f:
            d = json.load(f)
        check(d.get("uid") and d["uid"] not in uids, f"{name}: a unique uid")
        uids.add(d.get("uid"))
        check(d.get("schemaVersion", 0) >= 39, f"{name}: schemaVersion >= 39")
        variables = d.get("templating", {}).get("list", [])
        ds_vars = [v for v in variables if v.get("type") == "datasource"]
        check(len(ds_vars) == 1 and ds_vars[0].get("query") == "prometheus",
              f"{name}: one datasource variable of type prometheus")
        for v in variables:
            if v.get("type") != "query":
                continue
            definition = v.get("definition", "")
            m = re.match(r"label_values\((.*),\s*([a-zA-Z_]+)\)$", definition)
            if check(m, f"{name}: variable {v['name']} comes from label_values(): {definition}"):
                r = prom_query(prom, f"count by ({m.group(2)}) ({substitute(m.group(1))})")
                check(r["result"], f"{name}: variable {v['name']} has values")
            check(v.get("datasource", {}).get("uid") == "${datasource}",
                  f"{name}: variable {v['name']} uses ${{datasource}}")
        ids = [p.get("id") for p in d.get("panels", [])]
        check(len(ids) == len(set(ids)) and None not in ids, f"{name}: unique panel ids {ids}")
        for p in d.get("panels", []):
            title = f"{name}: panel '{p.get('title')}'"
            if p.get("type") == "row":
                continue
            check(p.get("fieldConfig", {}).get("defaults", {}).get("unit"), f"{title} has a unit")
            check(p.get("description"), f"{title} has a description")
            check(p.get("datasource", {}).get("uid") == "${datasource}",
                  f"{title} uses ${{datasource}}")
            check(p.get("targets"), f"{title} has queries")
            for t in p.get("targets", []):
                expr = substitute(t["expr"])
                needs = {re.sub(r"_(sum|count)$", "", n)
                         for n in re.findall(r"clusterbench_[a-z0-9_]+", expr)}
                missing = needs - available_families
                if missing:  # the run's result file has no such figures (e.g. no energy yet)
                    print(f"note: {title}: not evaluated, the result file has no {missing}")
                    skipped += 1
                    continue
                r = prom_query(prom, expr)
                evaluated += 1
                check(r["result"], f"{title}: '{t['expr']}' returns data")
    print(f"dashboards: {len(paths)} checked, {evaluated} expressions returned data, "
          f"{skipped} not evaluated")


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

def test_push_scrape(tmp):
    pg_port, prom_port = free_port(), free_port()
    pg = f"http://127.0.0.1:{pg_port}"
    prom = f"http://127.0.0.1:{prom_port}"
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
    with Proc("pushgateway", ["prometheus-pushgateway", f"--web.listen-address=127.0.0.1:{pg_port}"],
              tmp) as gw, \
         Proc("prometheus", ["prometheus", f"--config.file={config}",
                             f"--storage.tsdb.path={tmp}/tsdb",
                             f"--web.listen-address=127.0.0.1:{prom_port}"], tmp) as pr:
        wait_http(f"{pg}/-/ready", "pushgateway", gw)
        wait_http(f"{prom}/-/ready", "prometheus", pr)

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

        # What the Pushgateway holds, then what Prometheus scraped from it.
        pushed = parse_exposition(http_get(f"{pg}/metrics"))
        check_samples(pushed, docs, "pushgateway")
        deadline = time.time() + 30
        while time.time() < deadline:
            if len(prom_query(prom, 'clusterbench_run_valid{job="clusterbench"}')["result"]) >= 2:
                # one more scrape so that every family is in
                time.sleep(1.5)
                break
            time.sleep(0.5)
        r = prom_query(prom, '{__name__=~"clusterbench_.+",job="clusterbench"}')["result"]
        scraped = [(s["metric"]["__name__"], s["metric"], float(s["value"][1])) for s in r]
        check(scraped, "prometheus scraped clusterbench metrics")
        families = check_samples(scraped, docs, "prometheus")
        for n, l, v in scraped:
            check(l.get("job") == "clusterbench" and l.get("instance") == docs[0]["run"]["host"],
                  f"{n}: job and instance are the push's grouping key ({l})")

        # Every metric the README lists is in Prometheus (energy and cost ones when the run
        # produced them), and every family Prometheus has is listed.
        listed = readme_metrics()
        check(len(listed) >= 20, f"README lists the metrics ({len(listed)})")
        present = {re.sub(r"_(sum|count)$", "", n) for n, _, _ in scraped}
        for name in listed:
            if name.startswith("clusterbench_serve_"):
                continue
            if name in families:
                check(name in present, f"README metric {name} is in Prometheus")
            else:
                print(f"note: README metric {name}: this run's result file has no source for it")
        for name in present:
            check(name in listed, f"metric {name} is listed in the README")

        check_dashboards(prom, families)
        provisioning_ok()

        # A failed night: POST, so the last success stays and the figures become NaN.
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
         "textfile_serve": test_textfile_serve}


def main():
    global ARGS
    p = argparse.ArgumentParser()
    p.add_argument("test", choices=sorted(TESTS))
    p.add_argument("--clusterbench", required=True)
    p.add_argument("--source-dir", required=True)
    p.add_argument("--results-dir", required=True)
    ARGS = p.parse_args()
    needed = {"push_scrape": ["prometheus", "prometheus-pushgateway", "promtool"],
              "push_down": [], "textfile_serve": ["promtool"]}[ARGS.test]
    missing = [b for b in needed if shutil.which(b) is None]
    if missing:
        print(f"SKIP: not installed: {', '.join(missing)} (ci/setup installs them)")
        return SKIP
    # ctest's timeout sends SIGTERM: unwind so the children are stopped.
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(1))
    os.makedirs(os.path.join(ARGS.results_dir, "scratch"), exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f"prometheus_{ARGS.test}_",
                           dir=os.path.join(ARGS.results_dir, "scratch"))
    t0 = time.time()
    try:
        TESTS[ARGS.test](tmp)
    except Exception as e:  # an error is a failure, with what the programs said
        FAILURES.append(f"{type(e).__name__}: {e}")
        print(f"FAIL: {type(e).__name__}: {e}")
    print(f"{ARGS.test}: {len(FAILURES)} failure(s) in {time.time() - t0:.1f} s")
    if not FAILURES:
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        print(f"logs and files kept in {tmp}")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
