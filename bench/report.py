#!/usr/bin/env python3
"""Turns bench/results.json into bench/RESULTS.md (tables, ratios, targets) and bench/results.png."""
import json
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent


def fmt(v, unit=""):
    return "-" if v is None else f"{v:,}{unit}"


def main():
    r = json.loads((HERE / "results.json").read_text())
    servers = r["servers"]
    ours = servers[0]
    by = {s["name"]: s for s in servers}
    sat = lambda s, k="saturation_1_row": s.get(k, {}).get("ok_per_s")  # noqa: E731
    lines = [
        "# Benchmark results",
        "",
        f"Command: `{r['command']}` ({r['seconds_per_measurement']} s per measurement), {r['date']}.",
        f"Machine: {r['machine']['cpus']} CPUs ({r['machine']['cpu']}), {r['machine']['memory_gib']} GiB, "
        f"Linux {r['machine']['kernel']}, Python {r['machine']['python']}. Every server pinned to CPU 0, "
        "the load generator (oha; bench/grpc_load.rs for gRPC) to CPU 1; each server runs one worker process/thread set on its one CPU.",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in r["versions"].items()) + ".",
        "",
        "Request bodies are identical for every server: a V2 infer request with one row, and one with 64 rows",
        "(`FP32`, shape `[n, 13]`). MLServer's scikit-learn runtime returns only the `predict` output for it;",
        "the others return label and probabilities (Triton's batched label as `[n, 1]`, its per-row shape rule).",
        "Triton is PyTriton's `tritonserver` (C++ HTTP and gRPC front ends) with its Python backend running",
        "onnxruntime on the same ONNX file (`bench/peers/triton_server.py`), once with its dynamic batcher",
        "(at most 64 rows, 100 us queue delay) and once without; mosec (a Rust front end, Python workers) runs",
        "the same, batching at most 64 requests with its least wait, 1 ms (`bench/peers/mosec_server.py`).",
        "",
        "![throughput and p99 per server](results.png)",
        "",
        "## Throughput at saturation (64 connections)",
        "",
        "| server | 1-row infer req/s | 64-row infer req/s | /predict req/s | ours is x faster (1 row) | errors |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for s in servers:
        ratio = sat(ours) / sat(s) if sat(s) else None
        errors = sum(m["errors"] for m in s.values() if isinstance(m, dict))
        lines.append(f"| {s['name']} | {fmt(sat(s))} | {fmt(sat(s, 'saturation_64_rows'))} | {fmt(sat(s, 'saturation_predict'))} | "
                     f"{'-' if ratio is None else f'{ratio:.1f}x'} | {errors} |")
    lines += ["", "## Latency at fixed offered rates (1-row infer, 16 connections, latency-corrected)", "",
              "| server | rate | achieved req/s | p50 ms | p99 ms | p99.9 ms | errors |", "|---|---:|---:|---:|---:|---:|---:|"]
    for s in servers:
        for rate in (500, 1000):
            m = s.get(f"rate_{rate}_1_row")
            if m:
                lines.append(f"| {s['name']} | {rate} | {fmt(m['requests_per_s'])} | {fmt(m['p50_ms'])} | {fmt(m['p99_ms'])} | {fmt(m['p99_9_ms'])} | {m['errors']} |")
    grpc = [x for x in servers if x.get("grpc_saturation_1_row")]
    if grpc:
        lines += ["", "## gRPC: V2 ModelInfer (bench/grpc_load.rs, raw FP32 input as tritonclient sends it)", "",
                  "Saturation: 64 calls in flight over 8 HTTP/2 connections; fixed rates: 16 per connection over 4",
                  "connections, a call that waits for a free slot timed from when it was due. The load generator's",
                  "own CPU share (of its one CPU) shows it was not the bottleneck.", "",
                  "| server | 1-row req/s | 64-row req/s | ours is x faster (1 row) | p50 ms at 1,000/s | p99 ms at 1,000/s | "
                  "p99.9 ms at 1,000/s | load generator CPU at saturation | errors |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for x in grpc:
            g = lambda k: x.get(k) or {}  # noqa: E731
            ratio = sat(ours, "grpc_saturation_1_row") / sat(x, "grpc_saturation_1_row") if sat(x, "grpc_saturation_1_row") else None
            errors = sum(g(k).get("errors", 0) for k in x if k.startswith("grpc_"))
            lines.append(f"| {x['name']} | {fmt(sat(x, 'grpc_saturation_1_row'))} | {fmt(sat(x, 'grpc_saturation_64_rows'))} | "
                         f"{'-' if ratio is None else f'{ratio:.1f}x'} | {fmt(g('grpc_rate_1000_1_row').get('p50_ms'))} | "
                         f"{fmt(g('grpc_rate_1000_1_row').get('p99_ms'))} | {fmt(g('grpc_rate_1000_1_row').get('p99_9_ms'))} | "
                         f"{g('grpc_saturation_1_row').get('client_cpu_share', 0):.0%} | {errors} |")
    fixed = r.get("fixed_cost") or []
    if fixed:
        lines += ["", "## The slow-model workload: a run costs milliseconds whatever its rows", "",
                  "`bench/models/fixed-cost.onnx` (`scripts/make-fixed-cost-model.py`): the same input and request bytes,",
                  "a run of a few milliseconds of which nearly all is paid once per run, the case dynamic batching is",
                  "for. One-row requests, 64 in flight (oha over REST; bench/grpc_load.rs over gRPC, 8 connections).", "",
                  "| server | REST req/s | REST p50 ms | REST p99 ms | gRPC req/s | gRPC p99 ms | errors |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for x in fixed:
            rest, g = x.get("saturation_1_row") or {}, x.get("grpc_saturation_1_row") or {}
            errors = sum(m["errors"] for m in x.values() if isinstance(m, dict))
            lines.append(f"| {x['name']} | {fmt(rest.get('ok_per_s'))} | {fmt(rest.get('p50_ms'))} | {fmt(rest.get('p99_ms'))} | "
                         f"{fmt(g.get('ok_per_s'))} | {fmt(g.get('p99_ms'))} | {errors} |")
    lines += ["", "## One connection (ours)", "",
              "| request | req/s | p50 ms | p99 ms | p99.9 ms | errors |", "|---|---:|---:|---:|---:|---:|"]
    for key, label in (("one_connection_1_row", "1-row V2 infer"), ("one_connection_predict", "/predict, one record"),
                       ("one_connection_http", "GET /livez (HTTP only)")):
        m = ours.get(key)
        if m:
            lines.append(f"| {label} | {fmt(m['requests_per_s'])} | {fmt(m['p50_ms'])} | {fmt(m['p99_ms'])} | {fmt(m['p99_9_ms'])} | {m['errors']} |")
    lines += ["", "## Start-up and memory", "", "| server | start to first 200 on readiness | peak RSS (process tree) |", "|---|---:|---:|"]
    for s in servers:
        lines.append(f"| {s['name']} | {s['start_to_ready_ms']} ms | {s['peak_rss_mib']} MiB |")
    http = ours["ceiling_http"]["ok_per_s"]
    ort = r["ceiling_inference_one_row"]
    lines += ["", "## Ceilings (same run)", "",
              f"- HTTP only: our server answering `GET /livez` (no body, no JSON, no model): {http:,} req/s at 64 connections. "
              "One-row infer reaches " + ", ".join(f"{sat(s) / http:.0%} of it ({s['name']})" for s in servers
                                                   if s["name"].startswith("chaos-inference")) + "; `/predict` "
              f"{sat(ours, 'saturation_predict') / http:.0%}.",
              f"- Inference only: ONNX Runtime in-process, one row: p50 {ort['p50_us']} us, p99 {ort['p99_us']} us "
              f"(mean {ort['mean_us']} us over {ort['runs']:,} runs): at most {1e6 / ort['p50_us']:,.0f} runs/s on one CPU."]
    targets = []
    fa, ml = by.get("FastAPI + onnxruntime"), by.get("MLServer (scikit-learn)")
    if fa:
        targets.append(("throughput >= 20x FastAPI + onnxruntime", sat(ours) / sat(fa), 20))
    if ml:
        targets.append(("throughput >= 10x MLServer", sat(ours) / sat(ml), 10))
    targets.append((">= 50% of the static-200 (HTTP-only) ceiling", sat(ours) / http, 0.5))
    peers = [x for x in grpc if not x["name"].startswith("chaos-inference")]
    if peers:
        for peer in peers:
            targets.append((f"gRPC 1-row throughput >= 10x {peer['name']} gRPC",
                            sat(ours, "grpc_saturation_1_row") / sat(peer, "grpc_saturation_1_row"), 10))
        targets.append(("gRPC 1-row throughput >= 80% of our REST 1-row throughput",
                        sat(ours, "grpc_saturation_1_row") / sat(ours), 0.8))
    p99 = ours["rate_1000_1_row"]["p99_ms"]
    targets.append(("1-row infer >= 75% of the `/livez` ceiling, default settings", sat(ours) / http, 0.75))
    tritons = [x for x in servers if x["name"].startswith("Triton")]
    if tritons:
        # Against the faster of Triton's two settings, at each protocol.
        best = lambda key: max(tritons, key=lambda x: sat(x, key) or 0)  # noqa: E731
        for key, label in (("saturation_1_row", "REST"), ("grpc_saturation_1_row", "gRPC")):
            peer = best(key)
            if sat(peer, key):
                targets.append((f"{label} 1-row throughput >= 10x Triton ({peer['name']})", sat(ours, key) / sat(peer, key), 10))
    lines += ["", "## Targets", "", "| target | measured | met |", "|---|---:|:---:|"]
    for name, value, goal in targets:
        shown = f"{value:.1f}x" if goal >= 1 else f"{value:.0%}"
        lines.append(f"| {name} | {shown} | {'yes' if value >= goal else 'no'} |")
    for peer in tritons:
        for key, label in (("rate_1000_1_row", "REST"), ("grpc_rate_1000_1_row", "gRPC")):
            mine, theirs = (ours.get(key) or {}).get("p99_ms"), (peer.get(key) or {}).get("p99_ms")
            if mine is not None and theirs is not None:
                lines.append(f"| {label} p99 at 1,000/s below {peer['name']} ({theirs} ms) | {mine} ms | {'yes' if mine < theirs else 'no'} |")
    batched_triton = next((x for x in fixed if x["name"].startswith("Triton, dynamic")), None)
    if batched_triton:
        t = batched_triton["saturation_1_row"]
        for x in (x for x in fixed if x["name"].startswith("chaos-inference")):
            m = x["saturation_1_row"]
            ok = m["ok_per_s"] >= t["ok_per_s"] and m["p99_ms"] <= t["p99_ms"]
            lines.append(f"| slow model, 64 connections: {x['name']} >= Triton with its batcher ({fmt(t['ok_per_s'])} req/s, "
                         f"p99 {t['p99_ms']} ms) at <= p99 | {fmt(m['ok_per_s'])} req/s ({m['ok_per_s'] / t['ok_per_s']:.2f}x), "
                         f"p99 {m['p99_ms']} ms | {'yes' if ok else 'no'} |")
    lines.append(f"| p99 < 1 ms at 1,000 req/s (1-row infer) | {p99} ms | {'yes' if p99 < 1 else 'no'} |")
    if ours.get("grpc_rate_1000_1_row"):
        gp99 = ours["grpc_rate_1000_1_row"]["p99_ms"]
        lines.append(f"| gRPC p99 < 1 ms at 1,000 calls/s (1-row ModelInfer) | {gp99} ms | {'yes' if gp99 < 1 else 'no'} |")
    lines.append(f"| start to ready < 100 ms (profile none) | {ours['start_to_ready_ms']} ms | {'yes' if ours['start_to_ready_ms'] < 100 else 'no'} |")
    lines.append(f"| peak RSS < 50 MiB | {ours['peak_rss_mib']} MiB | {'yes' if ours['peak_rss_mib'] < 50 else 'no'} |")
    before_path = HERE / "results-before.json"
    same_run = next((x for x in servers if x["name"].startswith("chaos-inference before")), None)
    if same_run or before_path.exists():
        # The targets of typed decoding and inline-by-default, against the build before them:
        # in this run when it was benchmarked alongside (BENCH_BASELINE), else the earlier run.
        before = r if same_run else json.loads(before_path.read_text())
        old = same_run or before["servers"][0]
        goal = lambda ok: "yes" if ok else "no"  # noqa: E731
        share = sat(ours) / http
        where = (f"`{old['name']}`, in this same run" if same_run else
                 f"the run of {before['date'][:10]}, `bench/results-before.json`, same machine and harness")
        old_ceiling = (old.get("ceiling_http") or ours["ceiling_http"])["ok_per_s"]
        lines += ["", f"Against the baseline build ({where}):", "",
                  "| target | before | now | met |", "|---|---:|---:|:---:|",
                  f"| 1-row infer >= 75% of the `/livez` ceiling | {sat(old) / old_ceiling:.0%} | {share:.0%} | {goal(share >= 0.75)} |"]
        if fa:
            old_fa = fa if same_run else next((x for x in before["servers"] if x["name"] == fa["name"]), None)
            was = f"{sat(old) / sat(old_fa):.1f}x" if old_fa else "-"
            lines.append(f"| >= 25x FastAPI + onnxruntime | {was} | {sat(ours) / sat(fa):.1f}x | {goal(sat(ours) / sat(fa) >= 25)} |")
        rows64 = sat(ours, "saturation_64_rows") / sat(old, "saturation_64_rows")
        lines += [f"| 64-row infer >= 1.5x before | {fmt(sat(old, 'saturation_64_rows'))} req/s | {fmt(sat(ours, 'saturation_64_rows'))} req/s ({rows64:.2f}x) | {goal(rows64 >= 1.5)} |",
                  f"| p99 <= 0.25 ms at 1,000 req/s | {old['rate_1000_1_row']['p99_ms']} ms | {p99} ms | {goal(p99 <= 0.25)} |",
                  f"| start to ready no worse | {old['start_to_ready_ms']} ms | {ours['start_to_ready_ms']} ms | {goal(ours['start_to_ready_ms'] <= old['start_to_ready_ms'] * 1.1)} |",
                  f"| peak RSS no worse | {old['peak_rss_mib']} MiB | {ours['peak_rss_mib']} MiB | {goal(ours['peak_rss_mib'] <= old['peak_rss_mib'] * 1.05)} |",
                  "", "(Start and RSS count as no worse within this machine's run-to-run noise: 10% and 5%.)"]
    lines += ["", "## Where a request's time goes", "",
              "Instruction counts (callgrind: repeatable on a shared machine) of the release server with one HTTP and",
              "one inference worker, 3,000 requests of each kind from `oha -n 3000 -c 4` after 200 to warm up, the",
              "process's whole count divided per request (`bench/callgrind.py`):", ""]
    counts = {name: HERE / f"callgrind{suffix}.json" for name, suffix in
              (("before", "-before"), ("now", ""), ("now, INFERENCE_INLINE=off", "-off"),
               ("batched: 64 connections, BATCH_MAX_ROWS=512", "-batched"))}
    found = {name: json.loads(path.read_text()) for name, path in counts.items() if path.exists()}
    if found:
        kinds = list(next(iter(found.values()))["instructions_per_request"])
        lines += ["| build | " + " | ".join(kinds) + " |", "|---|" + "---:|" * len(kinds)]
        for name, data in found.items():
            per = data["instructions_per_request"]
            label = f"{name} ({data['build']})" if data.get("build") else name
            lines.append(f"| {label} | " + " | ".join(fmt(per.get(k)) for k in kinds) + " |")
    lines += ["", "Earlier steps on the same path: route matching with regex-lite 233,700 instructions per one-row",
              "request; the full regex engine 120,800; route labels of metrics remembered per path 115,000.", ""]
    lines += [line for line in (HERE / "ANALYSIS.md").read_text().splitlines()] if (HERE / "ANALYSIS.md").exists() else []
    (HERE / "RESULTS.md").write_text("\n".join(lines) + "\n")
    plot(servers)
    print("wrote bench/RESULTS.md and bench/results.png")


def plot(servers):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [s["name"] for s in servers]
    rps = [s["saturation_1_row"]["ok_per_s"] for s in servers]
    p99 = [s["rate_1000_1_row"]["p99_ms"] or 0 for s in servers]
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.5))
    colors = ["#d9480f"] + ["#868e96"] * (len(names) - 1)
    a.barh(names, rps, color=colors)
    a.set_xlabel("requests/s at saturation, 1-row V2 infer (higher is better)")
    for y, v in enumerate(rps):
        a.text(v, y, f" {v:,.0f}", va="center")
    a.invert_yaxis()
    b.barh(names, p99, color=colors)
    b.set_xscale("log")
    b.set_xlabel("p99 latency at 1,000 req/s offered, ms, log scale (lower is better)")
    for y, v in enumerate(p99):
        b.text(v, y, f" {v:,.2f} ms", va="center")
    b.invert_yaxis()
    b.set_yticklabels([])
    fig.suptitle("chaos-inference vs Triton, mosec and Python model servers, same model, same requests, one CPU each")
    fig.tight_layout()
    fig.savefig(HERE / "results.png", dpi=110)


if __name__ == "__main__":
    sys.exit(main())
