"""Every Grafana dashboard query, proven against a real Prometheus (used by prometheus_test.py).

- backfill(): a week of history for the series a Pushgateway holds, written with
  `promtool tsdb create-blocks-from openmetrics` into the TSDB that Prometheus then starts on,
  so that `offset 1d` and `quantile_over_time(...[7d])` (the regressions view) have data;
- check_dashboards(): structure (uids, datasource variable, units, descriptions), every
  variable's label_values() query, every annotation and panel expression returning data, and
  the series-merge test: fed two series that differ only in their scenario, no panel may merge
  them (every result series keeps the scenario label, and both scenarios appear).
"""
import glob
import json
import os
import re
import subprocess
import time

SERIES_LABELS = {"cluster", "model", "backend", "device", "dtype", "batch", "scenario",
                 "prompt_len", "gen_len", "rate", "concurrency", "routing"}


def backfill(samples, tsdb_dir, days=8, scale=0.9):
    """History of `samples` [(name, labels, value)]: every day of the last `days` at this time
    of day +-30 min (a sample every 2 min), each value x `scale`. Returns promtool's exit code."""
    now = time.time()
    by_name = {}
    for name, labels, value in samples:
        labels = {k: v for k, v in labels.items() if v != ""}
        if value != value:  # NaN
            continue
        by_name.setdefault(name, []).append((labels, value))
    times = sorted(now - d * 86400 + k * 120 for d in range(1, days + 1) for k in range(-15, 16))
    lines = []
    for name in sorted(by_name):
        lines.append(f"# TYPE {name} unknown")
        for labels, value in by_name[name]:
            text = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
            for t in times:
                lines.append(f"{name}{{{text}}} {value * scale!r} {t:.3f}")
    lines.append("# EOF")
    path = os.path.join(os.path.dirname(tsdb_dir), "history.om")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    os.makedirs(tsdb_dir, exist_ok=True)
    r = subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics", path, tsdb_dir],
                       capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        print(r.stdout[-2000:], r.stderr[-2000:])
    return r.returncode


def substitute(expr, fixed=None):
    """Grafana's template variables, as 'All' would expand them (`fixed`: name -> value)."""
    expr = expr.replace("$__rate_interval", "5m").replace("$__interval", "1m")
    expr = expr.replace("$__range", "1h")
    for name, value in (fixed or {}).items():
        expr = re.sub(r"\$\{?" + name + r"\b\}?", lambda _: value, expr)
    return re.sub(r"\$\{?([a-z_]+)\}?", ".*", expr)


def families_of(expr):
    return {re.sub(r"_(sum|count)$", "", n) for n in re.findall(r"clusterbench_[a-z0-9_]+", expr)}


