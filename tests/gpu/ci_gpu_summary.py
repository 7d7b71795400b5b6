#!/usr/bin/env python3
"""ci/gpu's summary: reads the steps ci/gpu recorded (JSON lines), the tests' results (the host
tests' gtest JSON, else their part of ci_gpu.log, so a binary killed by its time bound still
counts; the gpu tests' ctest lines in the log with the failures' messages from ctest's JUnit
file), cuda_bench's and the PyTorch baseline's JSON; writes OUT/summary.json. With
--print it also prints a short report and exits with ci/gpu's exit code: 0 everything ran and the
targets are met, 1 a step failed, timed out or was skipped for time (the PyTorch baseline never
counts) or no GPU was found outside a dry run, 3 only the targets were missed."""

import argparse
import json
import os
import re
import sys
import xml.etree.ElementTree as ET

MBU_TARGET, MFU_TARGET = 0.85, 0.70
TEST_LINE = re.compile(r"^\[\s*(OK|FAILED|SKIPPED|RUN)\s*\] (\S+\.\S+)")
# "Test #5: NAME[  # GetParam() = ...] ....***Failed": the name without gtest's parameter note.
CTEST_LINE = re.compile(r"Test +#\d+: (\S+).*?\s\.{3,}\s*(?:\*\*\*)?(Passed|Failed|Skipped|"
                        r"Timeout|Exception|Not Run)")


def load_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def log_section(log, step):
    """The lines ci/gpu logged for `step`, between its header and its result line."""
    lines, inside = [], False
    for line in log.splitlines():
        if line.startswith(f"== {step} (at most"):
            inside, lines = True, []
        elif inside and line.startswith(f"== {step}: "):
            inside = False
        elif inside:
            lines.append(line)
    return lines


def tests_from_log(lines):
    result, running = {}, None
    for line in lines:
        m = TEST_LINE.match(line)
        if not m:
            continue
        kind, name = m.groups()
        if kind == "RUN":
            running = name
        else:
            result[name] = kind
            running = None if running == name else running
    counts = {k: sum(1 for v in result.values() if v == k) for k in ("OK", "FAILED", "SKIPPED")}
    return {"passed": counts["OK"], "failed": counts["FAILED"], "skipped": counts["SKIPPED"],
            "failures": [{"name": n, "message": ""} for n, v in result.items() if v == "FAILED"],
            "unfinished": running, "source": "log"}


def tests_from_gtest_json(doc):
    out = {"passed": 0, "failed": 0, "skipped": 0, "failures": [], "unfinished": None,
           "source": "gtest json"}
    for suite in doc.get("testsuites", []):
        for t in suite.get("testsuite", []):
            name = f"{suite.get('name')}.{t.get('name')}"
            if t.get("failures"):
                out["failed"] += 1
                out["failures"].append({"name": name,
                                        "message": t["failures"][0].get("failure", "")[:600]})
            elif t.get("result") == "SKIPPED":
                out["skipped"] += 1
            else:
                out["passed"] += 1
    return out


