"""mosec (a Rust front end, Python workers, dynamic batching) running onnxruntime on model.onnx.

    MODEL_PATH=models/heart-disease/model.onnx python mosec_server.py --port 8006 \
        [--model-name heart-disease] [--max-batch-size 64 --max-wait-ms 1]

mosec has no V2 protocol of its own: the worker reads and writes the V2 REST JSON of
`POST /v2/models/<name>/infer` (the ONNX file's first input, FP32 [rows, ...], and all its
outputs), so every server gets the same request bytes. Requests that
wait together (up to --max-batch-size requests, at most --wait ms; mosec's least is 1 ms) are one
onnxruntime run, split back per request.
"""
import json
import os

import numpy as np
import onnxruntime as ort
from mosec import Server, Worker
from mosec.errors import ValidationError

MODEL = os.environ.get("MODEL_NAME", "heart-disease")
DATATYPES = {"tensor(float)": "FP32", "tensor(int64)": "INT64"}


class Infer(Worker):
    def __init__(self):
        super().__init__()
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(os.environ["MODEL_PATH"], options, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name
        self.outputs = [(o.name, DATATYPES[o.type]) for o in self.session.get_outputs()]

    def deserialize(self, data):
        try:
            body = json.loads(data)
            tensor = body["inputs"][0]
            x = np.asarray(tensor["data"], dtype=np.float32).reshape(tensor["shape"])
        except (ValueError, KeyError, IndexError, TypeError) as e:
            raise ValidationError(f"not a V2 infer request: {e}") from e
        return {"id": body.get("id"), "x": x}

    def forward(self, data):
        requests = data if isinstance(data, list) else [data]
        rows = [r["x"].shape[0] for r in requests]
        values = self.session.run(None, {self.input: np.concatenate([r["x"] for r in requests])})
        out, at = [], 0
        for r, n in zip(requests, rows):
            out.append({"id": r["id"], "outputs": [v[at:at + n] for v in values]})
            at += n
        return out if isinstance(data, list) else out[0]

    def serialize(self, data):
        body = {"model_name": MODEL, "outputs": [
            {"name": name, "datatype": datatype, "shape": list(value.shape), "data": value.reshape(-1).tolist()}
            for (name, datatype), value in zip(self.outputs, data["outputs"])]}
        if data["id"] is not None:
            body["id"] = data["id"]
        return json.dumps(body).encode()


if __name__ == "__main__":
    import argparse
    import sys
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--model-name", default=MODEL)
    parser.add_argument("--max-batch-size", type=int, default=64)
    parser.add_argument("--max-wait-ms", type=int, default=1)
    args, rest = parser.parse_known_args()
    sys.argv = [sys.argv[0], *rest]  # the rest (--port, --address, ...) are mosec's own
    # The workers are spawned processes: they read the name from the environment.
    os.environ["MODEL_NAME"] = MODEL = args.model_name
    server = Server()
    server.append_worker(Infer, num=1, max_batch_size=args.max_batch_size, max_wait_time=args.max_wait_ms,
                         route=f"/v2/models/{args.model_name}/infer")
    server.run()
