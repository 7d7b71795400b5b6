"""Helpers of the Prometheus integration tests: failures, loopback ports, child processes
that always stop, HTTP, the text exposition format, PromQL queries."""
import ctypes
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

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


def prom_query(base, expr, at=None):
    params = {"query": expr}
    if at is not None:
        params["time"] = str(at)
    try:
        body = http_get(f"{base}/api/v1/query?" + urllib.parse.urlencode(params), timeout=10)
    except urllib.error.HTTPError as e:
        raise RuntimeError(f"query {expr}: HTTP {e.code}: {e.read().decode()[:500]}")
    doc = json.loads(body)
    if doc.get("status") != "success":
        raise RuntimeError(f"query {expr}: {body}")
    return doc["data"]


def run_in_scratch(results_dir, prefix, fn):
    """Runs fn(tmp) in a fresh directory under results_dir/scratch; an exception is a failure.
    Removes the directory when nothing failed, else keeps it and says where. Exit status."""
    os.makedirs(os.path.join(results_dir, "scratch"), exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=prefix + "_", dir=os.path.join(results_dir, "scratch"))
    t0 = time.time()
    try:
        fn(tmp)
    except Exception as e:  # an error is a failure, with what the programs said
        FAILURES.append(f"{type(e).__name__}: {e}")
        print(f"FAIL: {type(e).__name__}: {e}")
    print(f"{prefix}: {len(FAILURES)} failure(s) in {time.time() - t0:.1f} s")
    if not FAILURES:
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        print(f"logs and files kept in {tmp}")
    return 1 if FAILURES else 0
