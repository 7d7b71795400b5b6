#!/usr/bin/env python3
"""Integration tests of `clusterbench report --format html` and `ci/nightly`.

report_html: runs the tiny model at a few batch sizes, renders the HTML report (with a result
whose model name tries to break out of the embedded <script>), loads it in headless Chromium
(Debian's `chromium`) and checks the rendered DOM: a frontier chart with points and a line,
$/Mtok and J/token bars, no script error, no injected markup, no network references.
nightly: runs ci/nightly three times into a temporary results root with a tiny suite on the
simulated backend (modelled, so deterministic: the check is about the nightly plumbing, not
this VM's timing noise): the first night has nothing to compare, the second compares quietly
at the default 5% threshold, the third runs after a night whose results were made 25% faster
(so the third is 20% slower): it must report a regression and exit 1.

Exit status: 0 passed, 1 failed, 77 skipped (report_html only, when chromium is not installed).
usage: report_test.py TEST --clusterbench BIN --source-dir DIR --results-dir DIR
"""
import argparse
import glob
import html.parser
import json
import os
import shutil
import subprocess
import sys
import tempfile

SKIP = 77
FAILURES = []
HOSTILE = '</script><script>document.body.setAttribute("data-pwned","1")</script><b id="pwn">'


def check(cond, what):
    if not cond:
        FAILURES.append(what)
        print(f"FAIL: {what}", flush=True)
    return cond


def run(cmd, timeout=300, env=None, expect=None):
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if expect is not None and p.returncode != expect:
        print(f"command {cmd} exited {p.returncode}, expected {expect}\nstdout:\n{p.stdout}\n"
              f"stderr:\n{p.stderr}", flush=True)
        sys.exit(1)
    return p


def fresh(args, name):
    d = os.path.join(args.results_dir, "scratch", name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    return d


def scale(doc, k):
    """Throughput x k, every time / k (metrics and raw samples)."""
    for name, m in doc["metrics"].items():
        if "per_second" in name:
            f = k
        elif m["unit"] == "s":
            f = 1 / k
        else:
            continue
        m["value"] *= f
        for key in ("mean", "p50", "p90", "p99", "min", "max", "stddev"):
            if "distribution" in m:
                m["distribution"][key] *= f
    for s in doc["samples"]:
        for key in ("prefill_s", "e2e_s", "backend_s"):
            s[key] /= k
        s["decode_step_s"] = [t / k for t in s["decode_step_s"]]
    return doc


class Dom(html.parser.HTMLParser):
    """Elements of the dumped DOM with their attributes and the chain of their ancestors."""

    def __init__(self):
        super().__init__()
        self.stack, self.elements = [], []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.elements.append((tag, a, list(self.stack)))
        if tag not in ("circle", "rect", "line", "path", "meta", "br", "input", "img"):
            self.stack.append((tag, a))

    def handle_endtag(self, tag):
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][0] == tag:
                del self.stack[i:]
                break

    def inside(self, tag, pred):
        return [e for e in self.elements if e[0] == tag and any(pred(t, a) for t, a in e[2])]


def report_html(args):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        print("SKIP: chromium is not installed (ci/setup installs it)")
        return SKIP
    out = fresh(args, "report_html")
    runs = os.path.join(out, "runs")
    run([args.clusterbench, "run", "--results-dir", args.results_dir, "--out", runs, "--model",
         "tiny", "--dtype", "fp32", "--batch", "1,2,4", "--prompt-len", "16", "--gen-len", "8",
         "--repetitions", "2", "--format", "md",
         "--inject-fault", "ceiling-steady"], expect=0)  # valid whatever the host's noise
    files = sorted(glob.glob(os.path.join(runs, "*.json")))
    check(len(files) == 3, f"3 run files, got {files}")
    with open(files[0]) as f:
        doc = json.load(f)
    doc["model"]["name"] = HOSTILE
    doc["run"]["id"] += "-hostile"
    doc["run"]["host"] = HOSTILE
    with open(os.path.join(runs, "hostile.json"), "w") as f:
        json.dump(doc, f)

    page = os.path.join(out, "report.html")
    run([args.clusterbench, "report", out, "--format", "html", "--output", page], expect=0)
    with open(page) as f:
        text = f.read()
    check(HOSTILE not in text, "the hostile string is embedded unescaped")
    check(text.count("</script>") == 2, "exactly the two closing tags of our own scripts")
    for ref in ("<link", " src=", "@import", "url(", "https://"):
        check(ref not in text, f"the page references something outside itself: {ref}")
    check(text.replace("http://www.w3.org/2000/svg", "").find("http://") < 0,
          "no http:// reference except the SVG namespace")

    profile = tempfile.mkdtemp(prefix="cb-chromium-")
    try:
        p = run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 f"--user-data-dir={profile}", "--virtual-time-budget=5000", "--dump-dom",
                 "file://" + os.path.abspath(page)], timeout=120)
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    if not check(p.returncode == 0 and "<body" in p.stdout,
                 f"chromium --dump-dom exited {p.returncode}: {p.stderr[-2000:]}"):
        return 1
    dom = Dom()
    dom.feed(p.stdout)
    body = [a for t, a, _ in dom.elements if t == "body"]
    check(body and body[0].get("data-rendered") == "ok", "the script finished (data-rendered)")
    check(not any(a.get("id") == "cb-error" for _, a, _ in dom.elements),
          "no script error: " + p.stdout[p.stdout.find("cb-error"):][:500])
    check(not any(a.get("id") == "pwn" for _, a, _ in dom.elements) and
          not (body and "data-pwned" in body[0]), "the hostile markup did not execute")

    def frontier(t, a):
        return t == "svg" and "frontier-chart" in a.get("class", "")
    points = [e for e in dom.inside("circle", frontier) if "point" in e[1].get("class", "")]
    lines = [e for e in dom.inside("path", frontier) if "frontier-line" in e[1].get("class", "")]
    check(len(points) >= 3, f"frontier points: {len(points)}")
    check(len(lines) >= 1 and lines[0][1].get("d", "").startswith("M"), "a frontier line")
    for chart in ("usd-bars", "joules-bars"):
        bars = [e for e in dom.inside("rect", lambda t, a, c=chart: a.get("id") == c)
                if "bar" in e[1].get("class", "")]
        check(len(bars) >= 3, f"{chart}: {len(bars)} bars")
        check(all(float(b[1]["width"]) > 0 for b in bars), f"{chart}: bars have a width")
    rows = [e for e in dom.inside("tr", lambda t, a: a.get("id") == "runs")]
    check(len(rows) == 1 + 4, f"table rows: {len(rows)}")
    return 1 if FAILURES else 0


