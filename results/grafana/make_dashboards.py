#!/usr/bin/env python3
"""Writes the Grafana dashboards in results/grafana/dashboards/ from one description.

Edit this file, not the JSON, then run it: `python3 results/grafana/make_dashboards.py`
(`--check` exits 1 when a committed file differs from what it would write).
Every panel gets a unit, a description, a stable id and the ${datasource} variable; every query
filters on a template variable for each label that defines a series and keeps all of them in
its `by (...)`, so two series that differ in one label (say an offline run and a server run of
the same model) never merge into one line. The integration test
(tests/integration/prometheus_test.py, prom_dashboards.py) evaluates every expression against a
real Prometheus fed by a real Pushgateway, with a backfilled history, and fails if any panel
merges two series that differ only in their scenario.
"""
import json
import os
import sys

SCHEMA_VERSION = 39  # Grafana 10.4 / 11
DS = {"type": "prometheus", "uid": "${datasource}"}

# The labels that define a series (results/prometheus/metrics_mapping.h SeriesLabels), plus
# `how` (measured, modelled, extrapolated) on every figure. Order: the variables' chain.
SERIES_LABELS = ["cluster", "model", "backend", "device", "dtype", "batch", "scenario",
                 "prompt_len", "gen_len", "rate", "concurrency", "routing"]
VARIABLES = [("cluster", "Cluster"), ("model", "Model"), ("backend", "Backend"),
             ("device", "Device"), ("dtype", "Dtype"), ("batch", "Batch"),
             ("scenario", "Scenario"), ("prompt_len", "Prompt len"), ("gen_len", "Gen len"),
             ("rate", "Load: rate (req/s)"), ("concurrency", "Load: concurrency"),
             ("routing", "MoE routing"), ("how", "How obtained")]
# Every query filters on every variable ("All" is .*, which also matches an absent label);
# families without figures (status, timestamps) have no `how` and are not filtered on it.
F = ",".join(f'{n}=~"${n}"' for n, _ in VARIABLES)
F_NO_HOW = ",".join(f'{n}=~"${n}"' for n, _ in VARIABLES if n != "how")
NO_HOW = {"clusterbench_run_valid", "clusterbench_run_status", "clusterbench_run_info",
          "clusterbench_last_success_timestamp_seconds",
          "clusterbench_last_run_timestamp_seconds"}
BY = ", ".join(SERIES_LABELS + ["how"])
SERIES = ("{{model}} {{backend}} {{dtype}} b{{batch}} {{scenario}}{{rate}}{{concurrency}} "
          "p{{prompt_len}}/g{{gen_len}} {{routing}} on {{device}} @ {{cluster}} ({{how}})")
TOKS = "suffix: tok/s"
TTFT_TPOT_P50 = 'kind=~"ttft|tpot",quantile="0.5"'
TPOT_P50 = 'kind="tpot",quantile="0.5"'
TPOT_P99 = 'kind="tpot",quantile="0.99"'
DECODE = 'phase="decode"'
BAR = {"options": {"orientation": "horizontal", "displayMode": "basic",
                   "reduceOptions": {"calcs": ["lastNotNull"], "values": False}}}


def variables():
    v = [{
        "name": "datasource", "label": "Prometheus", "type": "datasource",
        "query": "prometheus", "current": {}, "hide": 0, "refresh": 1, "options": [],
        "description": "The Prometheus that scrapes the Pushgateway (or clusterbench serve).",
    }]
    chain = []
    for name, label in VARIABLES:
        sel = ",".join(f'{c}=~"${c}"' for c in chain)
        source = ("clusterbench_throughput_tokens_per_second" if name == "how"
                  else "clusterbench_run_valid")
        query = f"label_values({source}{{{sel}}}, {name})"
        v.append({
            "name": name, "label": label, "type": "query", "datasource": DS,
            "definition": query,
            "query": {"query": query, "refId": "PrometheusVariableQueryEditor-VariableQuery",
                      "qryType": 1},
            "multi": True, "includeAll": True, "allValue": ".*",
            "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
            "refresh": 2, "sort": 3 if name in ("batch", "prompt_len", "gen_len", "rate",
                                                "concurrency") else 1,
            "hide": 0, "options": [], "regex": "",
            "description": f"Series label `{name}`; All also matches series without it.",
        })
        chain.append(name)
    return v


