"""What a result file implies in Prometheus (every family, label and value), checked against
an exposition, a Pushgateway or a Prometheus; and the README's metric table against what
Prometheus holds."""
import os
import re

from prom_common import check, close, iso_to_unix

STATUS_LABELS = ("ok", "shortened", "unstable", "invalid", "failed", "skipped")
SOURCE_DIR = "."


def readme_metrics():
    """Metric names listed in the README's "Prometheus metrics" table."""
    with open(os.path.join(SOURCE_DIR, "README.md")) as f:
        text = f.read()
    section = text.split("### Prometheus metrics", 1)
    if not check(len(section) == 2, "README has a '### Prometheus metrics' section"):
        return []
    names = []
    for line in section[1].splitlines():
        if line.startswith("##"):
            break
        m = re.match(r"^\| `(clusterbench_[a-z0-9_]+)`", line)
        if m:
            names.append(m.group(1))
    return names


def expected_samples(doc):
    """[(metric name, labels that must match, value)] a run's result file implies."""
    met = doc["metrics"]
    run = doc["run"]
    exp = []

    def metric(name, family, labels, scale=1.0):
        if name in met:
            exp.append((family, dict(labels, how=met[name]["how"]), met[name]["value"] * scale))

    for phase in ("prefill", "decode"):
        metric(f"{phase}_tokens_per_second", "clusterbench_throughput_tokens_per_second",
               {"phase": phase})
        metric(f"mfu_{phase}_ratio", "clusterbench_mfu_ratio", {"phase": phase})
        metric(f"mbu_{phase}_ratio", "clusterbench_mbu_ratio", {"phase": phase})
    metric("prefill_flops_per_second", "clusterbench_achieved_flops_per_second",
           {"phase": "prefill"})
    metric("decode_bytes_per_second", "clusterbench_achieved_memory_bytes_per_second",
           {"phase": "decode"})
    metric("harness_overhead_ratio", "clusterbench_harness_overhead_ratio", {})
    metric("energy_joules", "clusterbench_energy_joules", {})
    metric("energy_joules_per_token", "clusterbench_energy_joules_per_token", {})
    metric("average_power_watts", "clusterbench_average_power_watts", {})
    metric("tokens_per_kwh", "clusterbench_tokens_per_joule", {}, 1 / 3.6e6)
    for kind, name in [("input", "cost_usd_per_million_input_tokens"),
                       ("output", "cost_usd_per_million_output_tokens"),
                       ("blended", "cost_usd_per_million_tokens")]:
        metric(name, "clusterbench_cost_usd_per_million_tokens", {"kind": kind})
    for kind, name in [("ttft", "ttft_seconds"), ("tpot", "tpot_seconds"),
                       ("e2e", "e2e_latency_seconds"), ("itl", "itl_seconds")]:
        if name not in met:
            continue
        d = met[name]["distribution"]
        lab = {"kind": kind, "how": met[name]["how"]}
        for q, key in [("0", "min"), ("0.5", "p50"), ("0.9", "p90"), ("0.99", "p99"),
                       ("1", "max")]:
            exp.append(("clusterbench_latency_seconds", dict(lab, quantile=q), d[key]))
        exp.append(("clusterbench_latency_seconds_count", lab, float(d["count"])))
        exp.append(("clusterbench_latency_seconds_sum", lab, d["mean"] * d["count"]))
    validity = doc.get("validity", {}).get("label", "valid")
    label = run["status"] if run["status"] != "ok" else ("ok" if validity == "valid" else validity)
    ok = label == "ok"
    end, start = iso_to_unix(run["end_time"]), iso_to_unix(run["start_time"])
    exp.append(("clusterbench_run_valid", {}, 1.0 if ok else 0.0))
    for s in STATUS_LABELS:
        exp.append(("clusterbench_run_status", {"status": s}, 1.0 if label == s else 0.0))
    exp.append(("clusterbench_last_run_timestamp_seconds", {}, end))
    exp.append(("clusterbench_run_duration_seconds", {"how": "measured"}, end - start))
    if ok:
        exp.append(("clusterbench_last_success_timestamp_seconds", {}, end))
    v = doc["verification"]
    if v["status"] != "not_run":
        exp.append(("clusterbench_verification_max_rel_error", {"how": "measured"},
                    v["max_rel_error"]))
        exp.append(("clusterbench_verification_tolerance", {"how": "measured"}, v["tolerance"]))
    info = {"version": run["tool_version"], "git_commit": run["git_commit"],
            "device_kind": doc["device"]["kind"], "Hostname": run["host"]}
    if doc["device"]["uuid"]:
        info["UUID"] = doc["device"]["uuid"]
    exp.append(("clusterbench_run_info", info, 1.0))
    return exp


def series_labels(doc):
    w = doc["workload"]
    labels = {"model": doc["model"]["name"], "backend": w["backend"],
              "device": doc["device"]["name"], "dtype": w["dtype"], "batch": str(w["batch"]),
              "prompt_len": str(w["prompt_len"]), "gen_len": str(w["gen_len"]),
              "scenario": w["scenario"],
              "cluster": doc["run"].get("cluster_name") or doc["device"]["host"] or
              doc["run"]["host"]}
    return labels


def find_sample(samples, name, labels):
    for n, l, v in samples:
        if n == name and all(l.get(k) == val for k, val in labels.items()):
            return v
    return None


def check_samples(samples, docs, where):
    """Every sample a result file implies is in `samples` with the file's value."""
    families = set()
    for doc in docs:
        base = series_labels(doc)
        for name, labels, value in expected_samples(doc):
            families.add(re.sub(r"_(sum|count)$", "", name))
            got = find_sample(samples, name, dict(base, **labels))
            if check(got is not None, f"{where}: {name}{dict(base, **labels)} present"):
                check(close(got, value), f"{where}: {name}{labels} = {got}, result file says "
                                         f"{value}")
    run_ids = {d["run"]["id"] for d in docs}
    for n, l, v in samples:
        if n.startswith("clusterbench_"):
            check(not (set(l.values()) & run_ids), f"{where}: no run id in the labels of {n}")
            check("run_id" not in l and "id" not in l, f"{where}: no run id label on {n}")
            if n != "clusterbench_run_info":
                check("Hostname" not in l and "UUID" not in l,
                      f"{where}: Hostname/UUID only on clusterbench_run_info, not on {n}")
    return families


# ---------------------------------------------------------------------------------------------


def check_readme(scraped, families):
    """Every metric the README lists is in Prometheus (when a run produced it), and every
    family Prometheus has is listed."""
    listed = readme_metrics()
    check(len(listed) >= 30, f"README lists the metrics ({len(listed)})")
    present = {re.sub(r"_(sum|count)$", "", n) for n, _, _ in scraped}
    for name in listed:
        if name.startswith("clusterbench_serve_"):
            continue
        if name in families:
            check(name in present, f"README metric {name} is in Prometheus")
        elif name not in present:
            print(f"note: README metric {name}: no result of this test has a source for it")
    for name in present:
        check(name in listed, f"metric {name} is listed in the README")
