#!/usr/bin/env python3
"""chaos-inference against the servers people use instead (Triton, mosec, FastAPI, MLServer, KServe):
same model, same load, one run.

    bench/run.sh            # full run (about 15 minutes), writes bench/RESULTS.md, results.json, results.png
    bench/run.sh --smoke    # ours only, 2 s per measurement (CI)

Every server is pinned to CPU 0 and the load generator (oha) to CPU 1. Measured per server:
throughput at saturation (64 connections) for a one-row and a 64-row V2 infer request (the same
bytes for every server) and for /predict where the server has one; p50/p99/p99.9 at fixed offered
rates of 500 and 1,000 requests/s (with oha's latency correction, so queueing is not hidden); time
from process start to the first 200 on its readiness route; peak resident memory of its process
tree; and every non-2xx answer or connection error. Two ceilings in the same run: our own server
answering /livez (HTTP only: no body, no JSON, no model) and ONNX Runtime's in-process time for one
row (examples/ort_one_row.rs).

A second workload, the slow model (bench/models/fixed-cost.onnx: a few ms per run whatever its
rows, where dynamic batching matters most): one-row requests at saturation over REST and gRPC for
ours (batching by default, and off), Triton with and without its dynamic
batcher, and mosec.

Over gRPC, for every server that speaks the V2 gRPC protocol (ours, Triton, KServe, MLServer): the same
measurements with bench/grpc_load.rs (a tonic client on CPU 1 that reports its own CPU share):
V2 ModelInfer with raw FP32 input as tritonclient sends it, 64 calls in flight over 8 HTTP/2
connections at saturation, 16 per connection over 4 connections at fixed rates.
"""

import argparse
import datetime
import json
import os
import pathlib
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
MODEL = ROOT / "models" / "heart-disease" / "model.onnx"
PIPELINE = ROOT / "models" / "heart-disease" / "pipeline.joblib"
# Made by scripts/make-fixed-cost-model.py: a few ms per run whatever its rows.
FIXED_COST = HERE / "models" / "fixed-cost.onnx"
# Triton's own example value for max_queue_delay_microseconds.
TRITON_DELAY_US = 100
SERVER_CPU, LOAD_CPU = "0", "1"
sys.path.insert(0, str(ROOT / "scripts"))
import serverctl  # noqa: E402 - the shared start-and-wait helper

ROW = serverctl.example_row()
RECORD = serverctl.example_record()


def infer_body(rows):
    return json.dumps({"id": "bench", "inputs": [
        {"name": "input", "shape": [rows, 13], "datatype": "FP32", "data": ROW * rows}]})


