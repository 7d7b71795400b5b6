#!/usr/bin/env python3
"""Integration tests of the endpoint backend (docs/endpoint.md) against real servers.

Each test starts what it talks to on loopback with port 0 (`clusterbench serve-model`, which
prints its port on stderr, and tests/tools/faulty_openai_server.py, which prints it on stdout),
bounds every wait, and stops them (children also die with this process: PR_SET_PDEATHSIG).
Exit status: 0 passed, 1 failed.

usage: endpoint_test.py TEST --clusterbench BIN --source-dir DIR --results-dir DIR
TEST: serve_model | faults | bad_input
"""
import argparse
import ctypes
import glob
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ARGS = None
from prom_common import FAILURES, _die_with_parent, check, run_in_scratch


class Server:
    """A child server whose port is read from its output; stopped with SIGTERM, then SIGKILL."""

    def __init__(self, argv, log_path, pattern, env=None):
        self.log_path = log_path
        self.log = open(log_path, "w")
        self.p = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, env=env, preexec_fn=_die_with_parent)
        deadline = time.time() + 60
        self.port = None
        while time.time() < deadline:
            m = re.search(pattern, open(log_path).read())
            if m:
                self.port = int(m.group(1))
                return
            if self.p.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{argv[0]} did not say its port:\n{open(log_path).read()[-2000:]}")

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(timeout=10)
        self.log.close()
        return self.p.returncode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def serve_model(tmp, name, extra=(), env=None):
    return Server([ARGS.clusterbench, "serve-model", "--model", "tiny", "--dtype", "fp32",
                   "--port", "0", "--batch", "4", "--max-context", "256"] + list(extra),
                  os.path.join(tmp, name + ".log"),
                  r"listening on http://127\.0\.0\.1:(\d+)/v1", env)


def faulty_server(tmp, extra=(), name="faulty"):
    return Server([sys.executable, os.path.join(ARGS.source_dir, "tests/tools/faulty_openai_server.py")]
                  + list(extra), os.path.join(tmp, name + ".log"), r"listening on (\d+)")


def test_tls(tmp):
    """HTTPS: a self-signed server is trusted with --ca-file, refused without it."""
    if shutil.which("openssl") is None:
        print("openssl not installed: TLS case not run")
        return
    cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                    "-out", cert, "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    with faulty_server(tmp, ["--tls-cert", cert, "--tls-key", key], "tls") as fs:
        url = f"endpoint:https://127.0.0.1:{fs.port}/ok/v1"
        base = ["--scenario", "single-stream", "--requests", "3", "--gen-len", "3",
                "--prompt-len", "4"]
        code, docs, err, _ = run(tmp, "tls_trusted", url, base + ["--ca-file", cert],
                                 model="fake-model")
        check(code == 0 and docs and docs[0]["endpoint"]["url"].startswith("https://"),
              f"TLS with --ca-file: exit 0 ({code}): {err}")
        code, docs, err, _ = run(tmp, "tls_untrusted", url, base, model="fake-model")
        check(code == 1 and docs and docs[0]["endpoint"]["failures"] == {"tls": 1},
              f"TLS without trust: invalid with a tls failure ({code}): "
              f"{docs[0]['endpoint']['failures'] if docs else err}")


def run(tmp, name, backend, extra, env=None, timeout=120, model="tiny"):
    """Runs `clusterbench run` against `backend`; returns (code, docs, stderr, seconds)."""
    out = os.path.join(tmp, name)
    argv = [ARGS.clusterbench, "run", "--results-dir", ARGS.results_dir, "--out", out,
            "--model", model, "--backend", backend, "--quiet", "--format", "json",
            "--min-duration", "0", "--min-requests", "1", "--max-cv", "0"] + extra
    t0 = time.time()
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                       stdin=subprocess.DEVNULL, env=env)
    docs = [json.load(open(f)) for f in sorted(glob.glob(os.path.join(out, "*.json")))]
    return r.returncode, docs, r.stderr, time.time() - t0


def schema_ok(tmp, name):
    files = sorted(glob.glob(os.path.join(tmp, name, "*.json")))
    r = subprocess.run([sys.executable, os.path.join(ARGS.source_dir, "tests/tools/validate_json.py"),
                        os.path.join(ARGS.source_dir, "results/schema/run.schema.json")] + files,
                       capture_output=True, text=True, timeout=60)
    return check(r.returncode == 0 and files, f"{name}: schema-valid records: {r.stdout}{r.stderr}")


