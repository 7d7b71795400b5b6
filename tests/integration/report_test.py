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
import datetime
import glob
import html.parser
import json
import math
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib

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

    def handle_data(self, data):
        if self.stack and self.stack[-1][0] == "text":
            a = self.stack[-1][1]
            a["_text"] = a.get("_text", "") + data

    def handle_endtag(self, tag):
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][0] == tag:
                del self.stack[i:]
                break

    def inside(self, tag, pred):
        return [e for e in self.elements if e[0] == tag and any(pred(t, a) for t, a in e[2])]


def read_png(path):
    """(width, height, rows of (r, g, b) tuples) of an 8-bit RGB/RGBA PNG, in pure Python."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, width = 8, b"", 0
    while pos < len(data):
        n = struct.unpack(">I", data[pos:pos + 4])[0]
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and color in (2, 6), f"PNG depth {depth} color type {color}"
            bpp = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw, stride = zlib.decompress(idat), width * bpp
    rows, prev = [], bytearray(stride)
    for y in range(height):
        ftype, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if ftype == 1:
                line[i] = (line[i] + a) & 255
            elif ftype == 2:
                line[i] = (line[i] + b) & 255
            elif ftype == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif ftype == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append([tuple(line[x * bpp:x * bpp + 3]) for x in range(width)])
        prev = line
    return width, height, rows


def chromium_run(chromium, page, extra, timeout=120):
    profile = tempfile.mkdtemp(prefix="cb-chromium-")
    try:
        return run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                    "--hide-scrollbars", "--force-device-scale-factor=1",
                    f"--user-data-dir={profile}", "--virtual-time-budget=5000"] + extra +
                   ["file://" + os.path.abspath(page)], timeout=timeout)
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def bbox(attrs):
    x, y, w, h = (float(v) for v in attrs["data-bbox"].split(","))
    return x, y, w, h


def tick_value(label):
    m = re.fullmatch(r"(-?[0-9.]+)([kMG]?)", label)
    if not m:
        return None
    return float(m.group(1)) * {"": 1, "k": 1e3, "M": 1e6, "G": 1e9}[m.group(2)]


def round_ticks(values, scale):
    """Linear: 0, s, 2s, ... with s = 1, 2 or 5 x 10^k; log: 1, 2 or 5 x 10^k."""
    def mantissa_ok(v):
        e = math.floor(math.log10(v) + 1e-9)
        return any(abs(v / 10 ** e - m) < 1e-6 for m in (1, 2, 5, 10))
    if scale == "log":
        return all(v > 0 and mantissa_ok(v) for v in values)
    if len(values) < 2 or values[0] != 0:
        return False
    step = values[1] - values[0]
    return mantissa_ok(step) and all(abs(v - i * step) < step * 1e-6
                                     for i, v in enumerate(values))


def invert(px, lo_px, span_px, d0, d1, scale):
    f = (px - lo_px) / span_px
    if scale == "log":
        return 10 ** (math.log10(d0) + f * (math.log10(d1) - math.log10(d0)))
    return d0 + f * (d1 - d0)


def check_layout(dom, data):
    """No two texts of a chart overlap, none sticks out of its SVG; ticks are round; every point
    is labelled and sits where its data puts it."""
    svgs = [(a, [e for e in dom.elements if e[0] == "text" and
                 any(t == "svg" and p is a for t, p in e[2])])
            for t, a, _ in dom.elements if t == "svg" and "data-bbox" in a]
    check(len(svgs) >= 4, f"charts drawn: {len(svgs)}")
    for svg, texts in svgs:
        sx, sy, sw, sh = bbox(svg)
        boxes = [(bbox(a), a) for _, a, _ in texts if "data-bbox" in a]
        for (x, y, w, h), a in boxes:
            check(w > 0 and x >= sx - 1 and y >= sy - 1 and x + w <= sx + sw + 1 and
                  y + h <= sy + sh + 1, f"text clipped by its chart: {a} in {svg.get('class')}")
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                (x1, y1, w1, h1), a1 = boxes[i]
                (x2, y2, w2, h2), a2 = boxes[j]
                overlap = min(x1 + w1, x2 + w2) - max(x1, x2) > 1 and \
                    min(y1 + h1, y2 + h2) - max(y1, y2) > 1
                check(not overlap, f"texts overlap in {svg.get('class')}: {a1} / {a2}")
    frontier_svgs = [a for t, a, _ in dom.elements if t == "svg" and
                     a.get("class") in ("frontier-chart", "cost-chart")]
    check(len([a for a in frontier_svgs if a["class"] == "frontier-chart"]) ==
          len(data["frontiers"]), "one frontier chart per model")
    for svg in frontier_svgs:
        px, py, pw, ph = (float(v) for v in svg["data-plot"].split(","))
        x0, x1 = (float(v) for v in svg["data-x-domain"].split(","))
        y0, y1 = (float(v) for v in svg["data-y-domain"].split(","))
        circles = [a for t, a, parents in dom.elements if t == "circle" and
                   any(p is svg for _, p in parents)]
        check(circles, f"points in {svg['class']} {svg.get('data-group')}")
        model = [f for f in data["frontiers"] if f["model"] == svg.get("data-group")]
        wanted = set()
        for f in model:
            for s in f["series"]:
                for p in s["points"]:
                    y = p["y"] if svg["class"] == "frontier-chart" else p["usd"]
                    if y is not None:
                        wanted.add((s["name"], p["label"], round(p["x"], 6), round(y, 6)))
        drawn = set()
        for c in circles:
            check("data-label-hidden" not in c, f"point {c.get('data-label')} has its label")
            x = invert(float(c["cx"]), px, pw, x0, x1, svg["data-x-scale"])
            y = invert(float(c["cy"]), py + ph, -ph, y0, y1, svg["data-y-scale"])
            check(math.isclose(x, float(c["data-x"]), rel_tol=1e-3) and
                  math.isclose(y, float(c["data-y"]), rel_tol=1e-3),
                  f"point {c.get('data-label')} drawn at ({x:.4g}, {y:.4g}), data says "
                  f"({c['data-x']}, {c['data-y']})")
            drawn.add((c["data-series"], c["data-label"], round(float(c["data-x"]), 6),
                       round(float(c["data-y"]), 6)))
        check(drawn == wanted, f"{svg['class']} {svg.get('data-group')}: the points are the "
                               f"data's: drawn {sorted(drawn)} vs {sorted(wanted)}")
        labels = {a.get("class") for t, a, parents in dom.elements if t == "text" and
                  any(p is svg for _, p in parents)}
        check("point-label" in labels, f"{svg['class']}: point labels are drawn")
        tick_texts = [a for t, a, parents in dom.elements if t == "text" and
                      any(tt == "g" and p.get("class") == "axis" for tt, p in parents) and
                      any(p is svg for _, p in parents)]
        xs = [tick_value(a["_text"]) for a in tick_texts if a.get("text-anchor") == "middle"]
        ys = [tick_value(a["_text"]) for a in tick_texts if a.get("text-anchor") == "end"]
        check(None not in xs + ys and round_ticks(xs, svg["data-x-scale"]) and
              round_ticks(ys, svg["data-y-scale"]),
              f"{svg['class']}: round ticks: x {xs} ({svg['data-x-scale']}), y {ys} "
              f"({svg['data-y-scale']})")


def check_screenshot(chromium, page, dom, out):
    """The points are drawn in their colours where the layout put them."""
    body = [a for t, a, _ in dom.elements if t == "body"][0]
    width, height = int(body.get("data-width", 1200)), int(body.get("data-height", 3000))
    shot = os.path.join(out, "report.png")
    p = chromium_run(chromium, page, [f"--window-size={max(width, 1200)},{height}",
                                      f"--screenshot={shot}"])
    if not check(p.returncode == 0 and os.path.isfile(shot), f"screenshot: {p.stderr[-500:]}"):
        return
    w, h, rows = read_png(shot)
    check(h >= height - 2, f"the screenshot holds the whole page ({w}x{h}, page {height})")
    circles = [a for t, a, _ in dom.elements if t == "circle" and "data-bbox" in a]
    for c in circles:
        x, y, bw, bh = bbox(c)
        cx, cy = x + bw / 2, y + bh / 2
        want = tuple(int(c["data-color"][i:i + 2], 16) for i in (1, 3, 5))
        found = False
        for dy in range(-6, 7):
            for dx in range(-6, 7):
                xi, yi = int(round(cx + dx)), int(round(cy + dy))
                if 0 <= xi < w and 0 <= yi < h and \
                        sum(abs(a - b) for a, b in zip(rows[yi][xi], want)) < 60:
                    found = True
        check(found, f"point {c.get('data-label')} ({c.get('data-series')}) is drawn in "
                     f"{c['data-color']} at ({cx:.0f}, {cy:.0f}) in the screenshot")
    print(f"screenshot {w}x{h}: {len(circles)} points checked")


def report_html(args):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        print("SKIP: chromium is not installed (ci/setup installs it)")
        return SKIP
    out = fresh(args, "report_html")
    night1 = os.path.join(out, "nights", "2026-01-01T02-30-00Z", "runs")
    night2 = os.path.join(out, "nights", "2026-01-02T02-30-00Z", "runs")
    for backend in ("cpu", "sim:nvidia-h100-sxm"):
        run([args.clusterbench, "run", "--results-dir", args.results_dir, "--out", night1,
             "--model", "tiny", "--backend", backend, "--dtype", "fp32", "--batch", "1,2,4",
             "--prompt-len", "16", "--gen-len", "8", "--repetitions", "2", "-q"]
            # valid whatever the host's noise
            + (["--inject-fault", "ceiling-steady"] if backend == "cpu" else []), expect=0)
    files = sorted(glob.glob(os.path.join(night1, "*.json")))
    check(len(files) == 6, f"6 run files, got {files}")
    os.makedirs(night2)
    for path in files:  # the next night: the same runs, 25% slower
        with open(path) as f:
            doc = scale(json.load(f), 0.75)
        doc["run"]["id"] += "-n2"
        for key in ("start_time", "end_time"):
            t = datetime.datetime.strptime(doc["run"][key][:19], "%Y-%m-%dT%H:%M:%S")
            doc["run"][key] = (t + datetime.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        with open(os.path.join(night2, os.path.basename(path)), "w") as f:
            json.dump(doc, f)
    with open(files[0]) as f:
        doc = json.load(f)
    doc["model"]["name"] = HOSTILE
    doc["run"]["id"] += "-hostile"
    doc["run"]["host"] = HOSTILE
    with open(os.path.join(out, "hostile.json"), "w") as f:
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
    data = json.loads(re.search(r'id="cb-data">(.*?)</script>', text, re.S).group(1))

    p = chromium_run(chromium, page, ["--window-size=1200,3000", "--dump-dom"])
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

    tiny = [f for f in data["frontiers"] if f["model"] == "tiny"]
    check(tiny and len(tiny[0]["series"]) == 2,
          "the tiny model's chart holds both devices (cpu measured, sim modelled)")
    check(tiny and {s["how"] for s in tiny[0]["series"]} == {"measured", "modelled"},
          "the devices' lines say measured and modelled")
    check_layout(dom, data)
    check_screenshot(chromium, page, dom, out)

    nights = [a for t, a, _ in dom.elements if t == "table" and a.get("id") == "nights"]
    check(nights, "a since-last-night table")
    check(data["nights"] and data["nights"]["regressions"] >= 1,
          f"the slower night shows regressions: {data['nights'] and data['nights']['regressions']}")
    check("regression" in p.stdout and "-25.0%" in p.stdout, "the -25% change is shown")
    for chart in ("usd-bars", "joules-bars"):
        bars = [e for e in dom.inside("rect", lambda t, a, c=chart: a.get("id") == c)
                if "bar" in e[1].get("class", "")]
        check(len(bars) >= 3, f"{chart}: {len(bars)} bars")
        check(all(float(b[1]["width"]) > 0 for b in bars), f"{chart}: bars have a width")
    rows = [e for e in dom.inside("tr", lambda t, a: a.get("id") == "runs")]
    check(len(rows) == 1 + 13, f"table rows: {len(rows)}")
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
