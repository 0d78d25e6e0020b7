#!/usr/bin/env python3
"""The standard Python gRPC clients, unmodified, against the release binary.

tritonclient.grpc: liveness, readiness, server and model metadata, ModelInfer on every fixture row
compared with onnxruntime run here on the same model file (to 1e-5), output selection, the four
V2 datatypes through a second model, and the error path (INVALID_ARGUMENT naming the field,
NOT_FOUND for an unknown model).

grpcio-health-checking: Check for both services, then Watch on the inference service through a
`v2` start at a small time scale: NOT_SERVING while the model loads, SERVING once it has, and the
stream broken by the crash that follows.

    scripts/check-grpc-clients.sh          # installs the clients, builds, runs this
"""

import json
import os
import pathlib
import socket
import subprocess
import sys
import tempfile
import time

import grpc
import numpy as np
import onnxruntime
import tritonclient.grpc as triton
from google.protobuf import descriptor_pool, message_factory
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
from tritonclient.utils import InferenceServerException

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import serverctl  # noqa: E402

ROOT = serverctl.ROOT
BINARY = ROOT / "target" / "release" / "chaos-inference"
MODEL = serverctl.MODEL_DIR / "model.onnx"
TYPED = ROOT / "tests" / "fixtures" / "typed.onnx"
INFERENCE = "inference.GRPCInferenceService"
CHECKS = []


def check(what, ok, detail=None):
    ok = bool(ok)
    CHECKS.append((what, ok))
    print(f"{'ok  ' if ok else 'FAIL'} {what}{'' if ok or detail is None else f': {detail}'}", flush=True)


def start(env, wait=True):
    """The binary on free ports; returns (process, HTTP port, gRPC port)."""
    http, grpc_port = serverctl.free_port(), serverctl.free_port()
    env = {"BIND": f"127.0.0.1:{http}", "GRPC_BIND": f"127.0.0.1:{grpc_port}", "RUST_LOG": "warn",
           "CHAOS_PROFILE": "none", **env}
    log = tempfile.TemporaryFile()
    if wait:
        proc, _ = serverctl.start([str(BINARY), "serve"], http, env=env, log=log, timeout=60)
    else:
        proc = subprocess.Popen([str(BINARY), "serve"], env={**os.environ, **env}, stdout=log, stderr=log)
    return proc, http, grpc_port


