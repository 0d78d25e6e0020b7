"""Triton Inference Server (PyTriton's tritonserver, Python backend) running onnxruntime on model.onnx.

    MODEL_PATH=models/heart-disease/model.onnx python triton_server.py --http-port 8004 --grpc-port 8005 \
        [--max-batch-size 64 --max-queue-delay-us 100 | --no-batching]

With batching (the default) Triton's dynamic batcher joins waiting requests into one call of
`infer`, up to --max-batch-size rows, waiting at most --max-queue-delay-us for company; with
--no-batching every request is one call. Either way the model is served as --model-name
(default `heart-disease`) on the V2 protocol (REST and gRPC), with the inputs and outputs its
ONNX file declares.
"""
import argparse
import os

import numpy as np
import onnxruntime as ort
from pytriton.decorators import batch
from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
from pytriton.triton import Triton, TritonConfig


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--http-port", type=int, required=True)
    parser.add_argument("--grpc-port", type=int, required=True)
    parser.add_argument("--metrics-port", type=int, default=0)
    parser.add_argument("--model-name", default="heart-disease")
    parser.add_argument("--max-batch-size", type=int, default=64)
    parser.add_argument("--max-queue-delay-us", type=int, default=100)
    parser.add_argument("--no-batching", action="store_true")
    args = parser.parse_args()

    options = ort.SessionOptions()
    # One CPU for the server, as for every other server in the benchmark.
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(os.environ["MODEL_PATH"], options, providers=["CPUExecutionProvider"])

    # Inputs and outputs as the ONNX file declares them (the first dimension is the rows).
    def dims(shape):
        return [d if isinstance(d, int) else -1 for d in shape[1:]]
    input_name = session.get_inputs()[0].name
    width = dims(session.get_inputs()[0].shape)
    declared = [(o.name, np.int64 if o.type == "tensor(int64)" else np.float32, dims(o.shape)) for o in session.get_outputs()]

    def run(x):
        return dict(zip((name for name, _, _ in declared), session.run(None, {input_name: x.astype(np.float32, copy=False)})))

    if args.no_batching:
        config = ModelConfig(batching=False)
        inputs = [Tensor(name=input_name, dtype=np.float32, shape=(-1, *width))]
        outputs = [Tensor(name=name, dtype=dtype, shape=(-1, *rest)) for name, dtype, rest in declared]

        def infer_fn(requests):
            # Unbatched: a list of the requests of this call, each its own tensors; one run each.
            return [run(request[input_name]) for request in requests]
    else:
        config = ModelConfig(batching=True, max_batch_size=args.max_batch_size,
                             batcher=DynamicBatcher(max_queue_delay_microseconds=args.max_queue_delay_us))
        inputs = [Tensor(name=input_name, dtype=np.float32, shape=tuple(width))]
        # Triton's batched tensors have a shape per row: a one-dimensional output is [rows, 1].
        outputs = [Tensor(name=name, dtype=dtype, shape=tuple(rest) or (1,)) for name, dtype, rest in declared]

        @batch
        def infer_fn(**tensors):
            out = run(tensors[input_name])
            return {name: value.reshape(len(value), -1) if value.ndim == 1 else value for name, value in out.items()}

    triton_config = TritonConfig(http_address="127.0.0.1", http_port=args.http_port, grpc_address="127.0.0.1",
                                 grpc_port=args.grpc_port, metrics_port=args.metrics_port or None,
                                 allow_metrics=bool(args.metrics_port), log_verbose=0)
    with Triton(config=triton_config) as triton:
        triton.bind(model_name=args.model_name, infer_func=infer_fn, inputs=inputs, outputs=outputs, config=config,
                    strict=False)
        triton.serve()


if __name__ == "__main__":
    main()
