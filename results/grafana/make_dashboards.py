#!/usr/bin/env python3
"""Writes the Grafana dashboards in results/grafana/dashboards/ from one description.

Edit this file, not the JSON, then run it: `python3 results/grafana/make_dashboards.py`.
Every panel gets a unit, a description, a stable id and the ${datasource} variable; the
integration test (tests/integration/prometheus_test.py) evaluates every expression against a
real Prometheus fed by a real run.
"""
import json
import os

SCHEMA_VERSION = 39  # Grafana 10.4 / 11
DS = {"type": "prometheus", "uid": "${datasource}"}
# Every query filters on the template variables.
F = ('cluster=~"$cluster",model=~"$model",backend=~"$backend",device=~"$device",'
     'dtype=~"$dtype",batch=~"$batch"')
TOKS = "suffix: tok/s"
SERIES = "{{model}} {{backend}} {{dtype}} b{{batch}} on {{device}} ({{how}})"


def variables():
    v = [{
        "name": "datasource", "label": "Prometheus", "type": "datasource",
        "query": "prometheus", "current": {}, "hide": 0, "refresh": 1, "options": [],
        "description": "The Prometheus that scrapes the Pushgateway (or clusterbench serve).",
    }]
    chain = []
    for name, label in [("cluster", "Cluster"), ("model", "Model"), ("backend", "Backend"),
                        ("device", "Device"), ("dtype", "Dtype"), ("batch", "Batch")]:
        sel = ",".join(f'{c}=~"${c}"' for c in chain)
        v.append({
            "name": name, "label": label, "type": "query", "datasource": DS,
            "definition": f"label_values(clusterbench_run_valid{{{sel}}}, {name})",
            "query": {"query": f"label_values(clusterbench_run_valid{{{sel}}}, {name})",
                      "refId": "PrometheusVariableQueryEditor-VariableQuery",
                      "qryType": 1},
            "multi": True, "includeAll": True, "allValue": ".*",
            "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
            "refresh": 2, "sort": 1, "hide": 0, "options": [], "regex": "",
        })
        chain.append(name)
    return v


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
            "refresh": "", "annotations": {"list": []}, "links": [],
            "templating": {"list": variables()}, "panels": self.panels,
        }


def q(expr, legend="", instant=False, fmt="time_series"):
    t = {"expr": expr, "legendFormat": legend, "range": not instant, "instant": instant}
    if fmt != "time_series":
        t["format"] = fmt
    return t