def metric(doc, name):
    return doc["metrics"].get(name, {})


def test_serve_model(tmp):
    with serve_model(tmp, "serve_model") as sm:
        url = f"endpoint:http://127.0.0.1:{sm.port}/v1"
        # single-stream, with the hardware declared: cost and power from the catalog
        textfile = os.path.join(tmp, "endpoint.prom")
        code, docs, err, _ = run(tmp, "single", url, [
            "--scenario", "single-stream", "--requests", "12", "--prompt-len", "16",
            "--gen-len", "8", "--device", "nvidia-h100-sxm", "--devices", "2",
            "--textfile", textfile])
        if check(code == 0 and len(docs) == 1, f"single-stream: exit {code}: {err}"):
            schema_ok(tmp, "single")
            d = docs[0]
            e = d["endpoint"]
            check(d["run"]["status"] == "ok", f"single-stream ok: {d['run']['status_message']}")
            check(e["server_model"] == "tiny" and e["served_models"] == ["tiny"], "server model")
            check(e["requests_ok"] == 12 and e["requests_failed"] == 0, "12 requests completed")
            check(e["length_source"] == "usage", "lengths from the server's usage")
            check(all(r["requested_prompt_len"] == 16 and r["prompt_tokens"] == 16 and
                      r["requested_output_len"] == 8 and r["completion_tokens"] == 8 and
                      r["stream_chunks"] == 8 and r["finish_reason"] == "length"
                      for r in e["requests"]), "requested and actual lengths agree on serve-model")
            check(e["max_in_flight"] == 1, "single-stream keeps one request in flight")
            for m in ["ttft_seconds", "tpot_seconds", "e2e_latency_seconds", "itl_seconds",
                      "output_tokens_per_second", "output_tokens_per_second_per_device"]:
                check(metric(d, m).get("how") == "measured", f"{m} measured")
            for m in ["energy_joules_per_token", "cost_usd_per_million_output_tokens"]:
                check(metric(d, m).get("how") == "modelled", f"{m} modelled")
            check(d["energy"]["source"] == "model", "energy from the catalog power model")
            check(d["cost"]["devices"] == 2 and d["cost"]["catalog"]["id"] == "nvidia-h100-sxm",
                  "priced as 2 declared H100s")
            out_tps = metric(d, "output_tokens_per_second")["value"]
            check(abs(metric(d, "output_tokens_per_second_per_device")["value"] - out_tps / 2)
                  < 1e-6 * out_tps, "per-device throughput over the declared devices")
            reqs = d["serving"]["requests"]
            check(len(reqs) == 12 and all(
                r["arrival_s"] <= r["admitted_s"] <= r["first_token_s"] <= r["finish_s"]
                for r in reqs), "arrival <= sent <= first token <= last token")
            check(d["device"]["name"] == "NVIDIA H100 SXM 80GB", "device: the declared hardware")
            prom = open(textfile).read()
            check('backend="endpoint:http://127.0.0.1:' in prom and
                  re.search(r'clusterbench_run_valid\{[^}]*\} 1', prom) is not None,
                  "the textfile exports the endpoint run as valid")

        # server, Poisson arrivals, chat API, SLOs
        code, docs, err, _ = run(tmp, "poisson", url, [
            "--scenario", "server", "--rate", "40", "--requests", "40", "--api", "chat",
            "--prompt-dist", "uniform:8-40", "--output-dist", "uniform:2-10",
            "--slo-ttft", "2", "--slo-tpot", "1"])
        if check(code == 0 and len(docs) == 1, f"server --rate: exit {code}: {err}"):
            schema_ok(tmp, "poisson")
            d = docs[0]
            check(d["endpoint"]["api"] == "chat", "chat API recorded")
            check(metric(d, "slo_attainment_ratio").get("value") == 1.0, "every request meets loose SLOs")
            check("goodput_requests_per_second" in d["metrics"], "goodput")
            arrivals = [r["arrival_s"] for r in d["serving"]["requests"]]
            check(arrivals == sorted(arrivals) and arrivals[-1] > 0.3, "Poisson arrivals spread over time")
            lens = {(r["requested_output_len"], r["completion_tokens"]) for r in d["endpoint"]["requests"]}
            check(all(a == b for a, b in lens) and len(lens) > 1, "variable output lengths honoured")

        # fixed concurrency
        code, docs, err, _ = run(tmp, "closed", url, [
            "--scenario", "server", "--concurrency", "4", "--requests", "24", "--gen-len", "6",
            "--prompt-len", "12"])
        if check(code == 0 and len(docs) == 1, f"server --concurrency: exit {code}: {err}"):
            d = docs[0]
            check(d["serving"]["load"] == "closed-loop" and d["serving"]["concurrency"] == 4,
                  "closed loop of 4")
            check(d["endpoint"]["max_in_flight"] == 4, f"4 in flight ({d['endpoint']['max_in_flight']})")

        # sweep over rates: one run per point and the frontier summary
        code, docs, err, _ = run(tmp, "sweep", url, [
            "--scenario", "sweep", "--rates", "10,40", "--requests", "16", "--gen-len", "6",
            "--prompt-len", "12", "--at-interactivity", "1"])
        if check(code == 0 and len(docs) == 2, f"sweep: exit {code}: {err}"):
            schema_ok(tmp, "sweep")
            summaries = glob.glob(os.path.join(tmp, "sweep", "sweeps", "*.json"))
            if check(len(summaries) == 1, "one sweep summary"):
                s = json.load(open(summaries[0]))
                check(len(s["points"]) == 2 and len(s["frontier"]) >= 1 and s["how"] == "measured",
                      f"sweep summary: {json.dumps(s)[:300]}")

        # dataset replay: JSONL, name and hash recorded, output lengths from the file
        data = os.path.join(tmp, "prompts.jsonl")
        with open(data, "w") as f:
            for i in range(5):
                f.write(json.dumps({"prompt": " ".join(["word"] * (5 + i)), "output_len": 2 + i}) + "\n")
        code, docs, err, _ = run(tmp, "dataset", url, [
            "--scenario", "server", "--concurrency", "2", "--requests", "10", "--dataset", data])
        if check(code == 0 and len(docs) == 1, f"dataset: exit {code}: {err}"):
            e = docs[0]["endpoint"]
            check(e["prompts"] == "dataset" and e["dataset_name"] == "prompts.jsonl" and
                  e["dataset_format"] == "jsonl" and e["dataset_entries"] == 5, "dataset recorded")
            check(e["dataset_sha256"] == hashlib.sha256(open(data, "rb").read()).hexdigest(),
                  "dataset hash")
            check(all(r["requested_output_len"] == r["requested_prompt_len"] - 3 and
                      r["completion_tokens"] == r["requested_output_len"] for r in e["requests"]),
                  "each prompt replayed with its output length")

    # a server that wants a key: the right one works, a wrong one is a clear invalid run
    env = dict(os.environ, CB_SERVER_KEY="sesame", CB_GOOD_KEY="sesame", CB_BAD_KEY="nope")
    with serve_model(tmp, "serve_model_key", ["--api-key-env", "CB_SERVER_KEY"], env) as sm:
        url = f"endpoint:http://127.0.0.1:{sm.port}/v1"
        base = ["--scenario", "single-stream", "--requests", "4", "--gen-len", "4", "--prompt-len", "8"]
        code, docs, err, _ = run(tmp, "good_key", url, base + ["--api-key-env", "CB_GOOD_KEY"], env)
        check(code == 0 and docs and docs[0]["endpoint"]["api_key_env"] == "CB_GOOD_KEY",
              f"the right key: exit {code}: {err}")
        check(docs and "sesame" not in json.dumps(docs[0]), "the key is not in the record")
        code, docs, err, secs = run(tmp, "bad_key", url, base + ["--api-key-env", "CB_BAD_KEY"], env)
        check(code == 1 and docs and docs[0]["run"]["status"] == "invalid" and
              docs[0]["endpoint"]["failures"] == {"http_401": 1} and
              "CB_BAD_KEY" in docs[0]["run"]["status_message"] and secs < 10,
              f"a wrong key: exit 1, invalid, named: {code} {err}")


