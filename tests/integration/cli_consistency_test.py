#!/usr/bin/env python3
"""The CLI's conventions, checked on every command of the real binary.

- `clusterbench --help` lists the exit codes, 3 included;
- every command that prints results offers `-o/--output FILE`, and the file holds exactly what
  stdout would have shown (written atomically: bad input leaves an existing FILE alone);
- `--format` takes values from one set (table, md, csv, json, jsonl, html where it makes
  sense); every offered format parses as what it claims; a bad value exits 2 naming the
  allowed ones;
- comma lists of --rate and --concurrency sweep like --batch;
- result file names contain no ':' (sim:DEVICE backends);
- progress: one rewritten line with elapsed time and ETA on a terminal, plain lines otherwise.

usage: cli_consistency_test.py --clusterbench BIN --results-dir DIR
Exit status: 0 passed, 1 failed.
"""
import argparse
import csv
import glob
import io
import json
import os
import pty
import re
import select
import shutil
import subprocess
import sys
import tempfile
import time

FAILURES = []
ALL_FORMATS = {"table", "md", "csv", "json", "jsonl", "html"}


def check(cond, what):
    if not cond:
        FAILURES.append(what)
        print(f"FAIL: {what}", flush=True)
    return cond


def cli(args, timeout=300, env=None):
    p = subprocess.run([ARGS.clusterbench] + args, capture_output=True, text=True,
                       timeout=timeout, stdin=subprocess.DEVNULL, env=env)
    return p.returncode, p.stdout, p.stderr


def commands():
    code, out, _ = cli(["--help"])
    check(code == 0, "--help exits 0")
    for c in ("0", "1", "2", "3", "130"):
        check(re.search(rf"^\s+{c}\s+\S", out, re.M), f"--help lists exit code {c}:\n{out}")
    section = out.split("Subcommands:", 1)[1]
    return re.findall(r"^\s{2}([a-z][a-z-]+)\s", section, re.M)


def help_formats(cmd):
    """(formats offered, has -o/--output) from `clusterbench CMD --help`."""
    code, out, err = cli([cmd, "--help"])
    check(code == 0, f"{cmd} --help exits 0: {err}")
    m = re.search(r"--format\s+\S+.*?Output format: ([a-z, ]+)", out, re.S)
    formats = [f.strip() for f in m.group(1).split(",")] if m else []
    return formats, bool(re.search(r"-o,--output", out))


def parses_as(fmt, text, what):
    """The text is what the format claims."""
    if not check(text, f"{what}: output is empty"):
        return
    if fmt == "json":
        try:
            json.loads(text)
        except ValueError as e:
            check(False, f"{what}: not JSON: {e}")
    elif fmt == "jsonl":
        lines = text.splitlines()
        check(lines, f"{what}: no lines")
        for line in lines:
            try:
                check(isinstance(json.loads(line), (dict, list)), f"{what}: a line is no object")
            except ValueError as e:
                check(False, f"{what}: a line is not JSON: {e}: {line[:200]}")
    elif fmt == "csv":
        rows = list(csv.reader(io.StringIO(text)))
        check(len(rows) >= 2, f"{what}: a header and rows")
        check(all(len(r) == len(rows[0]) for r in rows), f"{what}: every row as wide as the header")
    elif fmt == "md":
        check(any(line.startswith("|") for line in text.splitlines()) or text.startswith("#"),
              f"{what}: a markdown table")
    elif fmt == "html":
        check(text.startswith("<!DOCTYPE html>"), f"{what}: an HTML page")


def same_with_output(args, fmt, tmp, deterministic=True, expect=0):
    """Runs args with --format fmt to stdout and with -o FILE; both agree."""
    fargs = args + (["--format", fmt] if fmt else [])
    code, out, err = cli(fargs)
    check(code == expect, f"{' '.join(fargs)}: exit {code} (expected {expect}): {err[-800:]}")
    path = os.path.join(tmp, "out", f"{args[0]}-{fmt or 'text'}.txt")
    code2, out2, err2 = cli(fargs + ["-o", path])
    check(code2 == expect, f"{' '.join(fargs)} -o: exit {code2}: {err2[-800:]}")
    check(out2 == "", f"{' '.join(fargs)} -o FILE: stdout stays empty, got {out2[:200]!r}")
    if not check(os.path.isfile(path), f"{' '.join(fargs)} -o {path}: the file is written"):
        return out
    with open(path) as f:
        written = f.read()
    if deterministic:
        check(written == out, f"{' '.join(fargs)}: -o FILE holds what stdout shows")
    if fmt:
        parses_as(fmt, written, " ".join(fargs) + " -o")
    check(not glob.glob(os.path.join(tmp, "out", ".*")), "no temporary file left behind")
    return written