def accepts(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


def code_of(call):
    try:
        call()
    except InferenceServerException as e:
        return e.status(), e.message()
    return None, None


def tritonclient_checks():
    proc, _, port = start({})
    try:
        client = triton.InferenceServerClient(url=f"127.0.0.1:{port}")
        check("is_server_live", client.is_server_live())
        check("is_server_ready", client.is_server_ready())
        check("is_model_ready", client.is_model_ready("heart-disease"))
        meta = client.get_server_metadata(as_json=True)
        check("server metadata names the server", meta["name"] == "chaos-inference", meta)
        version = subprocess.run([str(BINARY), "--version"], capture_output=True, text=True).stdout.split()[-1]
        check("server metadata: the binary's version", meta.get("version") == version, (meta, version))
        model = client.get_model_metadata("heart-disease", as_json=True)
        inputs = {i["name"]: i for i in model["inputs"]}
        check("model metadata: input FP32 [-1, 13]",
              inputs.get("input", {}).get("datatype") == "FP32"
              and [int(d) for d in inputs["input"]["shape"]] == [-1, 13], model)
        outputs = sorted(o["name"] for o in model["outputs"])
        check("model metadata: outputs label and probabilities", outputs == ["label", "probabilities"], outputs)

        fixture = json.loads((serverctl.MODEL_DIR / "fixture.json").read_text())
        rows = np.array([[r["input"][f] for f in fixture["features"]] for r in fixture["rows"]], dtype=np.float32)
        session = onnxruntime.InferenceSession(str(MODEL), providers=["CPUExecutionProvider"])
        want_label, want_probabilities = session.run(["label", "probabilities"], {"input": rows})

        request = triton.InferInput("input", list(rows.shape), "FP32")
        request.set_data_from_numpy(rows)
        result = client.infer("heart-disease", [request], request_id="clients-1")
        got = result.as_numpy("probabilities")
        check(f"infer on {len(rows)} fixture rows: probabilities within 1e-5 of onnxruntime",
              got is not None and got.shape == want_probabilities.shape
              and np.abs(got - want_probabilities).max() <= 1e-5,
              None if got is None else np.abs(got - want_probabilities).max())
        check("infer: labels equal onnxruntime's", np.array_equal(result.as_numpy("label"), want_label))
        check("infer: fixture probabilities within 1e-5",
              np.abs(got - np.array([r["probabilities"] for r in fixture["rows"]])).max() <= 1e-5)
        check("infer: id echoed", result.get_response().id == "clients-1", result.get_response().id)

        one = client.infer("heart-disease", [request], outputs=[triton.InferRequestedOutput("label")])
        names = [o.name for o in one.get_response().outputs]
        check("output selection: only label", names == ["label"], names)
        check("output selection: label values", np.array_equal(one.as_numpy("label"), want_label))

        for row in (0, len(rows) - 1):
            single = triton.InferInput("input", [1, 13], "FP32")
            single.set_data_from_numpy(rows[row:row + 1])
            p = client.infer("heart-disease", [single]).as_numpy("probabilities")
            check(f"infer row {row} alone", np.abs(p - want_probabilities[row:row + 1]).max() <= 1e-5)

        bad = triton.InferInput("input", [1, 12], "FP32")
        bad.set_data_from_numpy(rows[:1, :12])
        status, message = code_of(lambda: client.infer("heart-disease", [bad]))
        check("wrong shape: INVALID_ARGUMENT naming inputs[0].shape",
              status == "StatusCode.INVALID_ARGUMENT" and "inputs[0].shape" in message, (status, message))
        wrong = triton.InferInput("input", [1, 13], "FP64")
        wrong.set_data_from_numpy(rows[:1].astype(np.float64))
        status, message = code_of(lambda: client.infer("heart-disease", [wrong]))
        check("wrong datatype: INVALID_ARGUMENT naming inputs[0].datatype",
              status == "StatusCode.INVALID_ARGUMENT" and "inputs[0].datatype" in message, (status, message))
        status, message = code_of(lambda: client.infer("heart-disease", [request],
                                                        outputs=[triton.InferRequestedOutput("nope")]))
        check("unknown output: INVALID_ARGUMENT naming outputs[0].name",
              status == "StatusCode.INVALID_ARGUMENT" and "outputs[0].name" in message, (status, message))
        status, _ = code_of(lambda: client.infer("other", [request]))
        check("unknown model: NOT_FOUND", status == "StatusCode.NOT_FOUND", status)
        status, _ = code_of(lambda: client.get_model_metadata("heart-disease", model_version="7"))
        check("unknown version: NOT_FOUND", status == "StatusCode.NOT_FOUND", status)
        check("still ready after the errors", client.is_server_ready() and proc.poll() is None)
        client.close()
    finally:
        proc.terminate()
        proc.wait(timeout=15)
    check("exit 0 on SIGTERM", proc.returncode == 0, proc.returncode)


def typed_checks():
    proc, _, port = start({"MODEL_PATH": str(TYPED), "MODEL_NAME": "typed"})
    try:
        client = triton.InferenceServerClient(url=f"127.0.0.1:{port}")
        values = {
            "x_f32": np.array([[1.5, -2.0]], dtype=np.float32),
            "x_f64": np.array([[0.25, 1e300]], dtype=np.float64),
            "x_i32": np.array([[1, -2], [3, 2147483647]], dtype=np.int32),
            "x_i64": np.array([[9007199254740993, -5]], dtype=np.int64),
        }
        inputs = []
        for name, value in values.items():
            tensor = triton.InferInput(name, list(value.shape), triton.np_to_triton_dtype(value.dtype))
            tensor.set_data_from_numpy(value)
            inputs.append(tensor)
        result = client.infer("typed", inputs)
        session = onnxruntime.InferenceSession(str(TYPED), providers=["CPUExecutionProvider"])
        names = [o.name for o in session.get_outputs()]
        for name, want in zip(names, session.run(names, values)):
            got = result.as_numpy(name)
            check(f"typed model: {name} ({want.dtype}) equals onnxruntime's",
                  got is not None and got.dtype == want.dtype and np.array_equal(got, want), got)
        client.close()
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def health_checks():
    proc, _, port = start({})
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            serving = health_pb2.HealthCheckResponse.SERVING
            check("Check '' (liveness): SERVING",
                  stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=5).status == serving)
            check(f"Check {INFERENCE} (readiness): SERVING",
                  stub.Check(health_pb2.HealthCheckRequest(service=INFERENCE), timeout=5).status == serving)
            try:
                stub.Check(health_pb2.HealthCheckRequest(service="nope"), timeout=5)
                check("Check unknown service: NOT_FOUND", False, "answered")
            except grpc.RpcError as e:
                check("Check unknown service: NOT_FOUND", e.code() == grpc.StatusCode.NOT_FOUND, e.code())
    finally:
        proc.terminate()
        proc.wait(timeout=15)

    # v2 at 1/50: loads 0.4-0.6 s, then exits 1.2-2.4 s after ready. The port opens before the
    # load starts; the watch begins as soon as it accepts (gRPC's own reconnect back-off of 1 s
    # would miss the load).
    proc, _, port = start({"CHAOS_PROFILE": "v2", "CHAOS_TIME_SCALE": "0.02"}, wait=False)
    seen, ended = [], None
    started = time.monotonic()
    while not accepts(port):
        if proc.poll() is not None or time.monotonic() - started > 30:
            sys.exit(f"the v2 server never opened its gRPC port (exit {proc.poll()})")
        time.sleep(0.005)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            stream = stub.Watch(health_pb2.HealthCheckRequest(service=INFERENCE), timeout=30, wait_for_ready=True)
            try:
                for response in stream:
                    seen.append((health_pb2.HealthCheckResponse.ServingStatus.Name(response.status),
                                 round(time.monotonic() - started, 2)))
            except grpc.RpcError as e:
                ended = e.code()
    finally:
        proc.wait(timeout=30)
    statuses = [s for s, _ in seen]
    check("Watch through v2: NOT_SERVING then SERVING", statuses == ["NOT_SERVING", "SERVING"], seen)
    check("Watch ends when the process crashes (UNAVAILABLE)", ended == grpc.StatusCode.UNAVAILABLE, ended)
    check("the process exited 1 (the v2 crash)", proc.returncode == 1, proc.returncode)
    print(f"     watch: {seen}, then {ended}; exit {proc.returncode}")