def fault_run(tmp, name, port, mode, extra, load=("--rate", "40"), warmup="0"):
    return run(tmp, name, f"endpoint:http://127.0.0.1:{port}/{mode}/v1",
               ["--scenario", "server", "--requests", "12", "--gen-len", "4", "--prompt-len", "8",
                "--warmup-requests", warmup, "--connect-timeout", "1", "--request-timeout", "4",
                "--stall-timeout", "1"] + list(load) + extra, model="fake-model")


def test_faults(tmp):
    with faulty_server(tmp) as fs:
        port = fs.port
        # unreachable: a port nobody listens on (the faulty server's, once it is stopped, is not
        # safe to reuse; port 1 on loopback refuses at once)
        code, docs, err, secs = run(tmp, "unreachable", "endpoint:http://127.0.0.1:1/v1",
                                    ["--scenario", "single-stream", "--requests", "5"])
        check(code == 1 and docs and docs[0]["run"]["status"] == "invalid" and
              docs[0]["endpoint"]["failures"] == {"connect": 1} and
              "cannot reach" in docs[0]["run"]["status_message"] and secs < 10,
              f"unreachable: exit 1 within 10 s, recorded invalid ({code}, {secs:.1f} s): {err}")
        # accepts, never answers (not even /models): the stall timeout ends it
        code, docs, err, secs = fault_run(tmp, "hang", port, "hang", [])
        check(code == 1 and docs and docs[0]["run"]["status"] == "invalid" and secs < 10 and
              docs[0]["endpoint"]["failures"] == {"stall": 1},
              f"a server that never answers: exit 1 within 10 s ({code}, {secs:.1f} s): {err}")
        # generation requests never answered: counted, the run stops once it is invalid
        code, docs, err, secs = fault_run(tmp, "hangstream", port, "hangstream", [])
        if check(code == 1 and docs and secs < 15, f"hung streams: exit 1 ({code}, {secs:.1f} s): {err}"):
            e = docs[0]["endpoint"]
            check(e["stopped_early"] and e["failures"].get("stall", 0) >= 1,
                  f"hung streams counted as stalls: {e['failures']}")
            schema_ok(tmp, "hangstream")
        cases = {"malformed": "malformed", "error500": "http_500", "midstream500": "server_error",
                 "truncate": "truncated"}
        for mode, outcome in cases.items():
            code, docs, err, secs = fault_run(tmp, mode, port, mode, [])
            if not check(code == 1 and docs and secs < 15, f"{mode}: exit 1 ({code}): {err}"):
                continue
            d = docs[0]
            check(d["run"]["status"] == "invalid" and d["endpoint"]["failures"].get(outcome, 0) >= 1
                  and outcome in d["run"]["status_message"],
                  f"{mode}: invalid with {outcome} counted: {d['run']['status_message']}")
            check(not d["metrics"].get("ttft_seconds") or d["run"]["status"] != "ok",
                  f"{mode}: never published as valid")
        code, docs, err, _ = fault_run(tmp, "midstream_msg", port, "midstream500", [])
        check(docs and any("engine crashed" in r.get("error", "") for r in docs[0]["endpoint"]["requests"]),
              "the error object's message is kept")
        # every 4th request fails: counted; invalid over the threshold, ok under a looser one
        code, docs, err, _ = fault_run(tmp, "flaky_strict", port, "flaky", [], ("--concurrency", "1"))
        check(code == 1 and docs and docs[0]["endpoint"]["failures"].get("http_500") == 1,
              f"flaky at the default ratio: invalid after the first failure: {err}")
        code, docs, err, _ = fault_run(tmp, "flaky_loose", port, "flaky",
                                       ["--max-failure-ratio", "0.5"], ("--concurrency", "1"))
        if check(code == 0 and docs, f"flaky with --max-failure-ratio 0.5: exit 0: {err}"):
            d = docs[0]
            check(d["endpoint"]["failures"] == {"http_500": 3} and d["endpoint"]["requests_ok"] == 9
                  and abs(metric(d, "request_failure_ratio")["value"] - 0.25) < 1e-9,
                  f"3 of 12 failed and counted: {d['endpoint']['failures']}")
        # a server that refuses ignore_eos: the warm-up finds out, the run goes on without it
        code, docs, err, _ = fault_run(tmp, "strict", port, "strict", [], warmup="2")
        if check(code == 0 and docs, f"strict server: exit 0 ({code}): {err}"):
            e = docs[0]["endpoint"]
            check(not e["ignore_eos"] and any("ignore_eos" in n for n in e["notes"]) and
                  e["requests_ok"] == 12, f"ignore_eos dropped with a note: {e['notes']}")
        # energy measured at the serving hardware's exporter (2 GPUs at 250 W)
        code, docs, err, _ = fault_run(tmp, "energy", port, "ok", [
            "--device", "nvidia-h100-sxm", "--energy-metrics", f"http://127.0.0.1:{port}/metrics"],
            ("--rate", "6"))
        if check(code == 0 and docs, f"energy from the exporter: exit {code}: {err}"):
            d = docs[0]
            check(d["energy"]["source"] == "prometheus" and metric(d, "energy_joules")["how"] == "measured",
                  "energy source prometheus, measured")
            watts = metric(d, "average_power_watts")["value"]
            check(400 < watts < 600, f"2 x 250 W read from the counter ({watts:.0f} W)")
            schema_ok(tmp, "energy")
        # Ctrl-C: the finished run stays on disk, exit 130 within a second of the signal
        out = os.path.join(tmp, "interrupt")
        suite = os.path.join(tmp, "suite.json")
        with open(suite, "w") as f:
            json.dump({"defaults": {"model": "fake-model", "scenario": "server", "rate": 40,
                                    "requests": 6, "gen_len": 4, "prompt_len": 8,
                                    "warmup_requests": 0, "min_duration": 0, "min_requests": 1},
                       "workloads": [{"backend": f"endpoint:http://127.0.0.1:{port}/ok/v1"},
                                     {"backend": f"endpoint:http://127.0.0.1:{port}/hangstream/v1"}]}, f)
        p = subprocess.Popen([ARGS.clusterbench, "run", "--suite", suite, "--out", out,
                              "--results-dir", ARGS.results_dir], stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
                             preexec_fn=_die_with_parent)
        seen, deadline = "", time.time() + 60
        while "[2/2] sending" not in seen and time.time() < deadline and p.poll() is None:
            seen += p.stderr.readline()
        time.sleep(0.3)
        t_sig = time.time()
        p.send_signal(signal.SIGINT)
        try:
            code = p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            p.kill()
            code = None
        took = time.time() - t_sig
        check(code == 130 and took < 1.0, f"Ctrl-C: exit 130 within 1 s (got {code} in {took:.2f} s)")
        check(len(glob.glob(os.path.join(out, "*.json"))) == 1, "Ctrl-C: the finished run is on disk")
    test_tls(tmp)


