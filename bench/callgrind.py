#!/usr/bin/env python3
"""Instructions per request, counted by callgrind: a figure the machine's noise cannot move.

The server runs under `valgrind --tool=callgrind` with one HTTP worker and one inference worker;
after the warm-up the counters are zeroed, oha sends N requests of one kind, and the dump's
total divided by N is the cost of one request, everything in the process included (HTTP parsing,
JSON, the hand-off, ONNX Runtime, the response).

    python3 bench/callgrind.py --binary target/release/chaos-inference --out bench/callgrind.json
    python3 bench/callgrind.py --binary /tmp/before/chaos-inference --out bench/callgrind-before.json
"""

import argparse
import glob
import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "scripts"))
import serverctl  # noqa: E402

ROW = serverctl.example_row()


def infer_body(rows):
    return json.dumps({"inputs": [{"name": "input", "shape": [rows, len(ROW)], "datatype": "FP32",
                                   "data": ROW * rows}]})


CASES = [
    ("v2 infer, 1 row", "POST", "/v2/models/heart-disease/infer", infer_body(1)),
    ("v2 infer, 64 rows", "POST", "/v2/models/heart-disease/infer", infer_body(64)),
    ("/predict, 1 record", "POST", "/predict", json.dumps(serverctl.example_record())),
    ("GET /livez", "GET", "/livez", None),
]


def total_instructions(out_dir):
    """Sum of `summary:` (or `totals:`) lines of every dump callgrind wrote."""
    total = 0
    for path in glob.glob(os.path.join(out_dir, "callgrind.out.*")):
        text = pathlib.Path(path).read_text(errors="replace")
        match = re.search(r"^(?:summary|totals):\s+(\d+)", text, re.M)
        if match:
            total += int(match.group(1))
    return total


def measure(binary, method, path, body, requests, env, keep=None, connections=1):
    port = serverctl.free_port()
    with tempfile.TemporaryDirectory() as out_dir:
        log = open(os.path.join(out_dir, "server.log"), "wb")
        command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out_dir}/callgrind.out.%p",
                   binary, "serve", "--bind", f"127.0.0.1:{port}", "--grpc-bind", ""]
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                env={**os.environ, **env, "HTTP_WORKERS": "1", "INFERENCE_WORKERS": "1",
                                     "CHAOS_PROFILE": "none", "LOG_FORMAT": "json", "RUST_LOG": "warn"})
        try:
            serverctl.wait_ready(port, proc=proc, timeout=180, poll=0.2)
            oha = ["oha", "--no-tui", "-n", str(requests), "-c", str(connections), "-m", method]
            if body is not None:
                body_file = os.path.join(out_dir, "body.json")
                pathlib.Path(body_file).write_text(body)
                oha += ["-H", "content-type: application/json", "-D", body_file]
            url = f"http://127.0.0.1:{port}{path}"
            # Warm the path (allocator, caches), then count from zero.
            subprocess.run(["oha", "--no-tui", "-n", "200"] + oha[4:] + [url], check=True, capture_output=True)
            subprocess.run(["callgrind_control", "-z", str(proc.pid)], check=True, capture_output=True)
            result = subprocess.run(oha + ["--output-format", "json", url], check=True, capture_output=True, text=True)
            statuses = json.loads(result.stdout).get("statusCodeDistribution", {})
            subprocess.run(["callgrind_control", "-d", str(proc.pid)], check=True, capture_output=True)
            time.sleep(1)
            instructions = total_instructions(out_dir)
            if keep:
                pathlib.Path(keep).mkdir(parents=True, exist_ok=True)
                for dump in glob.glob(os.path.join(out_dir, "callgrind.out.*")):
                    slug = re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-")
                    os.replace(dump, os.path.join(keep, f"callgrind.{slug}.{os.path.basename(dump)}"))
        finally:
            proc.terminate()
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
    ok = sum(n for code, n in statuses.items() if code.startswith("2"))
    if ok != requests:
        raise RuntimeError(f"{path}: only {ok} of {requests} answered 2xx: {statuses}")
    return instructions / requests


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", default=str(ROOT / "target" / "release" / "chaos-inference"))
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for the server")
    parser.add_argument("--out")
    parser.add_argument("--keep", help="keep the dumps here, for callgrind_annotate")
    parser.add_argument("--only", help="only the cases whose name contains this")
    # One connection by default: with several, how a request's bytes are split over reads
    # depends on timing, and actix's HTTP/1 decoder clears its header buffer on every attempt
    # (up to 1,000 instructions per request seen from one run to the next, same binary).
    parser.add_argument("--connections", type=int, default=1, help="oha connections (default 1)")
    args = parser.parse_args()
    env = dict(e.split("=", 1) for e in args.env)
    results = {}
    for name, method, path, body in CASES:
        if args.only and args.only not in name:
            continue
        per_request = measure(args.binary, method, path, body, args.requests, env, args.keep, args.connections)
        results[name] = round(per_request)
        print(f"{name:22} {per_request:12,.0f} instructions per request", flush=True)
    if args.out:
        pathlib.Path(args.out).write_text(json.dumps({"binary": args.binary, "env": env, "requests": args.requests, "connections": args.connections,
                                                       "instructions_per_request": results}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