def test_formats(tmp):
    runs = os.path.join(tmp, "runs")
    # Results to feed the commands that read them: a tiny simulated run (seconds).
    code, _, err = cli(["run", "--model", "tiny", "--backend", "sim:nvidia-h100-sxm", "--batch",
                        "1,2", "--prompt-len", "8", "--gen-len", "4", "--repetitions", "2",
                        "--results-dir", ARGS.results_dir, "--out", runs, "-q"])
    check(code == 0, f"a simulated run exits 0: {err}")
    files = glob.glob(os.path.join(runs, "*.json"))
    check(len(files) == 2, f"two result files: {files}")
    check(all(":" not in os.path.basename(f) for f in files),
          f"result file names have no ':': {files}")
    layouts = os.path.join(tmp, "layouts.json")
    cases = {
        "models": ["models"],
        "backends": ["backends"],
        "cost": ["cost", runs],
        "compare": ["compare", runs, runs],
        "report": ["report", runs],
        "compare-hardware": ["compare-hardware", "--model", "llama-3.1-8b", "--systems",
                             "hgx-h100-8", "--prompt-len", "512", "--gen-len", "64",
                             "--layouts", layouts, "-q"],
        "push": ["push", runs, "--url", "http://127.0.0.1:9", "--dry-run", "-q"],
        "micro": ["micro", "--list"],
    }
    seen = set()
    for cmd in commands():
        formats, has_output = help_formats(cmd)
        check(set(formats) <= ALL_FORMATS, f"{cmd}: formats {formats} from the one set")
        if cmd in ("serve", "serve-model"):
            check(not formats, f"{cmd} prints no results, so no --format")
            continue
        check(has_output, f"{cmd} offers -o/--output FILE")
        if formats:
            code, _, err = cli([cmd, "--format", "xml"] + cases.get(cmd, [])[1:])
            check(code == 2 and "allowed values are " + ", ".join(formats) in err,
                  f"{cmd} --format xml exits 2 naming {formats}: {code} {err[-300:]}")
        if cmd == "run":
            continue  # every format of run is checked below
        if cmd not in cases:
            print(f"note: {cmd} is not run here (it measures for minutes): help checked only")
            continue
        seen.add(cmd)
        for fmt in formats or [None]:
            if cmd == "micro" and fmt == "json":
                continue  # --list prints names whatever the format
            # backends reports the memory available now, which moves between two calls.
            same_with_output(cases[cmd], fmt, tmp, deterministic=cmd != "backends")
    check(seen == set(cases), f"every command was run: {sorted(seen)}")

    # run: every format, -o FILE, stdout empty; sweep-like lists of rate and concurrency.
    for fmt in ["table", "md", "csv", "json", "jsonl"]:
        path = os.path.join(tmp, "out", f"run.{fmt}")
        code, out, err = cli(["run", "--model", "tiny", "--backend", "sim:nvidia-h100-sxm",
                              "--prompt-len", "8", "--gen-len", "4", "--repetitions", "2",
                              "--results-dir", ARGS.results_dir, "--out", os.path.join(tmp, "r"),
                              "--format", fmt, "-o", path, "-q"])
        check(code == 0 and out == "", f"run --format {fmt} -o: exit {code}, stdout {out[:100]!r}")
        with open(path) as f:
            parses_as(fmt, f.read(), f"run --format {fmt}")

    # -o on bad input leaves an existing file alone; an impossible FILE is bad input.
    keep = os.path.join(tmp, "out", "keep.txt")
    with open(keep, "w") as f:
        f.write("yesterday\n")
    code, _, _ = cli(["report", os.path.join(tmp, "missing"), "-o", keep])
    check(code == 2 and open(keep).read() == "yesterday\n", "bad input leaves -o FILE alone")
    code, _, err = cli(["models", "-o", "/proc/self/nope/x.txt"])
    check(code == 2 and "-o/--output" in err, f"an impossible -o FILE exits 2: {code} {err}")


def test_lists_sweep(tmp):
    for flag, values, key in [("--rate", "5,10", "rate"), ("--concurrency", "1,2", "concurrency")]:
        out = os.path.join(tmp, "sweep-" + key)
        code, _, err = cli(["run", "--model", "tiny", "--backend", "sim:nvidia-h100-sxm",
                            "--scenario", "server", flag, values, "--batch", "2", "--requests",
                            "12", "--prompt-len", "8", "--gen-len", "4", "--min-requests", "0",
                            "--min-duration", "0", "--results-dir", ARGS.results_dir, "--out",
                            out, "-q"])
        check(code == 0, f"{flag} {values}: exit {code}: {err[-500:]}")
        docs = [json.load(open(p)) for p in glob.glob(os.path.join(out, "*.json"))]
        field = "target_rate" if key == "rate" else "concurrency"
        got = sorted(d.get("serving", {}).get(field, -1) for d in docs)
        want = sorted(float(v) if key == "rate" else int(v) for v in values.split(","))
        check(got == want, f"{flag} {values} runs each value: {got}")
    code, _, err = cli(["run", "--model", "tiny", "--scenario", "server", "--rate", "5,x"])
    check(code == 2 and "--rate" in err, f"--rate 5,x is bad input naming the flag: {err}")


