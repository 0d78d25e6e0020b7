#!/usr/bin/env python3
"""Train and export the built-in heart-disease classifier.

Writes, next to this file:
  model.onnx       the scikit-learn pipeline as ONNX (outputs `label` and `probabilities`, no ZipMap),
                   with the feature schema in its metadata under `chaos_inference.schema`
  schema.json      the same schema as a sidecar, for people and for tools that do not read ONNX
  fixture.json     input rows with onnxruntime's outputs; the server's tests compare against it
  pipeline.joblib  the fitted pipeline, for Python servers that load scikit-learn directly

The data is synthetic (see DATA_CARD.md): the real UCI files cannot be downloaded here.
Everything is deterministic: the same versions (requirements.txt) give the same files.

    python3 -m venv .venv && .venv/bin/pip install -r models/heart-disease/requirements.txt
    .venv/bin/python models/heart-disease/train.py
"""

import json
import pathlib

import joblib
import numpy as np
import onnx
import onnxruntime as ort
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

HERE = pathlib.Path(__file__).resolve().parent
SEED = 20240917
ROWS = 3000
INPUT_NAME = "input"

# The Cleveland schema, with the original UCI codings (cp 1-4, slope 1-3, thal 3/6/7).
# Ranges are the accepted input domain: a little wider than the observed data so that
# plausible patients are never refused, narrow enough to catch unit mistakes (mg/dL vs mmol/L).
FEATURES = [
    {"name": "age", "type": "integer", "min": 18, "max": 100, "unit": "years",
     "description": "age in years"},
    {"name": "sex", "type": "categorical", "categories": {"0": "female", "1": "male"},
     "description": "sex"},
    {"name": "cp", "type": "categorical",
     "categories": {"1": "typical angina", "2": "atypical angina", "3": "non-anginal pain", "4": "asymptomatic"},
     "description": "chest pain type"},
    {"name": "trestbps", "type": "integer", "min": 80, "max": 220, "unit": "mm Hg",
     "description": "resting blood pressure on admission"},
    {"name": "chol", "type": "integer", "min": 100, "max": 600, "unit": "mg/dl",
     "description": "serum cholesterol"},
    {"name": "fbs", "type": "categorical", "categories": {"0": "false", "1": "true"},
     "description": "fasting blood sugar > 120 mg/dl"},
    {"name": "restecg", "type": "categorical",
     "categories": {"0": "normal", "1": "ST-T wave abnormality", "2": "left ventricular hypertrophy"},
     "description": "resting electrocardiographic results"},
    {"name": "thalach", "type": "integer", "min": 60, "max": 220, "unit": "bpm",
     "description": "maximum heart rate achieved"},
    {"name": "exang", "type": "categorical", "categories": {"0": "no", "1": "yes"},
     "description": "exercise induced angina"},
    {"name": "oldpeak", "type": "number", "min": 0.0, "max": 7.0, "unit": "mm",
     "description": "ST depression induced by exercise relative to rest"},
    {"name": "slope", "type": "categorical",
     "categories": {"1": "upsloping", "2": "flat", "3": "downsloping"},
     "description": "slope of the peak exercise ST segment"},
    {"name": "ca", "type": "integer", "min": 0, "max": 3,
     "description": "number of major vessels colored by fluoroscopy"},
    {"name": "thal", "type": "categorical",
     "categories": {"3": "normal", "6": "fixed defect", "7": "reversible defect"},
     "description": "thallium stress test result"},
]

SCHEMA = {
    "name": "heart-disease",
    "version": "1",
    "description": "Binary classifier: presence of heart disease from 13 clinical features "
                   "(UCI Heart Disease, Cleveland schema). Trained on synthetic data; not for clinical use.",
    "input": {"tensor": INPUT_NAME, "datatype": "FP32"},
    "features": FEATURES,
    "outputs": {
        "label": {"tensor": "label", "description": "predicted class"},
        "probabilities": {"tensor": "probabilities", "description": "probability of each class, in class order"},
    },
    "classes": [
        {"label": 0, "name": "no disease"},
        {"label": 1, "name": "disease"},
    ],
}


def pick(rng, n, codes, p):
    return rng.choice(np.array(codes, dtype=np.float64), size=n, p=p)