def nightly():
    b = Board("clusterbench-nightly", "clusterbench — nightly trends",
              "How each model and backend did night after night: throughput, latency, "
              "utilisation, energy and cost, and whether the latest run was valid.", ["nightly"])
    b.panel("stat", "Series whose latest run is not ok",
            "Series (model x backend x device x dtype x batch ...) whose latest run ended "
            "invalid, failed or skipped. 0 is good; see the status table below.", "none",
            [q(f"count(clusterbench_run_valid{{{F}}} == 0) or vector(0)", instant=True)],
            w=6, h=4)
    b.panel("stat", "Age of the oldest last success",
            "Time since the least recent successful run among the selected series: a series "
            "that keeps failing grows old here.", "s",
            [q(f"time() - min(clusterbench_last_success_timestamp_seconds{{{F}}})",
               instant=True)], w=6, h=4)
    b.panel("stat", "Series",
            "Selected series with a result in Prometheus.", "none",
            [q(f"count(clusterbench_run_valid{{{F}}})", instant=True)], w=6, h=4)
    b.panel("stat", "Latest run duration",
            "Wall time of the longest latest run: verification, warm-up and repetitions.", "s",
            [q(f"max(clusterbench_run_duration_seconds{{{F}}})", instant=True)], w=6, h=4)
    b.panel("timeseries", "Decode throughput",
            "Output tokens per second of each run's median repetition, per model and backend. "
            "The how label says whether a figure is measured or extrapolated.", TOKS,
            [q(f'clusterbench_throughput_tokens_per_second{{phase="decode",{F}}}', SERIES)])
    b.panel("timeseries", "Prefill throughput",
            "Prompt (input) tokens per second of each run's median repetition.", TOKS,
            [q(f'clusterbench_throughput_tokens_per_second{{phase="prefill",{F}}}', SERIES)])
    b.panel("timeseries", "TTFT and TPOT, median",
            "Median time to first token and time per output token of each run.", "s",
            [q(f'clusterbench_latency_seconds{{kind=~"ttft|tpot",quantile="0.5",{F}}}',
               "{{kind}} " + SERIES)])
    b.panel("timeseries", "MFU and MBU",
            "Model FLOPs utilisation (prefill) and memory bandwidth utilisation (decode) "
            "against this host's measured ceilings.", "percentunit",
            [q(f'clusterbench_mfu_ratio{{phase="prefill",{F}}}', "MFU " + SERIES),
             q(f'clusterbench_mbu_ratio{{phase="decode",{F}}}', "MBU " + SERIES)])
    b.panel("timeseries", "Energy per token",
            "Joules per generated token (how=modelled when a power model stood in for a "
            "meter).", "joule",
            [q(f"clusterbench_energy_joules_per_token{{{F}}}", SERIES)])
    b.panel("timeseries", "Cost per million tokens, blended",
            "USD per million tokens (input and output together) from the cost model.",
            "currencyUSD",
            [q(f'clusterbench_cost_usd_per_million_tokens{{kind="blended",{F}}}', SERIES)])
    b.panel("timeseries", "Verification error",
            "Largest relative logit error against the reference backend, and the dtype's "
            "tolerance: a rising error warns before a run turns invalid.", "sci",
            [q(f"clusterbench_verification_max_rel_error{{{F}}}", "error " + SERIES),
             q(f"max by (dtype) (clusterbench_verification_tolerance{{{F}}})",
               "tolerance {{dtype}}")])
    b.panel("table", "Latest status per series",
            "The status of each series' latest run (ok, invalid, failed, skipped).", "none",
            [q(f"clusterbench_run_status{{{F}}} == 1", instant=True, fmt="table")],
            transformations=[{"id": "organize", "options": {"excludeByName": {
                "Time": True, "Value": True, "__name__": True, "job": True}}}])
    return b