def reflection_checks():
    """What a generic tool (grpcurl, grpcui, Postman) does: list the services by reflection, fetch
    their descriptors, build the messages from them and call a method knowing nothing else."""
    proc, _, port = start({})
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            database = ProtoReflectionDescriptorDatabase(channel)
            services = set(database.get_services())
            check("reflection lists the inference, health and reflection services",
                  {INFERENCE, "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"} <= services,
                  services)
            pool = descriptor_pool.DescriptorPool(database)
            service = pool.FindServiceByName(INFERENCE)
            methods = {m.name for m in service.methods}
            check("reflection describes all six RPCs",
                  {"ServerLive", "ServerReady", "ModelReady", "ServerMetadata", "ModelMetadata", "ModelInfer"}
                  <= methods, methods)
            method = service.FindMethodByName("ModelMetadata")
            request_class = message_factory.GetMessageClass(method.input_type)
            response_class = message_factory.GetMessageClass(method.output_type)
            call = channel.unary_unary(f"/{INFERENCE}/ModelMetadata",
                                       request_serializer=request_class.SerializeToString,
                                       response_deserializer=response_class.FromString)
            answer = call(request_class(name="heart-disease"), timeout=5)
            check("a call built from reflection alone answers", answer.platform == "onnxruntime_onnx", answer)
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def main():
    if not BINARY.exists():
        sys.exit(f"{BINARY} missing: cargo build --release")
    tritonclient_checks()
    typed_checks()
    health_checks()
    reflection_checks()
    failed = [what for what, ok in CHECKS if not ok]
    print(f"grpc clients: {len(CHECKS) - len(failed)} of {len(CHECKS)} checks passed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