def synthesize(rng, n):
    """Rows with the Cleveland schema; each feature drawn given a latent disease status.

    Marginals follow the published Cleveland summary statistics roughly (prevalence 46%,
    age mean 54, more asymptomatic chest pain, lower max heart rate and more ST depression in
    disease). Correlations beyond the shared latent status are not modelled.
    """
    sick = rng.random(n) < 0.46
    s = sick.astype(np.float64)
    cols = {}
    cols["age"] = np.clip(np.round(rng.normal(52 + 4 * s, 9, n)), 29, 77)
    cols["sex"] = (rng.random(n) < 0.56 + 0.26 * s).astype(np.float64)
    cols["cp"] = np.where(sick, pick(rng, n, [1, 2, 3, 4], [0.05, 0.07, 0.14, 0.74]),
                          pick(rng, n, [1, 2, 3, 4], [0.10, 0.25, 0.41, 0.24]))
    cols["trestbps"] = np.clip(np.round(rng.normal(129 + 5 * s, 17, n)), 94, 200)
    cols["chol"] = np.clip(np.round(rng.normal(242 + 9 * s, 50, n)), 126, 564)
    cols["fbs"] = (rng.random(n) < 0.14 + 0.02 * s).astype(np.float64)
    cols["restecg"] = np.where(sick, pick(rng, n, [0, 1, 2], [0.40, 0.02, 0.58]),
                               pick(rng, n, [0, 1, 2], [0.58, 0.01, 0.41]))
    cols["thalach"] = np.clip(np.round(rng.normal(158 - 19 * s, 20, n)), 71, 202)
    cols["exang"] = (rng.random(n) < 0.14 + 0.41 * s).astype(np.float64)
    cols["oldpeak"] = np.clip(np.round(rng.gamma(1.2 + 1.3 * s, 0.55 + 0.35 * s, n), 1), 0.0, 6.2)
    cols["slope"] = np.where(sick, pick(rng, n, [1, 2, 3], [0.25, 0.65, 0.10]),
                             pick(rng, n, [1, 2, 3], [0.65, 0.30, 0.05]))
    cols["ca"] = np.where(sick, pick(rng, n, [0, 1, 2, 3], [0.33, 0.32, 0.22, 0.13]),
                          pick(rng, n, [0, 1, 2, 3], [0.80, 0.13, 0.05, 0.02]))
    cols["thal"] = np.where(sick, pick(rng, n, [3, 6, 7], [0.27, 0.09, 0.64]),
                            pick(rng, n, [3, 6, 7], [0.79, 0.04, 0.17]))
    x = np.column_stack([cols[f["name"]] for f in FEATURES]).astype(np.float32)
    return x, sick.astype(np.int64)


def write_typed_test_model(path):
    """A schema-less model with one input of each V2 datatype, for the generic V2 route tests.

    y_f32 = x_f32 * 2, y_f64 = x_f64 + 1, y_i32 = x_i32 * 3, y_i64 = -x_i64; all [-1, 2].
    """
    from onnx import TensorProto, helper

    types = {"f32": TensorProto.FLOAT, "f64": TensorProto.DOUBLE, "i32": TensorProto.INT32, "i64": TensorProto.INT64}
    consts = {
        "f32": helper.make_tensor("c_f32", TensorProto.FLOAT, [], [2.0]),
        "f64": helper.make_tensor("c_f64", TensorProto.DOUBLE, [], [1.0]),
        "i32": helper.make_tensor("c_i32", TensorProto.INT32, [], [3]),
    }
    nodes = [
        helper.make_node("Mul", ["x_f32", "c_f32"], ["y_f32"]),
        helper.make_node("Add", ["x_f64", "c_f64"], ["y_f64"]),
        helper.make_node("Mul", ["x_i32", "c_i32"], ["y_i32"]),
        helper.make_node("Neg", ["x_i64"], ["y_i64"]),
    ]
    graph = helper.make_graph(
        nodes,
        "typed",
        [helper.make_tensor_value_info(f"x_{k}", t, [None, 2]) for k, t in types.items()],
        [helper.make_tensor_value_info(f"y_{k}", t, [None, 2]) for k, t in types.items()],
        initializer=list(consts.values()),
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="chaos-inference tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(model.SerializeToString())


def main():
    rng = np.random.default_rng(SEED)
    x, y = synthesize(rng, ROWS)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=SEED, stratify=y)

    pipeline = Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression(max_iter=1000))])
    pipeline.fit(x_train, y_train)
    accuracy = accuracy_score(y_test, pipeline.predict(x_test))
    auc = roc_auc_score(y_test, pipeline.predict_proba(x_test)[:, 1])

    onx = to_onnx(
        pipeline,
        initial_types=[(INPUT_NAME, FloatTensorType([None, len(FEATURES)]))],
        options={id(pipeline.named_steps["clf"]): {"zipmap": False}},
        target_opset={"": 17, "ai.onnx.ml": 3},
    )
    onx.doc_string = SCHEMA["description"]
    onx.model_version = int(SCHEMA["version"])
    entry = onx.metadata_props.add()
    entry.key = "chaos_inference.schema"
    entry.value = json.dumps(SCHEMA, separators=(",", ":"))
    onnx.checker.check_model(onx)
    (HERE / "model.onnx").write_bytes(onx.SerializeToString())
    (HERE / "schema.json").write_text(json.dumps(SCHEMA, indent=2) + "\n")
    joblib.dump(pipeline, HERE / "pipeline.joblib")

    # The fixture: held-out rows plus the domain's corners, scored by onnxruntime itself.
    lows = [f.get("min", min(int(c) for c in f.get("categories", {"0": 0}))) for f in FEATURES]
    highs = [f.get("max", max(int(c) for c in f.get("categories", {"0": 0}))) for f in FEATURES]
    rows = np.vstack([x_test[:40], np.array([lows, highs], dtype=np.float32)])
    session = ort.InferenceSession(str(HERE / "model.onnx"), providers=["CPUExecutionProvider"])
    labels, probabilities = session.run(["label", "probabilities"], {INPUT_NAME: rows})
    fixture = {
        "onnxruntime": ort.__version__,
        "features": [f["name"] for f in FEATURES],
        "rows": [
            {
                "input": {f["name"]: float(v) for f, v in zip(FEATURES, row)},
                "label": int(label),
                "probabilities": [float(p) for p in probs],
            }
            for row, label, probs in zip(rows, labels, probabilities)
        ],
    }
    (HERE / "fixture.json").write_text(json.dumps(fixture, indent=1) + "\n")
    write_typed_test_model(HERE.parent.parent / "tests" / "fixtures" / "typed.onnx")
    print(f"rows={ROWS} test_accuracy={accuracy:.3f} test_auc={auc:.3f} fixture_rows={len(rows)}")


if __name__ == "__main__":
    main()