def junit_messages(path):
    """Test name -> the first failure of its output in ctest's JUnit file."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return {}
    out = {}
    for case in root.iter("testcase"):
        text = case.findtext("system-out") or ""
        lines = text.splitlines()
        for i, line in enumerate(lines):
            if "Failure" in line or "Exception" in line or "failed:" in line:
                out[(case.get("name") or "").split(" ")[0]] = "\n".join(lines[i:i + 6])[:600]
                break
    return out


def tests_from_ctest(lines, messages):
    out = {"passed": 0, "failed": 0, "skipped": 0, "failures": [], "unfinished": None,
           "source": "ctest"}
    for line in lines:
        m = CTEST_LINE.search(line)
        if not m:
            continue
        name, result = m.groups()
        if result == "Passed":
            out["passed"] += 1
        elif result == "Skipped":
            out["skipped"] += 1
        else:
            out["failed"] += 1
            out["failures"].append({"name": name, "message": f"[{result}] " +
                                    messages.get(name, "")})
    return out


def tests(out_dir, log, step):
    lines = log_section(log, step)
    if not lines:
        return None
    if step == "gpu_tests":
        return tests_from_ctest(lines, junit_messages(os.path.join(out_dir, "gpu_tests.xml")))
    doc = load_json(os.path.join(out_dir, f"{step}.json"))
    return tests_from_gtest_json(doc) if doc else tests_from_log(lines)


def bench_figures(b):
    if b is None:
        return None
    keys = ("device", "uuid", "model", "layers", "dtype", "copy_bandwidth_bytes_per_s",
            "gemm_flops_per_s", "ceilings", "prefill", "decode_batch1", "decode_batch", "paths",
            "errors")
    return {k: b[k] for k in keys if k in b}


def verdict(steps, dry, bench):
    """(exit code, reason)."""
    for s in steps:
        if s["step"] == "gpu" and s["status"] == "stopped":
            if dry:
                return 0, "dry run: stopped after the gpu tests (" + s["note"] + ")"
            return 1, "no GPU: " + s["note"]
    bad = [s for s in steps if s["step"] != "torch" and s["status"] in ("failed", "timeout", "skipped")]
    if bad:
        return 1, "failed: " + ", ".join(f"{s['step']} ({s['status']})" for s in bad)
    if bench is None:
        return 1, "no cuda_bench figures"
    mbu = (bench.get("decode_batch1") or {}).get("mbu")
    mfu = (bench.get("prefill") or {}).get("mfu")
    if not isinstance(mbu, (int, float)) or not isinstance(mfu, (int, float)):
        return 1, "cuda_bench gave no MBU or MFU"
    if mbu < MBU_TARGET or mfu < MFU_TARGET:
        return 3, f"targets missed: MBU {mbu:.3f} (>= {MBU_TARGET}), MFU {mfu:.3f} (>= {MFU_TARGET})"
    return 0, "all steps ran and the targets are met"


def summary(args):
    steps = []
    if os.path.exists(args.steps):
        with open(args.steps) as f:
            steps = [json.loads(line) for line in f if line.strip()]
    log = open(args.log).read() if os.path.exists(args.log) else ""
    bench = load_json(os.path.join(args.out, "cuda_bench.json"))
    fallback = load_json(os.path.join(args.out, "cuda_bench_fallback.json"))
    torch = load_json(os.path.join(args.out, "torch_baseline.json"))
    figures = bench if bench and "prefill" in bench else fallback
    ratios = {}
    for key in ("prefill", "decode_batch1", "decode_batch"):
        ours = ((figures or {}).get(key) or {}).get("tokens_per_s")
        theirs = ((torch or {}).get(key) or {}).get("tokens_per_s")
        if ours and theirs:
            ratios[key] = ours / theirs
    code, reason = verdict(steps, args.dry_run, bench)
    return {
        "dry_run": args.dry_run,
        "complete": args.print,
        "steps": steps,
        "tests": {name: tests(args.out, log, name) for name in ("host_tests", "gpu_tests")},
        "cuda_bench": bench_figures(bench),
        "cuda_bench_fallback": bench_figures(fallback),
        "torch": torch,
        "ratios_to_torch": ratios,
        "targets": {"mbu_decode_batch1": MBU_TARGET, "mfu_prefill": MFU_TARGET},
        "exit_code": code,
        "reason": reason,
    }


def num(v, fmt):
    """`v` formatted, or n/a for a figure that is missing (null: a ceiling was not measured)."""
    return format(v, fmt) if isinstance(v, (int, float)) else "n/a"


def report(s):
    print("ci/gpu summary" + (" (dry run)" if s["dry_run"] else ""))
    print("steps: " + " | ".join(f"{x['step']} {x['status']} {x['seconds']}s" for x in s["steps"]))
    for name, t in s["tests"].items():
        if t is None:
            continue
        line = f"{name}: {t['passed']} passed, {t['failed']} failed, {t['skipped']} skipped"
        if t["unfinished"]:
            line += f"; killed while running {t['unfinished']}"
        print(line)
        for f in t["failures"][:12]:
            msg = " ".join(f["message"].split())[:300]
            print(f"  FAILED {f['name']}" + (f": {msg}" if msg else ""))
    for label, b in (("cuda_bench", s["cuda_bench"]), ("cuda_bench (fallback paths)",
                                                         s["cuda_bench_fallback"])):
        if not b:
            continue
        print(f"{label}: {b.get('device', 'no device')} {b.get('model')} {b.get('dtype')}, "
              f"{b.get('layers')} layers")
        c = b.get("ceilings") or {}
        for kind, unit, scale in (("copy", "GB/s", 1e9), ("gemm", "TFLOP/s", 1e12)):
            w = c.get(kind)
            if w and all(isinstance(w.get(k), (int, float)) for k in ("rate", "min", "max")):
                print(f"  {kind}: {w['rate'] / scale:.1f} {unit} (median of {w['windows']} windows "
                      f">= {w['window_seconds']} s, {w['min'] / scale:.1f}..{w['max'] / scale:.1f})")
        pre, d1, dn = b.get("prefill"), b.get("decode_batch1"), b.get("decode_batch")
        if d1:
            print(f"  decode batch 1: {num(d1.get('tokens_per_s'), '.1f')} tokens/s, MBU "
                  f"{num(d1.get('mbu'), '.3f')} (target >= {MBU_TARGET})")
        if pre:
            print(f"  prefill {pre.get('prompt')}: {num(pre.get('tokens_per_s'), '.0f')} tokens/s, "
                  f"MFU {num(pre.get('mfu'), '.3f')} (target >= {MFU_TARGET})")
        if dn:
            print(f"  decode batch {dn.get('batch')}: {num(dn.get('tokens_per_s'), '.1f')} tokens/s")
        p = b.get("paths")
        if p:
            g = p.get("graphs") or {}
            print(f"  paths on: {p.get('enabled')}; routes: {p.get('counts')}")
            print(f"  graphs: {g.get('replays')} replays, {g.get('captures')} captured, "
                  f"{g.get('eager_decode_steps')} eager decode steps" +
                  (f"; {g['note']}" if g.get("note") else ""))
        for e in b.get("errors") or []:
            print(f"  ERROR {e}")
    if s["ratios_to_torch"]:
        print("vs PyTorch: " + ", ".join(f"{k} {v:.2f}x" for k, v in s["ratios_to_torch"].items()))
    print(f"exit {s['exit_code']}: {s['reason']}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--dry-run", action="store_true")
    ap.add_argument("--print", action="store_true")
    args = ap.parse_args()
    s = summary(args)
    tmp = os.path.join(args.out, "summary.json.tmp")
    with open(tmp, "w") as f:
        json.dump(s, f, indent=2)
    os.replace(tmp, os.path.join(args.out, "summary.json"))
    if args.print:
        report(s)
        return s["exit_code"]
    return 0


if __name__ == "__main__":
    sys.exit(main())