def nightly(args):
    root = fresh(args, "nightly")
    # Reuse the measured ceilings of the shared results root (measuring takes a while).
    if os.path.isdir(os.path.join(args.results_dir, "ceilings")):
        shutil.copytree(os.path.join(args.results_dir, "ceilings"), os.path.join(root, "ceilings"))
    suite = os.path.join(root, "suite.json")
    with open(suite, "w") as f:
        json.dump({"name": "nightly-test", "description": "tiny, for tests/integration",
                   "defaults": {"backend": "sim", "repetitions": 3, "warmup": 1, "seed": 1},
                   "workloads": [{"model": "tiny", "dtype": ["bf16"], "batch": [2],
                                  "prompt_len": 16, "gen_len": 16}]}, f)
    script = os.path.join(args.source_dir, "ci", "nightly")

    def night(name):
        env = dict(os.environ, CLUSTERBENCH_BIN=args.clusterbench, CLUSTERBENCH_RESULTS=root,
                   CLUSTERBENCH_SUITE=suite, CLUSTERBENCH_NIGHT=name)
        env.pop("CLUSTERBENCH_THRESHOLD", None)  # the default, 5%
        env.pop("CLUSTERBENCH_PUSHGATEWAY", None)
        env.pop("CLUSTERBENCH_TEXTFILE", None)
        return run([script], env=env)

    p = night("2026-01-01T02-30-00Z")
    check(p.returncode == 0, f"first night exits 0, got {p.returncode}: {p.stderr[-1500:]}")
    check("nothing to compare" in p.stderr, "first night: nothing to compare")
    check(len(glob.glob(os.path.join(root, "nights", "2026-01-01T02-30-00Z", "runs", "*.json")))
          == 1, "first night's run file")

    # Same build, next night: quiet.
    p = night("2026-01-02T02-30-00Z")
    check(p.returncode == 0, f"second night exits 0, got {p.returncode}:\n{p.stdout}\n"
          f"{p.stderr[-1500:]}")
    check("# clusterbench compare" in p.stdout and "2026-01-01T02-30-00Z" in p.stdout,
          "second night prints the comparison with the first")
    check(os.path.isfile(os.path.join(root, "nights", "2026-01-02T02-30-00Z", "compare.md")),
          "compare.md kept")

    # A night whose results were 25% faster: the next real night is 20% slower.
    fast = os.path.join(root, "nights", "2026-01-03T02-30-00Z", "runs")
    os.makedirs(fast)
    for path in glob.glob(os.path.join(root, "nights", "2026-01-02T02-30-00Z", "runs", "*.json")):
        with open(path) as f:
            doc = scale(json.load(f), 1.25)
        with open(os.path.join(fast, os.path.basename(path)), "w") as f:
            json.dump(doc, f)
    p = night("2026-01-04T02-30-00Z")
    check(p.returncode == 1, f"regression night exits 1, got {p.returncode}:\n{p.stdout}\n"
          f"{p.stderr[-1500:]}")
    check("**regression**" in p.stdout and "2026-01-03T02-30-00Z" in p.stdout,
          "the regression is printed against the previous (fast) night")
    check("REGRESSION" in p.stderr, "stderr says so")
    check("| decode_tokens_per_second | tokens/s | modelled |" in p.stdout and "-20.0%" in p.stdout,
          "decode throughput 20% lower")

    p = night("2026-01-04T02-30-00Z")  # the same night again: refused
    check(p.returncode == 2, f"an existing night exits 2, got {p.returncode}")
    return 1 if FAILURES else 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("test", choices=["report_html", "nightly"])
    ap.add_argument("--clusterbench", required=True)
    ap.add_argument("--source-dir", required=True)
    ap.add_argument("--results-dir", required=True)
    args = ap.parse_args()
    args.clusterbench = os.path.abspath(args.clusterbench)
    args.results_dir = os.path.abspath(args.results_dir)
    code = {"report_html": report_html, "nightly": nightly}[args.test](args)
    print("PASS" if code == 0 else ("SKIP" if code == SKIP else f"FAILED: {FAILURES}"))
    return code


if __name__ == "__main__":
    sys.exit(main())
