#!/usr/bin/env python3
"""Soak: a steady mixed load against the release binary (profile `none`) for a fixed time.

Four oha streams run at once, 1,000 requests/s in all by default:
  valid /predict                 50 %  -> 200
  valid V2 infer (one row)       30 %  -> 200
  /predict breaking the schema   10 %  -> 422
  malformed JSON                 10 %  -> 400
The server's RSS is sampled every second. The run fails if any stream gets a status other than
its expected one or a connection error, if the server stops answering, or if RSS at the end is
more than --max-growth above RSS after the warm-up. Reports p99 per stream and RSS.

  scripts/soak.sh                    # 10 minutes, by hand
  scripts/soak.sh --duration 20s     # CI
"""

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BINARY = ROOT / "target" / "release" / "chaos-inference"
sys.path.insert(0, str(ROOT / "scripts"))
import serverctl  # noqa: E402 - the shared start-and-wait helper, beside this file

RECORD = serverctl.example_record()
INFER = {"inputs": [{"name": "input", "shape": [1, 13], "datatype": "FP32", "data": serverctl.example_row()}]}
STREAMS = [  # name, path, body, share of the rate, the only status expected
    ("predict", "/predict", json.dumps(RECORD), 0.5, 200),
    ("v2-infer", "/v2/models/heart-disease/infer", json.dumps(INFER), 0.3, 200),
    ("predict-invalid", "/predict", json.dumps({**RECORD, "age": 400}), 0.1, 422),
    ("malformed", "/predict", '{"age": 63,', 0.1, 400),
]


def seconds(text):
    match = re.fullmatch(r"(\d+)(s|m)", text)
    if not match:
        raise argparse.ArgumentTypeError("expected a duration such as 20s or 10m")
    return int(match[1]) * (60 if match[2] == "m" else 1)


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def get(url, timeout=5):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return None


def oha(base, stream, rate, duration):
    name, path, body, _, _ = stream
    command = ["oha", "--no-tui", "--output-format", "json", "-z", f"{duration}s", "-c", "4",
               "-q", str(rate), "--latency-correction", "-m", "POST",
               "-H", "content-type: application/json", "-d", body, base + path]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=seconds, default=600)
    parser.add_argument("--rate", type=int, default=1000, help="requests/s over all streams")
    parser.add_argument("--warm-up", type=seconds, default=5)
    parser.add_argument("--max-growth", type=float, default=0.05, help="allowed RSS growth, 0.05 = 5 %%")
    parser.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args()

    port = serverctl.free_port()
    base = f"http://127.0.0.1:{port}"
    log = tempfile.TemporaryFile()
    env = {**os.environ, "CHAOS_PROFILE": "none", "BIND": f"127.0.0.1:{port}", "GRPC_BIND": "127.0.0.1:0", "LOG_FORMAT": "json",
           "RUST_LOG": "warn"}
    try:
        server, _ = serverctl.start([str(BINARY)], port, env=env, log=log, timeout=60)
    except serverctl.NotReady as e:
        sys.exit(f"soak: {e}")
    try:

        # Warm-up at the same mix, so the baseline RSS includes buffers every route allocates once.
        warm = [oha(base, s, max(1, int(args.rate * s[3])), args.warm_up) for s in STREAMS]
        for p in warm:
            p.communicate()
        rss_start = rss_bytes(server.pid)

        samples, sampling = [], True

        def sample():
            while sampling and server.poll() is None:
                samples.append(rss_bytes(server.pid))
                time.sleep(1)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        started = time.monotonic()
        running = [(s, oha(base, s, max(1, int(args.rate * s[3])), args.duration)) for s in STREAMS]
        results, failures = {}, []
        for stream, process in running:
            out, err = process.communicate(timeout=args.duration + 120)
            if process.returncode != 0:
                failures.append(f"{stream[0]}: oha failed: {err.strip()[:300]}")
                continue
            data = json.loads(out)
            codes = {int(k): v for k, v in (data.get("statusCodeDistribution") or {}).items()}
            errors = dict(data.get("errorDistribution") or {})
            # oha cancels its own requests still in flight when the duration ends: not a failure.
            cut_off = errors.pop("aborted due to deadline", 0)
            p99 = (data.get("latencyPercentiles") or {}).get("p99")
            results[stream[0]] = {
                "expected": stream[4], "statuses": codes, "connection_errors": errors,
                "cut_off_at_end": cut_off,
                "requests_per_s": round(data["summary"]["requestsPerSec"], 1),
                "p99_ms": None if p99 is None else round(p99 * 1000, 3),
            }
            unexpected = {k: v for k, v in codes.items() if k != stream[4]}
            if unexpected:
                failures.append(f"{stream[0]}: statuses other than {stream[4]}: {unexpected}")
            if errors:
                failures.append(f"{stream[0]}: connection errors: {errors}")
            if not codes.get(stream[4]):
                failures.append(f"{stream[0]}: no request answered")
        elapsed = time.monotonic() - started
        sampling = False
        sampler.join()
        alive = server.poll() is None and get(base + "/livez") == 200
        rss_end = rss_bytes(server.pid) if server.poll() is None else 0
        growth = (rss_end - rss_start) / rss_start if rss_start else float("inf")
        report = {
            "duration_s": round(elapsed, 1), "offered_rate": args.rate, "streams": results,
            "rss_start_mib": round(rss_start / 2**20, 1), "rss_end_mib": round(rss_end / 2**20, 1),
            "rss_max_mib": round(max(samples, default=0) / 2**20, 1), "rss_growth": round(growth, 4),
            "alive_after": alive,
        }
        if not alive:
            failures.append("the server stopped answering /livez")
        if growth > args.max_growth:
            failures.append(f"RSS grew {growth:.1%} (start {report['rss_start_mib']} MiB, end "
                            f"{report['rss_end_mib']} MiB), above {args.max_growth:.0%}")
        print(json.dumps(report, indent=2))
        if args.json:
            args.json.write_text(json.dumps(report, indent=2) + "\n")
        total = sum(sum(r["statuses"].values()) for r in results.values())
        print(f"soak: {total} requests in {elapsed:.0f} s; RSS {report['rss_start_mib']} -> "
              f"{report['rss_end_mib']} MiB ({growth:+.2%}); p99 " +
              ", ".join(f"{k} {v['p99_ms']} ms" for k, v in results.items()))
        if failures:
            print("soak: FAILED\n  " + "\n  ".join(failures), file=sys.stderr)
            sys.exit(1)
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()


if __name__ == "__main__":
    main()