def annotations():
    return {"list": [
        {"builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"},
         "enable": True, "hide": True, "iconColor": "rgba(0, 211, 255, 1)",
         "name": "Annotations & Alerts", "type": "dashboard"},
        {"name": "Nightly runs", "datasource": DS, "enable": True, "iconColor": "#8F3BB8",
         "expr": f"max by (cluster) (clusterbench_last_run_timestamp_seconds{{{F_NO_HOW}}}) * 1000",
         "useValueForTime": True, "step": "1h", "titleFormat": "clusterbench run",
         "textFormat": "runs on {{cluster}} ended", "tagKeys": "cluster"},
    ]}


class Board:
    def __init__(self, uid, title, description, tags):
        self.uid, self.title, self.description, self.tags = uid, title, description, tags
        self.panels, self.y, self.x, self.row_h = [], 0, 0, 0

    def panel(self, kind, title, description, unit, targets, w=12, h=8, **extra):
        if self.x + w > 24:
            self.x, self.y = 0, self.y + self.row_h
            self.row_h = 0
        p = {
            "id": len(self.panels) + 1, "type": kind, "title": title,
            "description": description, "datasource": DS,
            "gridPos": {"x": self.x, "y": self.y, "w": w, "h": h},
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
            "targets": [dict(t, datasource=DS, refId=chr(ord("A") + i))
                        for i, t in enumerate(targets)],
        }
        p.update(extra)
        self.panels.append(p)
        self.x += w
        self.row_h = max(self.row_h, h)

    def json(self):
        return {
            "uid": self.uid, "title": self.title, "description": self.description,
            "tags": ["clusterbench"] + self.tags, "schemaVersion": SCHEMA_VERSION,
            "version": 1, "editable": True, "graphTooltip": 1,
            "time": {"from": "now-30d", "to": "now"}, "timezone": "utc",
            "refresh": "", "annotations": annotations(), "links": [
                {"title": "clusterbench", "type": "dashboards", "tags": ["clusterbench"],
                 "asDropdown": True, "includeVars": True, "keepTime": True}],
            "templating": {"list": variables()}, "panels": self.panels,
        }


def q(expr, legend="", instant=False, fmt="time_series"):
    t = {"expr": expr, "legendFormat": legend, "range": not instant, "instant": instant}
    if fmt != "time_series":
        t["format"] = fmt
    return t


def m(name, sel=""):
    """A family filtered on every variable (and `sel`)."""
    return f"{name}{{{sel + ',' if sel else ''}{F_NO_HOW if name in NO_HOW else F}}}"


def top(agg, name, sel=""):
    """`agg by (every series label, how) (family)`: never merges two series."""
    return f"{agg} by ({BY}) ({m(name, sel)})"


def status_panels(b):
    b.panel("stat", "Series whose latest run is not ok",
            "Series whose latest run ended shortened, unstable, invalid, failed or skipped "
            "(clusterbench_run_valid 0). 0 is good; see the status table.", "none",
            [q(f"count({m('clusterbench_run_valid')} == 0) or vector(0)", instant=True)],
            w=6, h=4)
    b.panel("stat", "Age of the oldest last success",
            "Time since the least recent successful run among the selected series: a series "
            "that keeps failing grows old here.", "s",
            [q(f"time() - min({m('clusterbench_last_success_timestamp_seconds')})",
               instant=True)], w=6, h=4)
    b.panel("bargauge", "Latest runs by status",
            "How many series' latest run ended ok, shortened, unstable, invalid, failed or "
            "skipped (clusterbench_run_status).", "none",
            [q(f"count by (status) ({m('clusterbench_run_status')} == 1)", "{{status}}",
               instant=True)], w=12, h=4, **BAR)


