#!/usr/bin/env python3
"""Writes tests/fixtures/slow.onnx: a model whose one-row run takes tens of milliseconds, for the
test that shows a slow model never runs on (and never blocks) an HTTP worker.

Input `input` FP32 [-1, 13] (the heart-disease shape), output `score` FP32 [-1, 1]. Each row is
projected to 512 values, repeated 8,192 times and multiplied by a 512 x 512 matrix: about 2,150
million multiply-adds per row. The matrices are made at load time by ConstantOfShape, so the
file stays a few hundred bytes.

    python3 -m venv /tmp/onnx && /tmp/onnx/bin/pip install onnx
    /tmp/onnx/bin/python scripts/make-slow-model.py
"""

import pathlib

import onnx
from onnx import TensorProto, helper

OUT = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "slow.onnx"
WIDTH, REPEATS = 512, 8192


def constant(name, dims, value):
    shape = helper.make_tensor(f"{name}_shape", TensorProto.INT64, [len(dims)], dims)
    fill = helper.make_tensor(f"{name}_value", TensorProto.FLOAT, [1], [value])
    return [helper.make_node("Constant", [], [f"{name}_dims"], value=shape),
            helper.make_node("ConstantOfShape", [f"{name}_dims"], [name], value=fill)]


nodes = []
nodes += constant("w1", [13, WIDTH], 0.01)
nodes += constant("w2", [WIDTH, WIDTH], 0.001)
nodes += constant("w3", [WIDTH, 1], 0.001)
nodes.append(helper.make_node("Constant", [], ["repeats"],
                              value=helper.make_tensor("repeats_value", TensorProto.INT64, [2], [REPEATS, 1])))
nodes.append(helper.make_node("Constant", [], ["rows_back"],
                              value=helper.make_tensor("rows_back_value", TensorProto.INT64, [3], [REPEATS, -1, 1])))
nodes += [
    helper.make_node("MatMul", ["input", "w1"], ["h1"]),               # [N, 512]
    helper.make_node("Tile", ["h1", "repeats"], ["tiled"]),            # [1024 N, 512]
    helper.make_node("MatMul", ["tiled", "w2"], ["h2"]),               # the slow part
    helper.make_node("MatMul", ["h2", "w3"], ["h3"]),                  # [1024 N, 1]
    helper.make_node("Reshape", ["h3", "rows_back"], ["h4"]),          # [1024, N, 1]
    helper.make_node("ReduceMean", ["h4"], ["score"], axes=[0], keepdims=0),  # [N, 1]
]
graph = helper.make_graph(
    nodes, "slow",
    [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 13])],
    [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["batch", 1])],
)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="chaos-inference tests")
model.ir_version = 8
model.model_version = 1
onnx.checker.check_model(model)
OUT.write_bytes(model.SerializeToString())
print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")
