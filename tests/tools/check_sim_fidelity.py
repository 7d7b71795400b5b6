#!/usr/bin/env python3
"""Reruns the commands of docs/sim-fidelity.md's ```fidelity block and checks that each figure
is what the page says (within 0.5%). Usage: check_sim_fidelity.py CLUSTERBENCH DOC."""
import json
import re
import shlex
import subprocess
import sys
import tempfile

LINE = re.compile(r"^(\S+)\s+(\w+)\s+x([\d.]+)\s*=\s*([\d.]+)\s*::\s*(.+)$")


def main():
    binary, doc = sys.argv[1], sys.argv[2]
    text = open(doc).read()
    blocks = re.findall(r"```fidelity\n(.*?)```", text, re.S)
    if not blocks:
        print(f"{doc}: no ```fidelity block")
        return 1
    failures, checked = 0, 0
    for line in blocks[0].strip().splitlines():
        m = LINE.match(line.strip())
        if not m:
            print(f"{doc}: cannot parse: {line}")
            return 1
        name, metric, scale, want, command = m.groups()
        with tempfile.TemporaryDirectory() as out:
            args = [binary] + shlex.split(command) + ["--format", "json", "-q", "--out", out]
            run = subprocess.run(args, capture_output=True, text=True, timeout=120)
            if run.returncode != 0:
                print(f"{name}: exit {run.returncode}: {run.stderr.strip()}")
                failures += 1
                continue
            rec = json.loads(run.stdout)[0]
        got = rec["metrics"][metric]["value"] * float(scale)
        if rec["metrics"][metric]["how"] != "modelled":
            print(f"{name}: {metric} is not labelled modelled")
            failures += 1
        ratio = got / float(want)
        status = "ok" if abs(ratio - 1) <= 0.005 else "MOVED"
        print(f"{name}: {metric} x{scale} = {got:.0f}, page says {want} ({status})")
        failures += status != "ok"
        checked += 1
    return 1 if failures or not checked else 0


if __name__ == "__main__":
    sys.exit(main())