def nightly():
    b = Board("clusterbench-nightly", "clusterbench — nightly trends",
              "How each series did night after night: throughput, latency, utilisation, energy "
              "and cost, and whether its latest run was valid. Annotations mark each run.",
              ["nightly"])
    status_panels(b)
    b.panel("timeseries", "Decode throughput",
            "Output tokens per second of each run's median repetition (serving: over the "
            "measured pass). The how label says measured, modelled or extrapolated.", TOKS,
            [q(top("max", "clusterbench_throughput_tokens_per_second", DECODE), SERIES)])
    b.panel("timeseries", "Prefill throughput",
            "Prompt (input) tokens per second of each run's median repetition.", TOKS,
            [q(top("max", "clusterbench_throughput_tokens_per_second", 'phase="prefill"'),
               SERIES)])
    b.panel("timeseries", "TTFT and TPOT, median",
            "Median time to first token and time per output token of each run.", "s",
            [q(f"max by ({BY}, kind) ({m('clusterbench_latency_seconds', TTFT_TPOT_P50)})",
               "{{kind}} " + SERIES)])
    b.panel("timeseries", "MFU and MBU",
            "Model FLOPs utilisation (prefill) and memory bandwidth utilisation (decode) "
            "against the device's measured (or, simulated, modelled) ceilings.", "percentunit",
            [q(top("max", "clusterbench_mfu_ratio", 'phase="prefill"'), "MFU " + SERIES),
             q(top("max", "clusterbench_mbu_ratio", DECODE), "MBU " + SERIES)])
    b.panel("timeseries", "Energy per token",
            "Joules per token (how=modelled when a power model stood in for a meter).",
            "joule", [q(top("min", "clusterbench_energy_joules_per_token"), SERIES)])
    b.panel("timeseries", "Cost per million tokens, blended",
            "USD per million tokens (input and output together) from the cost model.",
            "currencyUSD",
            [q(top("min", "clusterbench_cost_usd_per_million_tokens", 'kind="blended"'),
               SERIES)])
    b.panel("timeseries", "Verification error",
            "Largest relative logit error against the reference backend: a rising error warns "
            "before a run turns invalid. The dtype's tolerance is in the status table.", "sci",
            [q(top("max", "clusterbench_verification_max_rel_error"), SERIES)])
    b.panel("timeseries", "Run duration",
            "Wall time of each series' latest run: verification, warm-up and repetitions.", "s",
            [q(top("max", "clusterbench_run_duration_seconds"), SERIES)])
    b.panel("table", "Latest status per series",
            "The outcome of each series' latest run (ok, shortened, unstable, invalid, failed, "
            "skipped), one row per series.", "none",
            [q(f"{m('clusterbench_run_status')} == 1", instant=True, fmt="table")], w=24,
            transformations=[{"id": "organize", "options": {"excludeByName": {
                "Time": True, "Value": True, "__name__": True, "job": True}}}])
    return b


def hardware():
    b = Board("clusterbench-hardware", "clusterbench — hardware comparison",
              "The same workloads across devices and clusters: throughput, dollars per million "
              "tokens and joules per token side by side, and over time.", ["hardware"])
    for title, desc, unit, agg, fam, sel in [
            ("Decode throughput per device", "Output tokens per second of the latest run.",
             TOKS, "max", "clusterbench_throughput_tokens_per_second", DECODE),
            ("Cost per million output tokens", "USD per million generated tokens (lower is "
             "better).", "currencyUSD", "min", "clusterbench_cost_usd_per_million_tokens",
             'kind="output"'),
            ("Energy per token", "Joules per token (lower is better).", "joule", "min",
             "clusterbench_energy_joules_per_token", ""),
            ("Average power", "Average power of the devices over the measured window.", "watt",
             "max", "clusterbench_average_power_watts", "")]:
        b.panel("bargauge", title, desc + " One bar per series.", unit,
                [q(top(agg, fam, sel), SERIES, instant=True)], **BAR)
    for title, desc, unit, agg, fam, sel in [
            ("Throughput over time", "Decode tokens per second, night after night.", TOKS,
             "max", "clusterbench_throughput_tokens_per_second", DECODE),
            ("$/Mtok over time", "USD per million output tokens, night after night.",
             "currencyUSD", "min", "clusterbench_cost_usd_per_million_tokens", 'kind="output"'),
            ("J/token over time", "Joules per token, night after night.", "joule", "min",
             "clusterbench_energy_joules_per_token", "")]:
        b.panel("timeseries", title, desc + " One line per series (device, workload, how).",
                unit, [q(top(agg, fam, sel), SERIES)], w=8)
    b.panel("table", "Side by side",
            "One row per series: decode tok/s, $/Mtok blended, J/token and MBU of the latest "
            "runs.", "none",
            [q(top("max", "clusterbench_throughput_tokens_per_second", DECODE), instant=True,
               fmt="table"),
             q(top("min", "clusterbench_cost_usd_per_million_tokens", 'kind="blended"'),
               instant=True, fmt="table"),
             q(top("min", "clusterbench_energy_joules_per_token"), instant=True, fmt="table"),
             q(top("max", "clusterbench_mbu_ratio", DECODE), instant=True, fmt="table")],
            w=24, h=9,
            transformations=[{"id": "merge", "options": {}},
                             {"id": "organize", "options": {
                                 "excludeByName": {"Time": True},
                                 "renameByName": {"Value #A": "decode tok/s",
                                                  "Value #B": "$/Mtok blended",
                                                  "Value #C": "J/token",
                                                  "Value #D": "MBU decode"}}}],
            fieldConfig={"defaults": {"unit": "none"}, "overrides": [
                {"matcher": {"id": "byName", "options": n},
                 "properties": [{"id": "unit", "value": u}]}
                for n, u in [("decode tok/s", TOKS), ("$/Mtok blended", "currencyUSD"),
                             ("J/token", "joule"), ("MBU decode", "percentunit")]]})
    return b