def tree_rss_bytes(pid):
    """Resident memory of a process and all its descendants."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            status = pathlib.Path(f"/proc/{p}/status").read_text()
            total += int(next(l.split()[1] for l in status.splitlines() if l.startswith("VmRSS:"))) * 1024
            for task in pathlib.Path(f"/proc/{p}/task").iterdir():
                children = (task / "children").read_text().split()
                todo.extend(int(c) for c in children)
        except (OSError, StopIteration):
            pass
    return total


class Server:
    """A server process pinned to the server CPU, with its peak memory sampled in the background."""

    def __init__(self, name, command, ready_path, env=None, cwd=None):
        self.name, self.command, self.ready_path = name, command, ready_path
        self.template = list(command)
        self.env = {**os.environ, **(env or {})}
        self.cwd = cwd
        self.peak_rss = 0
        self.proc = None

    def start(self, port):
        self.port = port
        # A file, not a pipe: a server that logs a lot must never block on a full pipe.
        self.log = tempfile.TemporaryFile()
        try:
            self.proc, self.start_to_ready = serverctl.start(self.command, port, env=self.env, log=self.log,
                                                             path=self.ready_path, cpu=SERVER_CPU, cwd=self.cwd)
        except serverctl.NotReady as e:
            raise RuntimeError(f"{self.name}: {e}") from e
        self._sampling = True
        threading.Thread(target=self._sample, daemon=True).start()
        return self

    def _sample(self):
        while self._sampling and self.proc.poll() is None:
            self.peak_rss = max(self.peak_rss, tree_rss_bytes(self.proc.pid))
            time.sleep(0.1)

    def stop(self):
        self._sampling = False
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def oha(url, seconds, body=None, connections=64, rate=None):
    command = ["taskset", "-c", LOAD_CPU, "oha", "--no-tui", "--output-format", "json", "-z", f"{seconds}s",
               "-c", str(connections)]
    if rate:
        command += ["-q", str(rate), "--latency-correction"]
    if body is not None:
        command += ["-m", "POST", "-H", "content-type: application/json", "-d", body]
    out = subprocess.run(command + [url], capture_output=True, text=True, check=True).stdout
    data = json.loads(out)
    summary, percentiles = data["summary"], data.get("latencyPercentiles", {})
    codes = {int(k): v for k, v in (data.get("statusCodeDistribution") or {}).items()}
    # oha cancels its own requests still in flight when the duration ends: not server errors.
    errors = sum(v for k, v in (data.get("errorDistribution") or {}).items() if k != "aborted due to deadline")
    ms = lambda v: None if v is None else round(v * 1000, 3)  # noqa: E731
    return {
        "requests_per_s": round(summary["requestsPerSec"], 1),
        # Successful answers only: a server that fails fast must not look fast.
        "ok_per_s": round(sum(v for k, v in codes.items() if 200 <= k < 300) / seconds, 1),
        "p50_ms": ms(percentiles.get("p50")),
        "p99_ms": ms(percentiles.get("p99")),
        "p99_9_ms": ms(percentiles.get("p99.9")),
        "ok": sum(v for k, v in codes.items() if 200 <= k < 300),
        "errors": sum(v for k, v in codes.items() if not 200 <= k < 300) + errors,
    }


# Versions only a running server can tell (filled in as they start).
VERSIONS = {}

GRPC_LOAD = ROOT / "target" / "release" / "examples" / "grpc_load"


def grpc_load(port, seconds, rows=1, rate=None, model="heart-disease"):
    """bench/grpc_load.rs on the load CPU: 64 calls in flight over 8 connections, or a fixed rate."""
    command = ["taskset", "-c", LOAD_CPU, str(GRPC_LOAD), "--addr", f"127.0.0.1:{port}", "--seconds", str(seconds),
               "--rows", str(rows), "--model", model]
    command += ["--rate", str(rate), "--concurrency", "16", "--connections", "4"] if rate else \
        ["--concurrency", "64", "--connections", "8"]
    run = subprocess.run(command, capture_output=True, text=True)
    if run.returncode != 0:
        raise RuntimeError(f"grpc_load: {run.stderr.strip()}")
    return json.loads(run.stdout)


def servers(ours_only):
    ports = {}
    ours = Server("chaos-inference", [str(ROOT / "target" / "release" / "chaos-inference"), "serve", "--bind", "127.0.0.1:{port}",
                                      "--grpc-bind", "127.0.0.1:{grpc}"], "/readyz",
                  env={"LOG_FORMAT": "json", "RUST_LOG": "warn", "CHAOS_PROFILE": "none", "INFERENCE_QUEUE": "4096"})
    result = [(ours, "/v2/models/heart-disease/infer", "/predict")]
    if ours_only:
        return result, ports
    # The same server with inline runs off: every request handed to an inference thread, what
    # the default (`auto`, inline for this model's small requests) saves.
    inline = Server("chaos-inference, INFERENCE_INLINE=off", list(ours.command), "/readyz",
                    env={**ours.env, "INFERENCE_INLINE": "off"})
    result.append((inline, "/v2/models/heart-disease/infer", "/predict"))
    unbatched = Server("chaos-inference, BATCH_MAX_ROWS=1", list(ours.command), "/readyz",
                       env={**ours.env, "BATCH_MAX_ROWS": "1"})
    result.append((unbatched, "/v2/models/heart-disease/infer", "/predict"))
    # An earlier build as the baseline of the same run (BENCH_BASELINE=path/to/chaos-inference,
    # BENCH_BASELINE_NAME=what it is), so a change is measured as a ratio, not across days.
    baseline = os.environ.get("BENCH_BASELINE")
    if baseline:
        name = os.environ.get("BENCH_BASELINE_NAME", "earlier build")
        before = Server(f"chaos-inference before ({name})", [baseline, *ours.command[1:]], "/readyz", env=dict(ours.env))
        result.append((before, "/v2/models/heart-disease/infer", "/predict"))
    peers = HERE / "peers"
    fastapi = Server("FastAPI + onnxruntime", [str(HERE / ".venv-fastapi" / "bin" / "uvicorn"), "fastapi_server:app",
                     "--host", "127.0.0.1", "--port", "{port}", "--workers", "1", "--log-level", "warning", "--no-access-log"],
                     "/v2/health/ready", env={"MODEL_PATH": str(MODEL)}, cwd=peers)
    result.append((fastapi, "/v2/models/heart-disease/infer", "/predict"))
    mlserver = Server("MLServer (scikit-learn)", [str(HERE / ".venv-mlserver" / "bin" / "mlserver"), "start", "{dir}"],
                      "/v2/health/ready", cwd=peers)
    result.append((mlserver, "/v2/models/heart-disease/infer", None))
    result += triton_and_mosec(MODEL, "heart-disease")
    if (HERE / ".venv-kserve" / "bin" / "python").exists():
        kserve = Server("KServe (onnxruntime)", [str(HERE / ".venv-kserve" / "bin" / "python"), "kserve_server.py",
                        "--http_port", "{port}", "--grpc_port", "{grpc}"], "/v2/health/ready", env={"MODEL_PATH": str(MODEL)}, cwd=peers)
        result.append((kserve, "/v2/models/heart-disease/infer", None))
    return result, ports


def triton_and_mosec(model, name):
    """Triton with its dynamic batcher and without, and mosec with its batching, on `model`
    served as `name`: each runs onnxruntime in its Python workers on the same ONNX file."""
    peers, infer = HERE / "peers", f"/v2/models/{name}/infer"
    env = {"MODEL_PATH": str(model)}
    triton = [str(HERE / ".venv-triton" / "bin" / "python"), "triton_server.py", "--http-port", "{port}",
              "--grpc-port", "{grpc}", "--model-name", name]
    ready = f"/v2/models/{name}/ready"
    out = [(Server(f"Triton, dynamic batcher (max 64, {TRITON_DELAY_US} us)", [*triton, "--max-batch-size", "64",
                   "--max-queue-delay-us", str(TRITON_DELAY_US)], ready, env=env, cwd=peers), infer, None),
           (Server("Triton, no batching", [*triton, "--no-batching"], ready, env=env, cwd=peers), infer, None)]
    # mosec's health route answers once its front end listens; its worker loads the model after.
    mosec = Server("mosec, batching (max 64, 1 ms)", [str(HERE / ".venv-mosec" / "bin" / "python"), "mosec_server.py",
                   "--model-name", name, "--max-batch-size", "64", "--max-wait-ms", "1", "--address", "127.0.0.1",
                   "--port", "{port}", "--log-level", "error"], "/", env=env, cwd=peers)
    return out + [(mosec, infer, None)]


def fixed_cost_servers():
    """The slow-model workload: a model whose run costs a few ms whatever its rows
    (bench/models/fixed-cost.onnx), served by us (default settings, and batching off) and the
    batching peers."""
    env = {"LOG_FORMAT": "json", "RUST_LOG": "warn", "CHAOS_PROFILE": "none", "INFERENCE_QUEUE": "4096",
           "MODEL_PATH": str(FIXED_COST), "MODEL_NAME": "fixed-cost"}
    command = [str(ROOT / "target" / "release" / "chaos-inference"), "serve", "--bind", "127.0.0.1:{port}",
               "--grpc-bind", "127.0.0.1:{grpc}"]
    infer = "/v2/models/fixed-cost/infer"
    return [(Server("chaos-inference", list(command), "/readyz", env=env), infer, None),
            (Server("chaos-inference, BATCH_MAX_ROWS=1", list(command), "/readyz", env={**env, "BATCH_MAX_ROWS": "1"}),
             infer, None),
            *triton_and_mosec(FIXED_COST, "fixed-cost")]


def mlserver_dir(port, grpc_port, work):
    model_dir = work / "heart-disease"
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / "model-settings.json").write_text(
        (HERE / "peers" / "mlserver" / "model-settings.json.in").read_text().replace("@PIPELINE@", str(PIPELINE)))
    (work / "settings.json").write_text(json.dumps({
        # In process: MLServer 1.7.1's separate inference worker dies at start here ("There is no
        # current event loop in thread 'MainThread'") and the model never loads.
        "http_port": port, "grpc_port": grpc_port, "metrics_port": serverctl.free_port(), "parallel_workers": 0,
        # Its Prometheus files go to the run's scratch folder, not beside the peer's sources.
        "metrics_dir": str(work / "metrics"),
        "debug": False}))
    return work


def launch(server, work):
    """Starts the server on free ports: (HTTP port, gRPC port or None when it has none)."""
    port, grpc_port = serverctl.free_port(), serverctl.free_port()
    server.command = [c.replace("{port}", str(port)).replace("{grpc}", str(grpc_port))
                      .replace("{dir}", str(mlserver_dir(port, grpc_port, work / "mlserver"))) for c in server.command]
    # Every server here but FastAPI and mosec serves the V2 gRPC protocol on grpc_port.
    speaks_grpc = any("{grpc}" in c or "{dir}" in c for c in server.template)
    server.start(port)
    if server.name.startswith("Triton"):
        # The server's own account of its version (V2 server metadata).
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2", timeout=5) as answer:
                VERSIONS["tritonserver"] = json.loads(answer.read())["version"]
        except (OSError, ValueError, KeyError) as e:
            server.stop()
            raise RuntimeError(f"{server.name}: no version from GET /v2: {e}") from e
    return port, grpc_port if speaks_grpc else None


def run_fixed_cost(server, infer_path, seconds, work):
    """The slow-model workload: one-row requests at saturation, 64 in flight, over REST and gRPC."""
    port, grpc_port = launch(server, work)
    result = {"name": server.name, "start_to_ready_ms": round(server.start_to_ready * 1000, 1)}
    try:
        result["saturation_1_row"] = oha(f"http://127.0.0.1:{port}{infer_path}", seconds, infer_body(1))
        if grpc_port:
            result["grpc_saturation_1_row"] = grpc_load(grpc_port, seconds, model="fixed-cost")
    finally:
        server.stop()
    result["peak_rss_mib"] = round(server.peak_rss / 2**20, 1)
    return result


def run_server(server, infer_path, predict_path, seconds, work, smoke):
    port, grpc_port = launch(server, work)
    speaks_grpc = grpc_port is not None
    base = f"http://127.0.0.1:{port}"
    result = {"name": server.name, "start_to_ready_ms": round(server.start_to_ready * 1000, 1)}
    try:
        result["saturation_1_row"] = oha(base + infer_path, seconds, infer_body(1))
        result["saturation_64_rows"] = oha(base + infer_path, seconds, infer_body(64))
        if predict_path:
            result["saturation_predict"] = oha(base + predict_path, seconds, json.dumps(RECORD))
        for rate in (500, 1000):
            result[f"rate_{rate}_1_row"] = oha(base + infer_path, seconds, infer_body(1), connections=16, rate=rate)
        if server.name == "chaos-inference":
            result["ceiling_http"] = oha(base + "/livez", seconds)
            # One connection, one request at a time: latency without queueing.
            result["one_connection_1_row"] = oha(base + infer_path, seconds, infer_body(1), connections=1)
            result["one_connection_predict"] = oha(base + predict_path, seconds, json.dumps(RECORD), connections=1)
            result["one_connection_http"] = oha(base + "/livez", seconds, connections=1)
        if speaks_grpc:
            result["grpc_saturation_1_row"] = grpc_load(grpc_port, seconds)
            if not smoke:
                result["grpc_saturation_64_rows"] = grpc_load(grpc_port, seconds, rows=64)
                for rate in (500, 1000):
                    result[f"grpc_rate_{rate}_1_row"] = grpc_load(grpc_port, seconds, rate=rate)
    finally:
        server.stop()
    result["peak_rss_mib"] = round(server.peak_rss / 2**20, 1)
    return result


def ort_ceiling():
    out = subprocess.run(["taskset", "-c", SERVER_CPU, str(ROOT / "target" / "release" / "examples" / "ort_one_row"), "20000"],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def versions():
    v = {"chaos-inference": subprocess.run([str(ROOT / "target" / "release" / "chaos-inference"), "--version"],
                                           capture_output=True, text=True).stdout.strip()}
    v["oha"] = subprocess.run(["oha", "--version"], capture_output=True, text=True).stdout.strip()
    for venv, packages in (("fastapi", ["fastapi", "uvicorn", "onnxruntime"]), ("mlserver", ["mlserver", "mlserver-sklearn", "scikit-learn"]),
                           ("kserve", ["kserve", "onnxruntime"]), ("triton", ["nvidia-pytriton", "onnxruntime"]),
                           ("mosec", ["mosec", "onnxruntime"])):
        pip = HERE / f".venv-{venv}" / "bin" / "pip"
        if not pip.exists():
            continue
        frozen = subprocess.run([str(pip), "freeze"], capture_output=True, text=True).stdout.lower().splitlines()
        for p in packages:
            v[f"{venv}: {p}"] = next((l.split("==")[1] for l in frozen if l.startswith(p + "==")), "?")
    return v


def machine():
    cpu = next((l.split(":", 1)[1].strip() for l in pathlib.Path("/proc/cpuinfo").read_text().splitlines()
                if l.startswith("model name")), platform.processor())
    mem = next(l.split()[1] for l in pathlib.Path("/proc/meminfo").read_text().splitlines() if l.startswith("MemTotal"))
    return {"cpus": os.cpu_count(), "cpu": cpu, "memory_gib": round(int(mem) / 2**20, 1), "kernel": platform.release(),
            "python": platform.python_version()}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--smoke", action="store_true", help="ours only, 2 s per measurement")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--out", default=str(HERE))
    args = parser.parse_args()
    seconds = 2 if args.smoke else args.seconds
    out = pathlib.Path(args.out)
    work = pathlib.Path(os.environ.get("TMPDIR", "/tmp")) / f"chaos-bench-{os.getpid()}"
    work.mkdir(parents=True, exist_ok=True)
    baseline_env = [f"{k}={os.environ[k]}" for k in ("BENCH_BASELINE", "BENCH_BASELINE_NAME") if os.environ.get(k)]
    results = {"command": " ".join([*baseline_env, "bench/run.sh", *sys.argv[1:]]), "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
               "machine": machine(), "versions": versions(), "seconds_per_measurement": seconds,
               "ceiling_inference_one_row": ort_ceiling(), "servers": []}
    chosen, _ = servers(args.smoke)
    for server, infer_path, predict_path in chosen:
        print(f"bench: {server.name}", flush=True)
        results["servers"].append(run_server(server, infer_path, predict_path, seconds, work, args.smoke))
    if not args.smoke:
        results["fixed_cost"] = []
        for server, infer_path, _ in fixed_cost_servers():
            print(f"bench: {server.name} (fixed-cost model)", flush=True)
            results["fixed_cost"].append(run_fixed_cost(server, infer_path, seconds, work))
    shutil.rmtree(work, ignore_errors=True)
    results["versions"].update(VERSIONS)
    ours = results["servers"][0]
    errors = sum(m["errors"] for s in results["servers"] + results.get("fixed_cost", []) for m in s.values()
                 if isinstance(m, dict))
    if args.smoke:
        print(json.dumps(ours, indent=1))
        if errors or ours["saturation_1_row"]["ok"] == 0 or ours["grpc_saturation_1_row"]["ok"] == 0:
            print(f"bench smoke: {errors} errors", file=sys.stderr)
            return 1
        print("bench smoke: ok")
        return 0
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {out / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