def test_suite_compare_hardware(tmp):
    """A suite's compare_hardware section runs after its workloads, every row modelled."""
    suite = os.path.join(tmp, "suite.json")
    section = {"model": "llama-3.1-8b", "systems": ["hgx-h100-8"], "prompt_len": 512,
               "gen_len": 64, "slo_tpot": 0.05}
    with open(suite, "w") as f:
        json.dump({"name": "t", "defaults": {"backend": "sim:nvidia-h20", "repetitions": 1},
                   "workloads": [{"model": "tiny", "batch": [1, 2]}],
                   "compare_hardware": section}, f)
    base = ["run", "--suite", suite, "--results-dir", ARGS.results_dir, "--out",
            os.path.join(tmp, "suite-runs"), "-q"]
    code, out, err = cli(base)
    check(code == 0, f"run --suite with compare_hardware exits 0: {err[-500:]}")
    rows = [l for l in out.splitlines() if l.startswith("nvidia-hgx-h100-8")]
    check("compare-hardware: llama-3.1-8b" in out and rows and "modelled" in rows[0],
          f"the comparison follows the table, its rows modelled: {out[-1500:]}")
    check(re.search(r"^tiny\s.*\smodelled\s", out, re.M), "the workloads' rows say modelled")
    code, out, err = cli(base + ["--format", "json"])
    check(code == 0 and isinstance(json.loads(out), list),
          "with --format json stdout stays one JSON document")
    with open(suite, "w") as f:
        json.dump({"name": "t", "workloads": [{"model": "tiny"}],
                   "compare_hardware": dict(section, systemz=["x"])}, f)
    code, _, err = cli(base)
    check(code == 2 and "compare_hardware" in err and "systemz" in err,
          f"an unknown compare_hardware field is bad input naming it: {code} {err}")


def read_pty(fd, proc, timeout):
    data = b""
    deadline = time.time() + timeout
    while time.time() < deadline:
        r, _, _ = select.select([fd], [], [], 0.2)
        if r:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            data += chunk
        elif proc.poll() is not None:
            break
    return data


def test_progress(tmp):
    args = [ARGS.clusterbench, "run", "--model", "tiny", "--batch", "1,2", "--prompt-len", "8",
            "--gen-len", "4", "--repetitions", "3", "--results-dir", ARGS.results_dir,
            "--out", os.path.join(tmp, "progress")]
    env = dict(os.environ)
    env.pop("CLUSTERBENCH_PROGRESS", None)
    master, slave = pty.openpty()
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=slave,
                            stdin=subprocess.DEVNULL, env=env)
    os.close(slave)
    data = read_pty(master, proc, 240).decode(errors="replace")
    proc.wait(timeout=60)
    os.close(master)
    check(proc.returncode == 0, f"run on a terminal exits 0: {data[-500:]}")
    check("\r\x1b[K" in data, "a terminal gets one rewritten status line")
    check(re.search(r"\[\d/2\] \d+:\d\d elapsed, ETA (\d+:\d\d|--:--) \|", data),
          f"the status line has elapsed time and an ETA: {data[-400:]!r}")
    check(not re.search(r"repetition \d/3\r?\n", data),
          "no line per repetition on a terminal")
    code, _, err = cli(args[1:])
    check(code == 0 and "\x1b[K" not in err and re.search(r"repetition 1/3\n", err),
          "plain lines when stderr is not a terminal")


def main():
    global ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument("--clusterbench", required=True)
    ap.add_argument("--results-dir", required=True)
    ARGS = ap.parse_args()
    ARGS.clusterbench = os.path.abspath(ARGS.clusterbench)
    os.makedirs(os.path.join(ARGS.results_dir, "scratch"), exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="cli_consistency_", dir=os.path.join(ARGS.results_dir, "scratch"))
    os.makedirs(os.path.join(tmp, "out"))
    t0 = time.time()
    for test in (test_formats, test_lists_sweep, test_suite_compare_hardware, test_progress):
        try:
            test(tmp)
        except Exception as e:  # an error is a failure
            check(False, f"{test.__name__}: {type(e).__name__}: {e}")
    print(f"cli_consistency: {len(FAILURES)} failure(s) in {time.time() - t0:.1f} s")
    if not FAILURES:
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