def latency():
    b = Board("clusterbench-latency", "clusterbench — latency",
              "Time to first token (TTFT), time per output token (TPOT = inter-token latency) "
              "and end-to-end latency: percentiles, means and tails.", ["latency"])
    pct = "p{{quantile}} " + SERIES
    for kind, title, desc in [
            ("ttft", "TTFT percentiles", "Time to first token, p50/p90/p99."),
            ("tpot", "TPOT percentiles", "Time per output token, p50/p90/p99."),
            ("e2e", "End-to-end latency percentiles", "Prefill plus all decode steps, "
             "p50/p90/p99.")]:
        sel = f'kind="{kind}",quantile=~"0.5|0.9|0.99"'
        b.panel("timeseries", title, desc, "s",
                [q(f"max by ({BY}, quantile) ({m('clusterbench_latency_seconds', sel)})", pct)],
                w=8)
    b.panel("timeseries", "Mean latency",
            "Mean TTFT, TPOT and end-to-end latency (summary _sum / _count).", "s",
            [q(f"{m('clusterbench_latency_seconds_sum')} / {m('clusterbench_latency_seconds_count')}",
               "{{kind}} " + SERIES)])
    b.panel("timeseries", "TPOT tail: p99 / p50",
            "How much slower the slowest decode steps are than the typical one (1 = no tail).",
            "none",
            [q(f"{m('clusterbench_latency_seconds', TPOT_P99)} / ignoring(quantile) "
               f"{m('clusterbench_latency_seconds', TPOT_P50)}", SERIES)])
    b.panel("bargauge", "TPOT p99 per series",
            "Worst-case inter-token latency of the latest runs.", "s",
            [q(top("max", "clusterbench_latency_seconds", TPOT_P99), SERIES, instant=True)],
            **BAR)
    b.panel("table", "Latest percentiles",
            "TTFT, TPOT and end-to-end percentiles of the latest run of each series.", "s",
            [q(m("clusterbench_latency_seconds", 'quantile=~"0.5|0.9|0.99"'), instant=True,
               fmt="table")],
            transformations=[{"id": "organize", "options": {"excludeByName": {
                "Time": True, "__name__": True, "job": True}}}])
    return b


def serving():
    b = Board("clusterbench-serving", "clusterbench — serving",
              "Server and single-stream runs: goodput and SLO attainment, TTFT/TPOT "
              "percentiles, requests/s, and the interactivity frontier (output tokens/s per "
              "device against tokens/s per user).", ["serving"])
    b.panel("timeseries", "Goodput",
            "Requests per second that met every objective (--slo-ttft, --slo-tpot).",
            "reqps", [q(top("max", "clusterbench_goodput_requests_per_second"), SERIES)], w=8)
    b.panel("timeseries", "SLO attainment",
            "Share of requests that met every objective.", "percentunit",
            [q(top("min", "clusterbench_slo_attainment_ratio"), SERIES)], w=8)
    b.panel("timeseries", "Requests per second",
            "Completed requests per second over the measured pass (the achieved rate; the "
            "offered load is the rate or concurrency label).", "reqps",
            [q(top("max", "clusterbench_requests_per_second"), SERIES)], w=8)
    for kind, title in [("ttft", "TTFT p50 / p90 / p99"), ("tpot", "TPOT p50 / p90 / p99")]:
        sel = f'kind="{kind}",quantile=~"0.5|0.9|0.99",scenario=~"server|single-stream"'
        b.panel("timeseries", title,
                f"{kind.upper()} percentiles over the requests of each serving run, from each "
                "request's scheduled arrival.", "s",
                [q(f"max by ({BY}, quantile) ({m('clusterbench_latency_seconds', sel)})",
                   "p{{quantile}} " + SERIES)])
    b.panel("timeseries", "Output tokens per second per device",
            "Generated tokens per second per device of each serving run.", TOKS,
            [q(top("max", "clusterbench_output_tokens_per_second_per_device"), SERIES)])
    b.panel("timeseries", "Interactivity",
            "Tokens per second each user sees (1 / median TPOT).", TOKS,
            [q(top("max", "clusterbench_interactivity_tokens_per_second_per_user"), SERIES)])
    tpot = m("clusterbench_latency_seconds", TPOT_P50)
    per_dev = (f"max by ({BY}) ({m('clusterbench_output_tokens_per_second_per_device')}) or "
               f"max by ({BY}) ({m('clusterbench_decode_tokens_per_second_per_device')}) or "
               f"max by ({BY}) ({m('clusterbench_throughput_tokens_per_second', DECODE)})")
    b.panel("xychart", "Interactivity frontier",
            "Each latest run is a point: x = tokens/s per user (1 / median TPOT), y = output "
            "tokens/s per device; one colour per device. Up and to the right is better; the "
            "HTML report (clusterbench report --format html) draws the Pareto frontier.",
            "none",
            [q(f"1 / max by ({BY}) ({tpot})", instant=True, fmt="table"),
             q(per_dev, instant=True, fmt="table")], w=24, h=10,
            transformations=[{"id": "merge", "options": {}},
                             {"id": "organize", "options": {"renameByName": {
                                 "Value #A": "tokens/s per user",
                                 "Value #B": "output tokens/s per device"}}},
                             {"id": "partitionByValues", "options": {"fields": ["device"]}}],
            options={"seriesMapping": "auto", "dims": {"x": "tokens/s per user"},
                     "legend": {"showLegend": True, "displayMode": "list",
                                "placement": "bottom"},
                     "tooltip": {"mode": "single"}},
            fieldConfig={"defaults": {"unit": "none", "custom": {"show": "points",
                                                                  "pointSize": {"fixed": 8}}},
                         "overrides": [{"matcher": {"id": "byName", "options": n},
                                        "properties": [{"id": "unit", "value": TOKS}]}
                                       for n in ["tokens/s per user",
                                                 "output tokens/s per device"]]})
    return b