def test_bad_input(tmp):
    bad = os.path.join(tmp, "bad.jsonl")
    with open(bad, "w") as f:
        f.write('{"prompt": "a b", "output_len": 4}\n{"prompt": "c", "output_len": -1}\n')
    url = "endpoint:http://127.0.0.1:1/v1"
    cases = [
        ("dataset", [url, "--scenario", "single-stream", "--dataset", bad],
         f"{bad}:2: field 'output_len'"),
        ("url", ["endpoint:127.0.0.1:8000", "--scenario", "single-stream"], "field 'backend'"),
        ("credentials", ["endpoint:http://u:hunter2@127.0.0.1:9/v1", "--scenario", "single-stream"],
         "--api-key-env"),
        ("key_env", [url, "--scenario", "single-stream", "--api-key-env", "CB_SURELY_UNSET_KEY"],
         "CB_SURELY_UNSET_KEY is not set"),
        ("offline", [url], "field 'scenario'"),
        ("device", [url, "--scenario", "single-stream", "--device", "nvidia-h999"], "field 'device'"),
        ("api", [url, "--scenario", "single-stream", "--api", "responses"], "field 'api'"),
        ("cpu_dataset", ["cpu", "--scenario", "single-stream", "--dataset", bad], "field 'dataset'"),
        ("energy", [url, "--scenario", "single-stream", "--energy", "rapl"], "--energy rapl"),
    ]
    for name, argv, needle in cases:
        out = os.path.join(tmp, name)
        r = subprocess.run([ARGS.clusterbench, "run", "--model", "tiny", "--out", out,
                            "--results-dir", ARGS.results_dir, "--backend"] + argv,
                           capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        check(r.returncode == 2 and needle in r.stderr and "hunter2" not in r.stderr,
              f"{name}: exit 2 naming '{needle}' (got {r.returncode}: {r.stderr.strip()})")
        check(not glob.glob(os.path.join(out, "*.json")), f"{name}: no result files")


TESTS = {"serve_model": test_serve_model, "faults": test_faults, "bad_input": test_bad_input}


def main():
    global ARGS
    p = argparse.ArgumentParser()
    p.add_argument("test", choices=sorted(TESTS))
    p.add_argument("--clusterbench", required=True)
    p.add_argument("--source-dir", required=True)
    p.add_argument("--results-dir", required=True)
    ARGS = p.parse_args()
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(1))  # ctest's timeout: stop the children
    return run_in_scratch(ARGS.results_dir, f"endpoint_{ARGS.test}", TESTS[ARGS.test])


if __name__ == "__main__":
    sys.exit(main())
