#!/usr/bin/env python3
"""Writes bench/models/fixed-cost.onnx: a model whose run costs a few milliseconds whatever its
row count, the case dynamic batching is for (the benchmark's slow-model workload).

Input `input` FP32 [-1, 13] (the heart-disease shape, so every server gets the same request
bytes), output `score` FP32 [-1, 1]. Per run, the first row is projected to 512 values, repeated
FIXED_ROWS times and multiplied by a 512 x 512 matrix (about FIXED_ROWS x 262,000 multiply-adds,
paid once per run); per row only a 13 x 1 product. The fixed part depends on the input, so ONNX
Runtime cannot fold it away at load; the matrices are made at load time by ConstantOfShape, so
the file stays a few hundred bytes.

    python3 -m venv /tmp/onnx && /tmp/onnx/bin/pip install onnx onnxruntime
    /tmp/onnx/bin/python scripts/make-fixed-cost-model.py [--fixed-rows 512]
"""

import argparse
import pathlib

import onnx
from onnx import TensorProto, helper

OUT = pathlib.Path(__file__).resolve().parent.parent / "bench" / "models" / "fixed-cost.onnx"
WIDTH = 512


def constant(name, dims, value):
    shape = helper.make_tensor(f"{name}_shape", TensorProto.INT64, [len(dims)], dims)
    fill = helper.make_tensor(f"{name}_value", TensorProto.FLOAT, [1], [value])
    return [helper.make_node("Constant", [], [f"{name}_dims"], value=shape),
            helper.make_node("ConstantOfShape", [f"{name}_dims"], [name], value=fill)]


def ints(name, values):
    return helper.make_node("Constant", [], [name], value=helper.make_tensor(f"{name}_value", TensorProto.INT64,
                                                                              [len(values)], values))


def model(fixed_rows):
    nodes = []
    nodes += constant("w1", [13, WIDTH], 0.01)
    nodes += constant("w2", [WIDTH, WIDTH], 0.001)
    nodes += constant("w_row", [13, 1], 0.01)
    nodes += [ints("zero", [0]), ints("one", [1]), ints("repeats", [fixed_rows, 1])]
    nodes += [
        helper.make_node("Slice", ["input", "zero", "one", "zero"], ["first"]),   # [1, 13]
        helper.make_node("MatMul", ["first", "w1"], ["h1"]),                      # [1, 512]
        helper.make_node("Tile", ["h1", "repeats"], ["tiled"]),                   # [FIXED_ROWS, 512]
        helper.make_node("MatMul", ["tiled", "w2"], ["h2"]),                      # [FIXED_ROWS, 512]
        helper.make_node("ReduceMean", ["h2"], ["fixed"], keepdims=0),            # []
        helper.make_node("MatMul", ["input", "w_row"], ["per_row"]),              # [N, 1]
        # The fixed part weighs in at 1e-6, so the score stays the per-row product's.
        helper.make_node("Constant", [], ["tiny"], value=helper.make_tensor("tiny_value", TensorProto.FLOAT, [], [1e-6])),
        helper.make_node("Mul", ["fixed", "tiny"], ["fixed_small"]),
        helper.make_node("Add", ["per_row", "fixed_small"], ["score"]),
    ]
    graph = helper.make_graph(
        nodes, "fixed_cost",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 13])],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["N", 1])])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="make-fixed-cost-model")
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--fixed-rows", type=int, default=512)
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args()
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model(args.fixed_rows), out)
    print(f"wrote {out} ({out.stat().st_size} bytes)")