def regressions():
    b = Board("clusterbench-regressions", "clusterbench — regressions",
              "Change of each series against the previous night (offset 1d) and against its "
              "7-day median; negative is worse for throughput, positive is worse for $/Mtok, "
              "J/token and latency. clusterbench compare judges the noise; this view shows "
              "the trend at a glance.", ["nightly", "regressions"])
    cases = [
        ("Decode throughput", "max", "clusterbench_throughput_tokens_per_second", DECODE,
         "higher is better"),
        ("$/Mtok output", "min", "clusterbench_cost_usd_per_million_tokens", 'kind="output"',
         "lower is better"),
        ("J/token", "min", "clusterbench_energy_joules_per_token", "", "lower is better"),
        ("TPOT p50", "max", "clusterbench_latency_seconds", TPOT_P50, "lower is better"),
    ]
    for title, agg, fam, sel, better in cases:
        cur = top(agg, fam, sel)
        prev = f"{agg} by ({BY}) ({m(fam, sel)} offset 1d)"
        med = f"{agg} by ({BY}) (quantile_over_time(0.5, {m(fam, sel)}[7d]))"
        b.panel("timeseries", f"{title}: change since the previous night",
                f"({title} now - 24 h ago) / 24 h ago, per series; {better}.", "percentunit",
                [q(f"({cur} - {prev}) / {prev}", SERIES)], w=12, h=7)
        b.panel("timeseries", f"{title}: change against the 7-day median",
                f"{title} / its median over the last 7 days - 1, per series; {better}.",
                "percentunit", [q(f"{cur} / {med} - 1", SERIES)], w=12, h=7)
    cur = top("max", "clusterbench_throughput_tokens_per_second", DECODE)
    prev = (f"max by ({BY}) ({m('clusterbench_throughput_tokens_per_second', DECODE)} "
            "offset 1d)")
    b.panel("table", "Largest throughput drops since the previous night",
            "The 20 series whose decode throughput fell most against 24 h ago (negative: "
            "slower).", "percentunit",
            [q(f"bottomk(20, ({cur} - {prev}) / {prev})", instant=True, fmt="table")], w=24,
            transformations=[{"id": "organize", "options": {"excludeByName": {
                "Time": True}}}])
    return b


def main():
    """Writes the dashboards; with --check, exits 1 when a committed file differs instead."""
    here = os.path.dirname(os.path.abspath(__file__))
    stale = []
    for board, name in [(nightly(), "nightly.json"), (hardware(), "hardware.json"),
                        (latency(), "latency.json"), (serving(), "serving.json"),
                        (regressions(), "regressions.json")]:
        path = os.path.join(here, "dashboards", name)
        text = json.dumps(board.json(), indent=2) + "\n"
        if "--check" in sys.argv:
            with open(path) as f:
                if f.read() != text:
                    stale.append(path)
            continue
        with open(path, "w") as f:
            f.write(text)
        print(path)
    if stale:
        print("out of date (run results/grafana/make_dashboards.py):", " ".join(stale))
        sys.exit(1)


if __name__ == "__main__":
    main()