def hardware():
    b = Board("clusterbench-hardware", "clusterbench — hardware comparison",
              "The same workloads across devices and clusters: throughput, dollars per "
              "million tokens and joules per token side by side.", ["hardware"])
    by = "device, cluster, model, dtype, batch"
    leg = "{{device}} / {{cluster}}: {{model}} {{dtype}} b{{batch}}"
    gauge = {"options": {"orientation": "horizontal", "displayMode": "basic",
                         "reduceOptions": {"calcs": ["lastNotNull"], "values": False}}}
    b.panel("bargauge", "Decode throughput per device",
            "Output tokens per second of the latest run, per device and cluster.", TOKS,
            [q(f'max by ({by}) (clusterbench_throughput_tokens_per_second{{phase="decode",{F}}})',
               leg, instant=True)], **gauge)
    b.panel("bargauge", "Prefill throughput per device",
            "Prompt tokens per second of the latest run, per device and cluster.", TOKS,
            [q(f'max by ({by}) (clusterbench_throughput_tokens_per_second{{phase="prefill",{F}}})',
               leg, instant=True)], **gauge)
    b.panel("bargauge", "Cost per million output tokens",
            "USD per million generated tokens on each device (lower is better).", "currencyUSD",
            [q(f'min by ({by}) (clusterbench_cost_usd_per_million_tokens{{kind="output",{F}}})',
               leg, instant=True)], **gauge)
    b.panel("bargauge", "Cost per million tokens, blended",
            "USD per million tokens, input and output together, on each device.",
            "currencyUSD",
            [q(f'min by ({by}) (clusterbench_cost_usd_per_million_tokens{{kind="blended",{F}}})',
               leg, instant=True)], **gauge)
    b.panel("bargauge", "Energy per token",
            "Joules per generated token on each device (lower is better).", "joule",
            [q(f"min by ({by}) (clusterbench_energy_joules_per_token{{{F}}})", leg,
               instant=True)], **gauge)
    b.panel("bargauge", "Average power",
            "Average power of the devices over the measured window.", "watt",
            [q(f"max by ({by}) (clusterbench_average_power_watts{{{F}}})", leg,
               instant=True)], **gauge)
    b.panel("table", "Side by side",
            "One row per device, cluster and workload: decode tok/s, $/Mtok blended, J/token "
            "and MBU of the latest runs.", "none",
            [q(f'max by ({by}) (clusterbench_throughput_tokens_per_second{{phase="decode",{F}}})',
               instant=True, fmt="table"),
             q(f'min by ({by}) (clusterbench_cost_usd_per_million_tokens{{kind="blended",{F}}})',
               instant=True, fmt="table"),
             q(f"min by ({by}) (clusterbench_energy_joules_per_token{{{F}}})",
               instant=True, fmt="table"),
             q(f'max by ({by}) (clusterbench_mbu_ratio{{phase="decode",{F}}})',
               instant=True, fmt="table")],
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
    b.panel("timeseries", "Tokens per joule over time",
            "Energy efficiency per device over the nightly runs.", "suffix: tok/J",
            [q(f"max by ({by}) (clusterbench_tokens_per_joule{{{F}}})", leg)], w=24)
    return b


def latency():
    b = Board("clusterbench-latency", "clusterbench — latency",
              "Time to first token (TTFT), time per output token (TPOT = inter-token latency) "
              "and end-to-end latency: percentiles, means and tails.", ["latency"])
    pct = "p{{quantile}} {{model}} {{dtype}} b{{batch}} on {{device}}"
    for kind, title, desc in [
            ("ttft", "TTFT percentiles", "Time to first token (the prefill step), p50/p90/p99 "
             "over the repetitions of each run."),
            ("tpot", "TPOT percentiles", "Time per output token (every decode step of every "
             "repetition), p50/p90/p99."),
            ("e2e", "End-to-end latency percentiles", "Prefill plus all decode steps, "
             "p50/p90/p99 over the repetitions.")]:
        b.panel("timeseries", title, desc, "s",
                [q(f'clusterbench_latency_seconds{{kind="{kind}",quantile=~"0.5|0.9|0.99",{F}}}',
                   pct)], w=8)
    b.panel("timeseries", "Mean latency",
            "Mean TTFT, TPOT and end-to-end latency (summary _sum / _count).", "s",
            [q(f"clusterbench_latency_seconds_sum{{{F}}} / clusterbench_latency_seconds_count{{{F}}}",
               "{{kind}} " + SERIES)])
    b.panel("timeseries", "TPOT tail: p99 / p50",
            "How much slower the slowest decode steps are than the typical one (1 = no tail).",
            "none",
            [q(f'clusterbench_latency_seconds{{kind="tpot",quantile="0.99",{F}}} / ignoring(quantile) '
               f'clusterbench_latency_seconds{{kind="tpot",quantile="0.5",{F}}}', SERIES)])
    b.panel("bargauge", "TPOT p99 per device",
            "Worst-case inter-token latency of the latest runs, per device and cluster.", "s",
            [q(f'max by (device, cluster, model, dtype, batch) (clusterbench_latency_seconds{{kind="tpot",quantile="0.99",{F}}})',
               "{{device}} / {{cluster}}: {{model}} {{dtype}} b{{batch}}", instant=True)],
            options={"orientation": "horizontal", "displayMode": "basic",
                     "reduceOptions": {"calcs": ["lastNotNull"], "values": False}})
    b.panel("table", "Latest percentiles",
            "TTFT, TPOT and end-to-end percentiles of the latest run of each series.", "s",
            [q(f'clusterbench_latency_seconds{{quantile=~"0.5|0.9|0.99",{F}}}', instant=True,
               fmt="table")], w=12,
            transformations=[{"id": "organize", "options": {"excludeByName": {
                "Time": True, "__name__": True, "job": True}}}])
    return b


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    for board, name in [(nightly(), "nightly.json"), (hardware(), "hardware.json"),
                        (latency(), "latency.json")]:
        path = os.path.join(here, "dashboards", name)
        with open(path, "w") as f:
            json.dump(board.json(), f, indent=2)
            f.write("\n")
        print(path)


if __name__ == "__main__":
    main()