class Checker:
    def __init__(self, check, query, source_dir):
        self.check, self.query, self.source_dir = check, query, source_dir
        self.evaluated = self.skipped = self.merge_checked = 0

    def expression(self, title, expr, available, probe, kind):
        """One expression: returns data; fed the probe, keeps the scenarios apart."""
        needs = families_of(expr)
        missing = needs - available
        if missing:  # no run of this test has such figures (e.g. MoE)
            print(f"note: {title}: not evaluated, no result has {missing}")
            self.skipped += 1
            return
        r = self.query(substitute(expr))
        self.evaluated += 1
        self.check(r["result"], f"{title}: '{expr[:160]}...' returns data")
        if probe is None or kind == "annotation":  # a marker per cluster's run, not a series
            return
        # The merge test: only the probe's two series (equal but for the scenario).
        got = self.query(substitute(expr, probe["fixed"]))["result"]
        labelled = [s["metric"] for s in got if set(s["metric"]) & SERIES_LABELS]
        unlabelled = [s for s in got if not set(s["metric"]) & SERIES_LABELS]
        self.check(not unlabelled or kind in ("stat", "bargauge-total"),
                   f"{title}: a total without series labels outside a stat panel: {unlabelled}")
        for m in labelled:
            self.check("scenario" in m, f"{title}: merges the scenarios (no scenario in {m})")
        scenarios = {m.get("scenario") for m in labelled}
        if needs <= probe["common"] and labelled and 'scenario=~"server' not in expr:
            self.merge_checked += 1
            self.check(set(probe["scenarios"]) <= scenarios,
                       f"{title}: both scenarios {probe['scenarios']} shown, got {scenarios}")

    def variable(self, name, v, present_labels):
        definition = v.get("definition", "")
        m = re.match(r"label_values\((.*),\s*([a-zA-Z_]+)\)$", definition)
        if not self.check(m, f"{name}: variable {v['name']} from label_values(): {definition}"):
            return
        r = self.query(f"count by ({m.group(2)}) ({substitute(m.group(1))})")
        if m.group(2) in present_labels:
            self.check(r["result"], f"{name}: variable {v['name']} has values")
        self.check(v.get("datasource", {}).get("uid") == "${datasource}",
                   f"{name}: variable {v['name']} uses ${{datasource}}")

    def board(self, path, uids, available, probe, present_labels):
        name = os.path.basename(path)
        with open(path) as f:
            d = json.load(f)
        self.check(d.get("uid") and d["uid"] not in uids, f"{name}: a unique uid")
        uids.add(d.get("uid"))
        self.check(d.get("schemaVersion", 0) >= 39, f"{name}: schemaVersion >= 39")
        variables = d.get("templating", {}).get("list", [])
        ds_vars = [v for v in variables if v.get("type") == "datasource"]
        self.check(len(ds_vars) == 1 and ds_vars[0].get("query") == "prometheus",
                   f"{name}: one datasource variable of type prometheus")
        names = {v["name"] for v in variables}
        for label in SERIES_LABELS | {"how"}:
            self.check(label in names, f"{name}: a template variable for the label {label}")
        for v in variables:
            if v.get("type") == "query":
                self.variable(name, v, present_labels)
        notes = [a for a in d.get("annotations", {}).get("list", []) if a.get("expr")]
        self.check(notes, f"{name}: an annotation for each nightly run")
        for a in notes:
            self.expression(f"{name}: annotation '{a['name']}'", a["expr"], available, probe,
                            "annotation")
        ids = [p.get("id") for p in d.get("panels", [])]
        self.check(len(ids) == len(set(ids)) and None not in ids, f"{name}: unique panel ids")
        for p in d.get("panels", []):
            title = f"{name}: panel '{p.get('title')}'"
            if p.get("type") == "row":
                continue
            self.check(p.get("fieldConfig", {}).get("defaults", {}).get("unit"),
                       f"{title} has a unit")
            self.check(p.get("description"), f"{title} has a description")
            self.check(p.get("datasource", {}).get("uid") == "${datasource}",
                       f"{title} uses ${{datasource}}")
            self.check(p.get("targets"), f"{title} has queries")
            for t in p.get("targets", []):
                expr = t["expr"]
                for label in SERIES_LABELS:
                    self.check(f'{label}=~"${label}"' in expr, f"{title}: filters on ${label}")
                kind = p["type"]
                if kind == "bargauge" and expr.startswith("count by (status)"):
                    kind = "bargauge-total"
                self.expression(title, expr, available, probe, kind)


def check_dashboards(check, query, source_dir, available, probe, present_labels):
    """`probe`: {"fixed": {variable: value}, "scenarios": [..], "common": families both have}."""
    c = Checker(check, query, source_dir)
    paths = sorted(glob.glob(os.path.join(source_dir, "results/grafana/dashboards/*.json")))
    check(len(paths) >= 5, f"at least 5 dashboards (found {len(paths)})")
    boards = {os.path.basename(p) for p in paths}
    check({"serving.json", "regressions.json"} <= boards, f"serving and regressions: {boards}")
    uids = set()
    for path in paths:
        c.board(path, uids, available, probe, present_labels)
    check(c.merge_checked >= 10, f"the merge test covered panels ({c.merge_checked})")
    print(f"dashboards: {len(paths)} checked, {c.evaluated} expressions returned data, "
          f"{c.skipped} not evaluated, {c.merge_checked} checked for merged series")
    # The generator is the source: the committed JSON is what it writes.
    r = subprocess.run(["python3", os.path.join(source_dir, "results/grafana/make_dashboards.py"),
                        "--check"], capture_output=True, text=True, timeout=60)
    check(r.returncode == 0, f"make_dashboards.py --check: the JSON is up to date: {r.stdout}"
                             f"{r.stderr}")
